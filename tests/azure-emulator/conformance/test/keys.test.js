// @azure/keyvault-keys against the emulated Key Vault data plane: the 401
// challenge flow with resource https://vault.localhost, keys CRUD, versions,
// rotation, backup/restore rules, soft delete / recover / purge protection,
// real RSA wrap/unwrap, 403s in both permission models, 429 retries.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const { KeyClient, CryptographyClient } = require("@azure/keyvault-keys");
const h = require("./helpers.js");

const cred = h.operatorCredential();
const east = new KeyClient(h.vaultUrl("kv-tde-east"), cred);

test("create, get (latest and by version) and key shape", async () => {
  const name = h.uniqueName("create");
  const k = await east.createRsaKey(name, { keySize: 2048, keyOps: ["wrapKey", "unwrapKey"], tags: { owner: "tde" } });
  assert.equal(k.name, name);
  assert.equal(k.keyType, "RSA");
  assert.match(k.properties.version, /^[0-9a-f]{32}$/);
  assert.equal(k.id, `${h.vaultUrl("kv-tde-east")}/keys/${name}/${k.properties.version}`);
  assert.deepEqual(k.keyOperations, ["wrapKey", "unwrapKey"]);
  assert.equal(k.key.n.length, 256, "2048-bit modulus");
  assert.equal(k.properties.recoveryLevel, "Recoverable");
  assert.equal(k.properties.tags.owner, "tde");
  const latest = await east.getKey(name);
  assert.equal(latest.properties.version, k.properties.version);
  const byVersion = await east.getKey(name, { version: k.properties.version });
  assert.deepEqual(byVersion.key.n, k.key.n);
  const hsm = await east.createKey(h.uniqueName("hsm"), "RSA-HSM", { keySize: 3072 });
  assert.equal(hsm.keyType, "RSA-HSM");
  assert.equal(hsm.key.n.length, 384);
});

test("a missing key is KeyNotFound (404)", async () => {
  await assert.rejects(east.getKey(h.uniqueName("missing")), (e) => e.statusCode === 404 && e.code === "KeyNotFound");
});

test("import a JWK with private parts; the public half matches", async () => {
  const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = privateKey.export({ format: "jwk" });
  const name = h.uniqueName("import");
  const k = await east.importKey(name, {
    kty: "RSA", keyOps: ["wrapKey", "unwrapKey"],
    n: Buffer.from(jwk.n, "base64url"), e: Buffer.from(jwk.e, "base64url"), d: Buffer.from(jwk.d, "base64url"),
    p: Buffer.from(jwk.p, "base64url"), q: Buffer.from(jwk.q, "base64url"), dp: Buffer.from(jwk.dp, "base64url"),
    dq: Buffer.from(jwk.dq, "base64url"), qi: Buffer.from(jwk.qi, "base64url"),
  });
  assert.equal(Buffer.from(k.key.n).toString("base64url"), jwk.n);
  assert.equal(k.key.d, undefined, "private parts never come back");
  // what we wrap locally with the public key, the vault unwraps with the private one
  const secret = crypto.randomBytes(32);
  const wrapped = crypto.publicEncrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, secret);
  const cc = new CryptographyClient(k, cred);
  const un = await cc.unwrapKey("RSA-OAEP-256", wrapped);
  assert.deepEqual(Buffer.from(un.result), secret);
});

test("versions: list with paging, update attributes, rotate", async () => {
  const name = h.uniqueName("versions");
  const made = [];
  for (let i = 0; i < 3; i++) made.push((await east.createRsaKey(name, { keySize: 2048 })).properties.version);
  const seen = [];
  let pages = 0;
  for await (const page of east.listPropertiesOfKeyVersions(name).byPage({ maxPageSize: 2 })) {
    pages++;
    for (const p of page) seen.push(p.version);
  }
  assert.equal(pages, 2, "maxresults=2 over 3 versions gives a nextLink");
  assert.deepEqual(seen.sort(), [...made].sort());
  const exp = new Date(Date.now() + 86400e3);
  const upd = await east.updateKeyProperties(name, made[0], { enabled: false, expiresOn: exp });
  assert.equal(upd.properties.enabled, false);
  assert.equal(Math.floor(upd.properties.expiresOn.getTime() / 1000), Math.floor(exp.getTime() / 1000));
  const rotated = await east.rotateKey(name);
  assert.ok(!made.includes(rotated.properties.version));
  assert.equal((await east.getKey(name)).properties.version, rotated.properties.version);
  let names = 0;
  for await (const p of east.listPropertiesOfKeys()) if (p.name === name) names++;
  assert.equal(names, 1, "listing keys shows each name once");
});

test("CryptographyClient wrap/unwrap round trip (RSA-OAEP, RSA-OAEP-256, RSA1_5)", async () => {
  const k = await east.createRsaKey(h.uniqueName("wrap"), { keySize: 2048 });
  const cc = new CryptographyClient(k.id, cred);
  for (const alg of ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"]) {
    const dek = crypto.randomBytes(32);
    const w = await cc.wrapKey(alg, dek);
    assert.equal(w.keyID, k.id);
    assert.equal(w.result.length, 256);
    const u = await cc.unwrapKey(alg, w.result);
    assert.deepEqual(Buffer.from(u.result), dek, alg);
  }
});

test("a disabled key refuses unwrap with KeyDisabled", async () => {
  const k = await east.createRsaKey(h.uniqueName("disabled"), { keySize: 2048 });
  const cc = new CryptographyClient(k.id, cred);
  const w = await cc.wrapKey("RSA-OAEP-256", crypto.randomBytes(32));
  await east.updateKeyProperties(k.name, k.properties.version, { enabled: false });
  await assert.rejects(cc.unwrapKey("RSA-OAEP-256", w.result), (e) => e.statusCode === 403 && /disabled/.test(e.message));
});

test("backup/restore: same subscription and geography only", async () => {
  const name = h.uniqueName("backup");
  const k = await east.createRsaKey(name, { keySize: 2048 });
  await east.rotateKey(name);
  const blob = await east.backupKey(name);
  assert.ok(blob.length > 1000);
  assert.ok(!Buffer.from(blob).includes(Buffer.from(name)), "the blob is encrypted");
  const west = new KeyClient(h.vaultUrl("kv-tde-west"), cred);
  const restored = await west.restoreKeyBackup(blob);
  assert.equal(restored.name, name);
  assert.deepEqual(restored.key.n, (await east.getKey(name)).key.n);
  let versions = 0;
  for await (const _ of west.listPropertiesOfKeyVersions(name)) versions++;
  assert.equal(versions, 2, "all versions restored");
  assert.ok((await west.getKey(name, { version: k.properties.version })).key, "versions keep their ids");
  await assert.rejects(west.restoreKeyBackup(blob), (e) => e.statusCode === 409, "name already taken");
  const eu = new KeyClient(h.vaultUrl("kv-eu"), cred);
  await assert.rejects(eu.restoreKeyBackup(blob), (e) => e.statusCode === 400 && /geography/.test(e.message));
  const other = new KeyClient(h.vaultUrl("kv-other-sub"), cred);
  await assert.rejects(other.restoreKeyBackup(blob), (e) => e.statusCode === 400 && /subscription/.test(e.message));
});

test("soft delete, recover, and purge protection", async () => {
  const name = h.uniqueName("delete");
  await east.createRsaKey(name, { keySize: 2048 });
  const poller = await east.beginDeleteKey(name, { intervalInMs: 100 });
  const deleted = await poller.pollUntilDone();
  assert.equal(deleted.properties.recoveryId, `${h.vaultUrl("kv-tde-east")}/deletedkeys/${name}`);
  assert.ok(deleted.properties.scheduledPurgeDate > deleted.properties.deletedOn);
  await assert.rejects(east.getKey(name), (e) => e.statusCode === 404);
  await assert.rejects(east.createRsaKey(name), (e) => e.statusCode === 409);
  assert.equal((await east.getDeletedKey(name)).name, name);
  await assert.rejects(east.purgeDeletedKey(name), (e) => e.statusCode === 403 && /purge protection/.test(e.message));
  const rec = await east.beginRecoverDeletedKey(name, { intervalInMs: 100 });
  await rec.pollUntilDone();
  assert.equal((await east.getKey(name)).name, name);

  const np = new KeyClient(h.vaultUrl("kv-nopurge"), cred);
  const n2 = h.uniqueName("purge");
  await np.createRsaKey(n2, { keySize: 2048 });
  await (await np.beginDeleteKey(n2, { intervalInMs: 100 })).pollUntilDone();
  await np.purgeDeletedKey(n2);
  await assert.rejects(np.getDeletedKey(n2), (e) => e.statusCode === 404);
});

test("403 for an identity without access policy, and in RBAC mode", async () => {
  const nobody = new KeyClient(h.vaultUrl("kv-tde-east"), h.nobodyCredential());
  await assert.rejects(nobody.getKey("tde-shared"), (e) => e.statusCode === 403 && e.code === "Forbidden" && /does not have keys get permission/.test(e.message));
  const rbac = new KeyClient(h.vaultUrl("kv-rbac"), cred);
  const k = await rbac.createRsaKey(h.uniqueName("rbac"), { keySize: 2048 });
  assert.ok(k.id, "Crypto Officer can create");
  const rbacNobody = new KeyClient(h.vaultUrl("kv-rbac"), h.nobodyCredential());
  await assert.rejects(rbacNobody.getKey(k.name), (e) => e.statusCode === 403 && /DeniedWithNoValidRBAC/.test(e.message));
});

test("a 429 with Retry-After is retried by the SDK", async () => {
  const name = h.uniqueName("throttle");
  await east.createRsaKey(name, { keySize: 2048 });
  await h.control.clearRequests();
  await h.control.fault({ kind: "status", status: 429, retryAfter: 1, count: 2, host: "kv-tde-east.vault.localhost", pathPrefix: `/keys/${name}` });
  const t0 = Date.now();
  const k = await east.getKey(name);
  assert.equal(k.name, name);
  assert.ok(Date.now() - t0 >= 1500, "waited for Retry-After twice");
  const log = await h.control.requests(`?host=kv-tde-east.vault.localhost&pathPrefix=/keys/${name}`);
  assert.deepEqual(log.value.map((r) => r.status), [429, 429, 200]);
  await h.control.clearFaults();
});
