// Preloaded with `node --require`: Node (unlike libcurl) does not resolve
// *.localhost names, so answer dns.lookup for them with 127.0.0.1. Both
// https.request and fetch (undici) go through dns.lookup, so Microsoft's
// SDKs reach the emulator at https://NAME.vault.localhost:PORT unpatched.
"use strict";
const dns = require("node:dns");

const original = dns.lookup;
function isLocal(host) {
  return typeof host === "string" && (host === "localhost" || host.endsWith(".localhost"));
}
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  if (!isLocal(hostname)) return original.call(dns, hostname, options, callback);
  const opts = typeof options === "number" ? { family: options } : options || {};
  const addr = { address: "127.0.0.1", family: 4 };
  process.nextTick(() => (opts.all ? callback(null, [addr]) : callback(null, addr.address, addr.family)));
  return {};
};
const originalPromise = dns.promises.lookup.bind(dns.promises);
dns.promises.lookup = async function lookup(hostname, options) {
  if (!isLocal(hostname)) return originalPromise(hostname, options);
  const addr = { address: "127.0.0.1", family: 4 };
  return options && options.all ? [addr] : addr;
};
