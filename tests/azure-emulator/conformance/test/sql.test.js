// @azure/arm-sql 10.0 (unpatched) against the emulated Microsoft.Sql provider:
// a database created with a user-assigned identity, a keys map and a
// database-level protector through the SDK's long-running-operation poller,
// read back with $expand=keys($filter=pointInTime(...)), revalidate/revert,
// a rotation the service refuses while old-thumbprint log is active, server
// keys and protector, and a throttled write (429 + Retry-After) the SDK retries.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const { SqlManagementClient } = require("@azure/arm-sql");
const { KeyClient } = require("@azure/keyvault-keys");
const h = require("./helpers.js");

const cred = h.operatorCredential();
const sql = new SqlManagementClient(cred, h.ids.sub1, { endpoint: h.armBase, $host: h.armBase });
const east = new KeyClient(h.vaultUrl("kv-tde-east"), cred);
const rg = "rg-tde";
const server = "sql-east";
const umi = `/subscriptions/${h.ids.sub1}/resourceGroups/rg-tde/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-db1`;
const serverId = `/subscriptions/${h.ids.sub1}/resourceGroups/${rg}/providers/Microsoft.Sql/servers/${server}`;
const poll = { updateIntervalInMs: 200 };

// The thumbprint the project defines (include/sqltde/crypto/thumbprint.h):
// upper-case hex SHA-1 of the DER PKCS#1 RSAPublicKey, computed here with Node.
function thumbprint(jwk) {
  const der = crypto.createPublicKey({ key: { kty: "RSA", n: Buffer.from(jwk.n).toString("base64url"), e: Buffer.from(jwk.e).toString("base64url") }, format: "jwk" })
    .export({ type: "pkcs1", format: "der" });
  return crypto.createHash("sha1").update(der).digest("hex").toUpperCase();
}

async function sqlControl(method, path, body) {
  return h.request(method, `https://control.localhost:${h.PORT}/_emulator/sql${path}`, body);
}

async function newKey(prefix) {
  return east.createRsaKey(h.uniqueName(prefix), { keySize: 2048 });
}

test("create a database with keys and a protector; read it back with expanded keys", async () => {
  const a = await newKey("conf-a");
  const b = await newKey("conf-b");
  const name = h.uniqueName("confdb");
  await h.control.clearRequests();
  const db = await sql.databases.beginCreateOrUpdateAndWait(rg, server, name, {
    location: "eastus",
    identity: { type: "UserAssigned", userAssignedIdentities: { [umi]: {} } },
    keys: { [a.id]: {}, [b.id]: {} },
    encryptionProtector: a.id,
    encryptionProtectorAutoRotation: false,
  }, poll);
  assert.equal(db.name, name);
  assert.equal(db.status, "Online");
  assert.equal(db.encryptionProtector, a.id);
  assert.equal(db.identity.type, "UserAssigned");
  assert.equal(db.identity.userAssignedIdentities[umi].principalId, h.ids.umiDb1.principalId);

  // the LRO as the SDK drove it: PUT 202, polls of Azure-AsyncOperation, then a GET of the resource
  const log = await h.control.requests(`?host=management.localhost&pathPrefix=${encodeURIComponent("/subscriptions/")}`);
  const mine = log.value.filter((x) => x.path.includes(name) || x.path.includes("databaseAzureAsyncOperation"));
  assert.equal(mine[0].method, "PUT");
  assert.equal(mine[0].status, 202);
  assert.ok(mine.some((x) => x.path.includes("/databaseAzureAsyncOperation/") && x.status === 200), "polled the async operation");
  assert.equal(mine[mine.length - 1].method, "GET");

  const all = await sql.databases.get(rg, server, name, { expand: "keys" });
  assert.deepEqual(Object.keys(all.keys).sort(), [a.id, b.id].sort());
  assert.equal(all.keys[a.id].thumbprint, thumbprint(a.key));
  assert.equal(all.keys[b.id].thumbprint, thumbprint(b.key));
  assert.equal(all.keys[a.id].type, "AzureKeyVault");
  assert.ok(all.keys[a.id].creationDate instanceof Date);

  const current = await sql.databases.get(rg, server, name, { expand: "keys($filter=pointInTime('current'))" });
  assert.deepEqual(Object.keys(current.keys), [a.id], "only the protector is in use");

  // rotation to B works once; a second one right away is refused while A's log is active
  const rotated = await sql.databases.beginUpdateAndWait(rg, server, name, { encryptionProtector: b.id }, poll);
  assert.equal(rotated.encryptionProtector, b.id);
  const c = await newKey("conf-c");
  await assert.rejects(
    sql.databases.beginUpdateAndWait(rg, server, name, { keys: { [c.id]: {} }, encryptionProtector: c.id }, poll),
    (e) => e.code === "PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse" && e.statusCode === 400);
  const inUse = await sql.databases.get(rg, server, name, { expand: "keys($filter=pointInTime('current'))" });
  assert.deepEqual(Object.keys(inUse.keys).sort(), [a.id, b.id].sort());
  // workload retires the old log; then the rotation goes through
  const w = await sqlControl("POST", "/workload", { databaseId: `${serverId}/databases/${name}`, records: 3 });
  assert.equal(w.status, 200);
  const again = await sql.databases.beginUpdateAndWait(rg, server, name, { keys: { [c.id]: {} }, encryptionProtector: c.id }, poll);
  assert.equal(again.encryptionProtector, c.id);

  // revalidate, then revert (the server is service-managed)
  await sql.databaseEncryptionProtectors.beginRevalidateAndWait(rg, server, name, "current", poll);
  await sql.databaseEncryptionProtectors.beginRevertAndWait(rg, server, name, "current", poll);
  const reverted = await sql.databases.get(rg, server, name);
  assert.equal(reverted.encryptionProtector, undefined);
  await assert.rejects(sql.databaseEncryptionProtectors.beginRevertAndWait(rg, server, name, "current", poll),
    (e) => e.code === "DatabaseLevelEncryptionProtectorDoesNotExist");

  // the data written under the old protectors still opens
  const data = await sqlControl("GET", `/data?databaseId=${encodeURIComponent(`${serverId}/databases/${name}`)}`);
  assert.equal(data.status, 200);
  assert.ok(data.json.records.length >= 4);

  await sql.databases.beginDeleteAndWait(rg, server, name, poll);
  await assert.rejects(sql.databases.get(rg, server, name), (e) => e.statusCode === 404);
  const dropped = [];
  for await (const d of sql.restorableDroppedDatabases.listByServer(rg, server)) dropped.push(d);
  assert.ok(dropped.some((d) => d.databaseName === name));
});

test("documented errors reach the SDK as RestError codes", async () => {
  const k = await newKey("conf-err");
  const name = h.uniqueName("errdb");
  const other = `/subscriptions/${h.ids.sub1}/resourceGroups/rg-tde/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-mi`;
  await assert.rejects(sql.databases.beginCreateOrUpdateAndWait(rg, server, name, {
    location: "eastus",
    identity: { type: "UserAssigned", userAssignedIdentities: { [umi]: {}, [other]: {} } },
    keys: { [k.id]: {} },
    encryptionProtector: k.id,
  }, poll), (e) => e.code === "MultipleIdentitiesOnDatabase" && e.statusCode === 400);
  await assert.rejects(sql.databaseEncryptionProtectors.beginRevalidateAndWait(rg, server, "master", "current", poll),
    (e) => e.statusCode === 400 || e.statusCode === 404);
});

test("server keys and the server protector", async () => {
  const k = await newKey("conf-srv");
  const keyName = `kv-tde-east_${k.name}_${k.properties.version}`;
  const sk = await sql.serverKeys.beginCreateOrUpdateAndWait(rg, server, keyName,
    { serverKeyType: "AzureKeyVault", uri: k.id }, poll);
  assert.equal(sk.thumbprint, thumbprint(k.key));
  const keys = [];
  for await (const x of sql.serverKeys.listByServer(rg, server)) keys.push(x.name);
  assert.ok(keys.includes("ServiceManaged") && keys.includes(keyName));
  const ep = await sql.encryptionProtectors.get(rg, server, "current");
  assert.equal(ep.serverKeyType, "ServiceManaged");
  await assert.rejects(sql.serverKeys.beginCreateOrUpdateAndWait(rg, server, "bad_name", { serverKeyType: "AzureKeyVault", uri: k.id }, poll),
    (e) => e.code === "InvalidKeyName");
  await sql.serverKeys.beginDeleteAndWait(rg, server, keyName, poll);
});

test("a throttled database write (429 + Retry-After) is retried by the SDK", async () => {
  const name = h.uniqueName("thr");
  const path = `${serverId}/databases/${name}`;
  await h.control.clearRequests();
  await h.control.fault({ kind: "status", status: 429, retryAfter: 1, count: 1, host: "management.localhost", pathPrefix: path, method: "PUT" });
  const db = await sql.databases.beginCreateOrUpdateAndWait(rg, server, name, { location: "eastus" }, poll);
  assert.equal(db.status, "Online");
  const log = await h.control.requests(`?host=management.localhost&pathPrefix=${encodeURIComponent(path)}`);
  const puts = log.value.filter((x) => x.method === "PUT").map((x) => x.status);
  assert.deepEqual(puts, [429, 202]);
  await h.control.clearFaults();
  await sql.databases.beginDeleteAndWait(rg, server, name, poll);
});
