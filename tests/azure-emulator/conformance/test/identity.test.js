// @azure/identity against the emulator's Entra ID: client secret, client
// certificate, federated assertion, workload identity file, IMDS managed
// identity, and the AADSTS error shape.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const {
  ClientSecretCredential, ClientCertificateCredential, ClientAssertionCredential,
  WorkloadIdentityCredential, ManagedIdentityCredential,
} = require("@azure/identity");
const h = require("./helpers.js");

const VAULT_SCOPE = "https://vault.azure.net/.default";
const ARM_SCOPE = "https://management.azure.com/.default";

function checkToken(tok, oid, aud) {
  assert.ok(tok && tok.token, "a token");
  assert.ok(tok.expiresOnTimestamp > Date.now(), "expires in the future");
  const { header, claims } = h.decodeJwt(tok.token);
  assert.equal(header.alg, "RS256");
  assert.equal(claims.oid, oid);
  assert.equal(claims.tid, h.ids.tenant);
  assert.equal(claims.aud, aud);
  assert.ok(claims.exp > claims.iat && claims.nbf <= claims.iat);
}

test("ClientSecretCredential gets Key Vault and ARM tokens", async () => {
  const cred = h.operatorCredential();
  checkToken(await cred.getToken(VAULT_SCOPE), h.ids.operator.objectId, "https://vault.azure.net");
  checkToken(await cred.getToken(ARM_SCOPE), h.ids.operator.objectId, "https://management.azure.com");
});

test("ClientCertificateCredential signs an assertion the emulator accepts", async () => {
  const cred = new ClientCertificateCredential(h.ids.tenant, h.ids.operator.clientId,
    path.join(h.SEED_DIR, "creds", "operator.pem"), h.credOptions);
  const tok = await cred.getToken(VAULT_SCOPE);
  checkToken(tok, h.ids.operator.objectId, "https://vault.azure.net");
  assert.equal(h.decodeJwt(tok.token).claims.appidacr, "2", "certificate-authenticated app");
});

test("ClientAssertionCredential exchanges a federated token", async () => {
  const cred = new ClientAssertionCredential(h.ids.tenant, h.ids.operator.clientId, async () => h.federatedAssertion(), h.credOptions);
  checkToken(await cred.getToken(ARM_SCOPE), h.ids.operator.objectId, "https://management.azure.com");
});

test("a federated token with an unregistered subject is refused with AADSTS70021", async () => {
  const cred = new ClientAssertionCredential(h.ids.tenant, h.ids.operator.clientId,
    async () => h.federatedAssertion({ sub: "system:serviceaccount:other:intruder" }), h.credOptions);
  await assert.rejects(cred.getToken(ARM_SCOPE), (e) => /AADSTS70021/.test(e.message));
});

test("WorkloadIdentityCredential reads the projected token file", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wi-"));
  const file = path.join(dir, "azure-identity-token");
  fs.writeFileSync(file, h.federatedAssertion());
  const cred = new WorkloadIdentityCredential({ tenantId: h.ids.tenant, clientId: h.ids.operator.clientId, tokenFilePath: file, ...h.credOptions });
  checkToken(await cred.getToken(VAULT_SCOPE), h.ids.operator.objectId, "https://vault.azure.net");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a wrong client secret fails with the AADSTS error shape", async () => {
  const cred = new ClientSecretCredential(h.ids.tenant, h.ids.operator.clientId, "not-the-secret", h.credOptions);
  await assert.rejects(cred.getToken(VAULT_SCOPE), (e) => /AADSTS7000215/.test(e.message));
  const r = await h.request("POST", `${h.authorityHost}/${h.ids.tenant}/oauth2/v2.0/token`, undefined);
  assert.equal(r.status, 400);
  assert.equal(typeof r.json.error, "string");
  assert.match(r.json.error_description, /^AADSTS\d+:/);
  assert.ok(Array.isArray(r.json.error_codes) && r.json.error_codes.length === 1);
});

test("ManagedIdentityCredential reaches the IMDS endpoint through AZURE_POD_IDENTITY_AUTHORITY_HOST", async () => {
  const saved = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = `https://imds.localhost:${h.PORT}`;
  try {
    const cred = new ManagedIdentityCredential({ clientId: h.ids.umiDb1.clientId });
    checkToken(await cred.getToken(VAULT_SCOPE), h.ids.umiDb1.principalId, "https://vault.azure.net");
  } finally {
    if (saved === undefined) delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
    else process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = saved;
  }
});
