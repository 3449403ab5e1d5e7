// Shared setup for the conformance tests: where the emulator is (run.sh
// exports EMU_DIR and EMU_PORT), the seeded ids, credentials and a small
// client for the emulator's /_emulator control API.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const https = require("node:https");
const crypto = require("node:crypto");
const { ClientSecretCredential } = require("@azure/identity");

const DIR = process.env.EMU_DIR;
const PORT = Number(process.env.EMU_PORT || fs.readFileSync(path.join(DIR, "port"), "utf8").trim());
if (!DIR || !PORT) throw new Error("EMU_DIR / EMU_PORT not set (run through conformance/run.sh)");

const SEED_DIR = path.resolve(__dirname, "..", "..", "seeds");
const ids = {
  tenant: "11111111-1111-4111-8111-111111111111",
  sub1: "aaaaaaaa-0000-4000-8000-000000000001",
  sub2: "aaaaaaaa-0000-4000-8000-000000000002",
  operator: { clientId: "0a0a0a0a-0000-4000-8000-000000000001", objectId: "0b0b0b0b-0000-4000-8000-000000000001", secret: "operator-test-secret" },
  nobody: { clientId: "0a0a0a0a-0000-4000-8000-000000000002", objectId: "0b0b0b0b-0000-4000-8000-000000000002", secret: "nobody-test-secret" },
  umiDb1: { clientId: "0c0c0c0c-0000-4000-8000-000000000001", principalId: "0d0d0d0d-0000-4000-8000-000000000001" },
  issuer: "https://oidc.localhost/sqltde-test",
  subject: "system:serviceaccount:sqltde-system:sqltde-operator",
};
const authorityHost = `https://login.localhost:${PORT}`;
const credOptions = { authorityHost, disableInstanceDiscovery: true };
const vaultUrl = (name) => `https://${name}.vault.localhost:${PORT}`;
const armBase = `https://management.localhost:${PORT}`;

function operatorCredential() {
  return new ClientSecretCredential(ids.tenant, ids.operator.clientId, ids.operator.secret, credOptions);
}
function nobodyCredential() {
  return new ClientSecretCredential(ids.tenant, ids.nobody.clientId, ids.nobody.secret, credOptions);
}

function decodeJwt(token) {
  const [h, p] = token.split(".");
  return { header: JSON.parse(Buffer.from(h, "base64url")), claims: JSON.parse(Buffer.from(p, "base64url")) };
}

// A token from the seeded fake OIDC issuer, as a Kubernetes projected
// service-account token would be for workload identity.
function federatedAssertion(overrides = {}) {
  const key = fs.readFileSync(path.join(SEED_DIR, "creds", "federated-issuer.key"));
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: "RS256", typ: "JWT", kid: "test-issuer-key-1" };
  const claims = { iss: ids.issuer, sub: ids.subject, aud: ["api://AzureADTokenExchange"], iat: now, nbf: now, exp: now + 600, ...overrides };
  const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  const sig = crypto.sign("RSA-SHA256", Buffer.from(input), key).toString("base64url");
  return `${input}.${sig}`;
}

// Minimal HTTPS JSON client (trusts the emulator CA through NODE_EXTRA_CA_CERTS).
function request(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = https.request(url, { method, headers: { ...(data ? { "content-type": "application/json", "content-length": data.length } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

const control = {
  url: (p) => `https://control.localhost:${PORT}/_emulator${p}`,
  async fault(spec) { const r = await request("POST", control.url("/faults"), spec); if (r.status !== 201) throw new Error(r.text); return r.json; },
  async clearFaults() { await request("DELETE", control.url("/faults")); },
  async requests(query = "") { return (await request("GET", control.url(`/requests${query}`))).json; },
  async clearRequests() { await request("DELETE", control.url("/requests")); },
  async advance(seconds) { return (await request("POST", control.url("/clock/advance"), { seconds })).json; },
  async settings(patch) { return (await request("PATCH", control.url("/settings"), patch)).json; },
};

function uniqueName(prefix) {
  return `${prefix}-${crypto.randomBytes(4).toString("hex")}`;
}

module.exports = { DIR, PORT, SEED_DIR, ids, authorityHost, credOptions, vaultUrl, armBase, operatorCredential, nobodyCredential, decodeJwt, federatedAssertion, request, control, uniqueName };
