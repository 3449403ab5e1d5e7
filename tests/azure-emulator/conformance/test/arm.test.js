// ARM through Microsoft's own pipeline: @azure/arm-sql's SqlManagementClient
// (bearer policy with scope `${endpoint}/.default`, retry policies) sending
// requests for the vault resource and role assignments, an ARM error body,
// and a throttled (429 + Retry-After) read that the SDK retries.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { SqlManagementClient } = require("@azure/arm-sql");
const { createPipelineRequest } = require("@azure/core-rest-pipeline");
const h = require("./helpers.js");

const client = new SqlManagementClient(h.operatorCredential(), h.ids.sub1, { endpoint: h.armBase, $host: h.armBase });
const vaultId = `/subscriptions/${h.ids.sub1}/resourceGroups/rg-tde/providers/Microsoft.KeyVault/vaults/kv-tde-east`;

async function get(path) {
  const res = await client.sendRequest(createPipelineRequest({ url: `${h.armBase}${path}`, method: "GET" }));
  return { status: res.status, headers: res.headers, json: res.bodyAsText ? JSON.parse(res.bodyAsText) : undefined };
}

test("Microsoft.KeyVault/vaults GET carries what the operator checks", async () => {
  const r = await get(`${vaultId}?api-version=2023-07-01`);
  assert.equal(r.status, 200);
  assert.equal(r.json.id, vaultId);
  const p = r.json.properties;
  assert.equal(p.vaultUri, `${h.vaultUrl("kv-tde-east")}/`);
  assert.equal(p.enableSoftDelete, true);
  assert.equal(p.enablePurgeProtection, true);
  assert.equal(p.enableRbacAuthorization, false);
  const umi = p.accessPolicies.find((a) => a.objectId === h.ids.umiDb1.principalId);
  assert.deepEqual(umi.permissions.keys, ["get", "wrapKey", "unwrapKey"]);
  assert.ok(r.headers.get("x-ms-ratelimit-remaining-subscription-reads"));
});

test("role assignments at a vault scope, filtered to a principal", async () => {
  const scope = `/subscriptions/${h.ids.sub1}/resourceGroups/rg-tde/providers/Microsoft.KeyVault/vaults/kv-rbac`;
  const r = await get(`${scope}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=${encodeURIComponent(`assignedTo('${h.ids.umiDb1.principalId}')`)}`);
  assert.equal(r.status, 200);
  assert.equal(r.json.value.length, 1);
  assert.match(r.json.value[0].properties.roleDefinitionId, /e147488a-f6f5-4113-8e2d-b22465e65bf6$/);
});

test("ARM error body for an unknown api-version", async () => {
  const r = await get(`${vaultId}?api-version=2099-01-01`);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, "NoRegisteredProviderFound");
  assert.equal(typeof r.json.error.message, "string");
});

test("a throttled ARM read (429 + Retry-After) is retried by the SDK pipeline", async () => {
  await h.control.clearRequests();
  await h.control.fault({ kind: "status", status: 429, retryAfter: 1, count: 1, host: "management.localhost", pathPrefix: vaultId });
  const r = await get(`${vaultId}?api-version=2023-07-01`);
  assert.equal(r.status, 200);
  const log = await h.control.requests(`?host=management.localhost&pathPrefix=${encodeURIComponent(vaultId)}`);
  assert.deepEqual(log.value.map((x) => x.status), [429, 200]);
  assert.ok(log.value[1].timeMs - log.value[0].timeMs >= 900, "waited Retry-After");
  await h.control.clearFaults();
});
