#!/usr/bin/env python3
"""estate-seed.py — the estate of tests/bench/bench_estate.sh (SPEC.md §7).

Layout (every size from the environment, defaults in brackets):
  BENCH_SUBS [10] subscriptions in one tenant and one region; ARM's token
      buckets are per subscription, and 1,000 logical servers do not fit one
      subscription in Azure (250 servers per subscription and region), so a
      real estate of this size spans several.
  BENCH_SERVERS [1000] logical servers, spread evenly over the subscriptions;
      server i has a customer-managed server-level protector (its VaultKey).
  BENCH_KEYS [1000] VaultKeys (source existing), KEYS/SUBS in each
      subscription's vault; server i uses key (i mod keys-per-subscription)
      of its subscription.
  BENCH_DBS [10000] databases, database d on server d mod SERVERS, each with
      a database-level protector: the VaultKey of its server.
  BENCH_SERVERS_PER_UMI [10] servers share one user-assigned identity (the
      servers' and their databases'); one vault per subscription grants every
      identity of that subscription get/wrapKey/unwrapKey.
The databases are created in the emulator beforehand (ARM PUTs, throttling
off): the operator adopts an existing estate rather than creating 10,000
databases through its 2 workers.

Subcommands:
  seed FILE                  base emulator seed (tenant, subscriptions, groups,
                             the operator's app and roles, identities)
  estate FILE                vaults with keys and servers (POST /_emulator/seed)
  crs --port P DIR           the custom resources, in files of <= 1,000 objects
  create-dbs --port P --ca F --arm-token T --kv-token T
                             PUT every database (protector = the key's newest
                             version, read from the vault)
  change --port P FILE       the protector change: every database of
                             subscription BENCH_CHANGE_SUB [0] moves to the key
                             of another server of its identity group
                             (manifests for server-side apply)
  watch --what all|change    follows `kubectl get sqldatabases -w` until every
                             (changed) database is Ready with the expected
                             protector; prints the seconds it took
  requests --port P --ca F --since S [--until U]
                             counts the emulator's logged ARM / Key Vault
                             calls after seq S ("name value" lines)
  last-seq --port P --ca F   the newest seq of the request log
"""
import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

TENANT = "11111111-1111-4111-8111-111111111111"
OP_CLIENT = "0a0a0a0a-0000-4000-8000-000000000001"
OP_OID = "0b0b0b0b-0000-4000-8000-000000000001"
REGION = "eastus"
NS = "estate"
SQL_API = "2025-01-01"
KV_API = "7.4"


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v else default


class Layout:
    def __init__(self):
        self.subs = env_int("BENCH_SUBS", 10)
        self.servers = env_int("BENCH_SERVERS", 1000)
        self.keys = env_int("BENCH_KEYS", 1000)
        self.dbs = env_int("BENCH_DBS", 10000)
        self.per_umi = env_int("BENCH_SERVERS_PER_UMI", 10)
        self.change_sub = env_int("BENCH_CHANGE_SUB", 0)
        if self.servers % self.subs or self.keys % self.subs:
            sys.exit("estate-seed: BENCH_SERVERS and BENCH_KEYS must be multiples of BENCH_SUBS")
        self.sps = self.servers // self.subs  # servers per subscription
        self.kps = self.keys // self.subs     # keys per subscription
        self.per_umi = max(1, min(self.per_umi, self.sps))
        self.ups = (self.sps + self.per_umi - 1) // self.per_umi  # identities per subscription

    def sub_id(self, s):
        return "5ab00000-0000-4000-8000-%012d" % s

    def rg(self, s):
        return "rg-estate-%02d" % s

    def vault(self, s):
        return "kv-estate-%02d" % s

    def server(self, i):
        return "sql-%04d" % i

    def sub_of_server(self, i):
        return i // self.sps

    def key_index(self, s, local):
        return s * self.kps + local % self.kps

    def key_of_server(self, i):
        return self.key_index(self.sub_of_server(i), i % self.sps)

    def key(self, k):
        return "k-%04d" % k

    def sub_of_key(self, k):
        return k // self.kps

    def umi_index(self, i):
        s = self.sub_of_server(i)
        return s * self.ups + (i % self.sps) // self.per_umi

    def umi(self, u):
        return "umi-%03d" % u

    def umi_client(self, u):
        return "c1000000-0000-4000-8000-%012d" % u

    def umi_principal(self, u):
        return "d1000000-0000-4000-8000-%012d" % u

    def umi_sub(self, u):
        return u // self.ups

    def umi_rid(self, u):
        s = self.umi_sub(u)
        return ("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/"
                "userAssignedIdentities/%s" % (self.sub_id(s), self.rg(s), self.umi(u)))

    def server_rid(self, i):
        s = self.sub_of_server(i)
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/servers/%s" % (
            self.sub_id(s), self.rg(s), self.server(i))

    def db(self, d):
        return "db-%05d" % d

    def server_of_db(self, d):
        return d % self.servers

    def changed_dbs(self):
        return [d for d in range(self.dbs) if self.sub_of_server(self.server_of_db(d)) == self.change_sub]

    def change_key(self, d):
        """The key a database of the change moves to: that of the next server
        in its identity group (a key the identity already uses, so no new
        permission has to be checked or wait out the permission delay)."""
        i = self.server_of_db(d)
        s, li = self.sub_of_server(i), i % self.sps
        g0 = (li // self.per_umi) * self.per_umi
        gn = min(self.per_umi, self.sps - g0)
        cur = self.key_of_server(i)
        for step in range(1, gn + 1):
            k = self.key_index(s, g0 + (li - g0 + step) % gn)
            if k != cur:
                return k
        return self.key_index(s, (cur - s * self.kps + 1) % self.kps)


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"))
        f.write("\n")


# ---- emulator seed -----------------------------------------------------------

def cmd_seed(L, a):
    subs = [{"id": L.sub_id(s), "tenant": TENANT, "name": "estate-%02d" % s} for s in range(L.subs)]
    rgs = [{"subscription": L.sub_id(s), "name": L.rg(s), "location": REGION} for s in range(L.subs)]
    idents = [{"type": "application", "name": "sqltde-operator", "tenant": TENANT, "clientId": OP_CLIENT,
               "objectId": OP_OID, "clientSecret": "operator-test-secret"}]
    for u in range(L.subs * L.ups):
        s = L.umi_sub(u)
        idents.append({"type": "userAssigned", "name": L.umi(u), "tenant": TENANT, "subscription": L.sub_id(s),
                       "resourceGroup": L.rg(s), "clientId": L.umi_client(u), "principalId": L.umi_principal(u)})
    roles = []
    for s in range(L.subs):
        sub = "/subscriptions/" + L.sub_id(s)
        roles.append({"scope": sub, "role": "Reader", "principalId": OP_OID})
        for role in ("SQL Server Contributor", "Managed Identity Operator"):
            roles.append({"scope": sub + "/resourceGroups/" + L.rg(s), "role": role, "principalId": OP_OID})
    dump(a.file, {
        "settings": {"tokenLifetimeSeconds": 3600, "lroDelaySeconds": 2, "lroRetryAfterSeconds": 1},
        "tenants": [{"id": TENANT, "name": "contoso"}],
        "subscriptions": subs,
        "regions": [{"name": REGION, "geography": "US", "pairedRegion": "westus", "displayName": "East US"},
                    {"name": "westus", "geography": "US", "pairedRegion": REGION, "displayName": "West US"}],
        "resourceGroups": rgs,
        "identities": idents,
        "roleAssignments": roles,
    })


def cmd_estate(L, a):
    vaults = []
    for s in range(L.subs):
        pols = [{"objectId": OP_OID, "keys": ["all"]}]
        pols += [{"objectId": L.umi_principal(u), "keys": ["get", "wrapKey", "unwrapKey"]}
                 for u in range(s * L.ups, (s + 1) * L.ups)]
        vaults.append({"name": L.vault(s), "subscription": L.sub_id(s), "resourceGroup": L.rg(s),
                       "location": REGION, "enablePurgeProtection": True, "accessPolicies": pols,
                       # 2048 bits: generating 1,000 keys is the slow part of the set-up
                       "keys": [{"name": L.key(k), "kty": "RSA", "size": 2048}
                                for k in range(s * L.kps, (s + 1) * L.kps)]})
    servers = []
    for i in range(L.servers):
        s, u = L.sub_of_server(i), L.umi_index(i)
        servers.append({"name": L.server(i), "subscription": L.sub_id(s), "resourceGroup": L.rg(s),
                        "location": REGION,
                        "identity": {"type": "UserAssigned", "userAssignedIdentities": [L.umi(u)]},
                        "primaryUserAssignedIdentity": L.umi(u),
                        "encryptionProtector": {
                            "serverKeyType": "AzureKeyVault",
                            "uri": "https://%s.vault.localhost/keys/%s" % (L.vault(s), L.key(L.key_of_server(i)))}})
    dump(a.file, {"vaults": vaults, "servers": servers})


# ---- custom resources ----------------------------------------------------------

def cr(kind, name, spec, labels=None):
    md = {"name": name, "namespace": NS}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "sqltde.io/v1alpha1", "kind": kind, "metadata": md, "spec": spec}


def write_list(path, items):
    dump(path, {"apiVersion": "v1", "kind": "List", "items": items})


def db_cr(L, d, key):
    i = L.server_of_db(d)
    return cr("SqlDatabase", L.db(d), {
        "server": {"name": L.server(i)},
        "identity": {"name": L.umi(L.umi_index(i))},
        "encryptionProtector": {"vaultKey": {"name": L.key(key)}},
    }, {"bench.sqltde.io/sub": "%02d" % L.sub_of_server(i)})


def cmd_crs(L, a):
    os.makedirs(a.dir, exist_ok=True)
    base = []
    for s in range(L.subs):
        base.append(cr("KeyVault", L.vault(s), {
            "vaultUri": "https://%s.vault.localhost:%d/" % (L.vault(s), a.port), "location": REGION,
            "subscriptionId": L.sub_id(s), "resourceGroup": L.rg(s), "tenantId": TENANT}))
    for u in range(L.subs * L.ups):
        base.append(cr("ManagedIdentity", L.umi(u), {
            "resourceId": L.umi_rid(u), "clientId": L.umi_client(u), "principalId": L.umi_principal(u)}))
    write_list(os.path.join(a.dir, "00-base.json"), base)
    write_list(os.path.join(a.dir, "10-vaultkeys.json"), [
        cr("VaultKey", L.key(k), {"vaults": [{"name": L.vault(L.sub_of_key(k))}], "keyName": L.key(k),
                                  "source": {"type": "existing"}}) for k in range(L.keys)])
    write_list(os.path.join(a.dir, "20-sqlservers.json"), [
        cr("SqlServer", L.server(i), {
            "resourceId": L.server_rid(i), "identity": {"name": L.umi(L.umi_index(i))},
            "protector": {"type": "CustomerManaged", "vaultKey": {"name": L.key(L.key_of_server(i))}}})
        for i in range(L.servers)])
    chunk = 1000
    for c in range(0, L.dbs, chunk):
        write_list(os.path.join(a.dir, "30-sqldatabases-%05d.json" % c),
                   [db_cr(L, d, L.key_of_server(L.server_of_db(d))) for d in range(c, min(L.dbs, c + chunk))])


def cmd_change(L, a):
    # only what changes: server-side apply takes over this one field
    items = []
    for d in L.changed_dbs():
        o = db_cr(L, d, L.change_key(d))
        o["spec"] = {"encryptionProtector": o["spec"]["encryptionProtector"]}
        del o["metadata"]["labels"]
        items.append(o)
    write_list(a.file, items)


# ---- databases in Azure ----------------------------------------------------------

class Conn:
    """HTTPS to the emulator: loopback, with the virtual host's name for SNI
    and certificate verification (Python does not resolve *.localhost)."""

    def __init__(self, host, port, ctx):
        self.host, self.port, self.ctx, self.c = host, port, ctx, None

    def _open(self):
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=120)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        c.sock = self.ctx.wrap_socket(raw, server_hostname=self.host)
        self.c = c

    def request(self, method, path, token, body=None):
        for attempt in range(5):
            try:
                if self.c is None:
                    self._open()
                hdr = {"Host": "%s:%d" % (self.host, self.port)}
                if token:
                    hdr["Authorization"] = "Bearer " + token
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    hdr["Content-Type"] = "application/json"
                self.c.request(method, path, body=data, headers=hdr)
                r = self.c.getresponse()
                text = r.read()
                if r.status == 429 or r.status >= 500:
                    time.sleep(1 + attempt)
                    continue
                return r.status, text
            except (OSError, http.client.HTTPException):
                self.c = None
                time.sleep(0.5)
        raise RuntimeError("%s %s: no answer after retries" % (method, path))


def cmd_create_dbs(L, a):
    ctx = ssl.create_default_context(cafile=a.ca)
    # the newest version of every key, read from the vaults
    versions = {}
    kv = {}

    def kv_conn(s):
        key = (threading.get_ident(), s)
        if key not in kv:
            kv[key] = Conn("%s.vault.localhost" % L.vault(s), a.port, ctx)
        return kv[key]

    def run(fn, items):
        errs, lock, it = [], threading.Lock(), iter(items)

        def worker():
            while True:
                with lock:
                    x = next(it, None)
                if x is None:
                    return
                try:
                    fn(x)
                except Exception as e:  # noqa: BLE001 — reported below
                    with lock:
                        errs.append("%s: %s" % (x, e))
        ts = [threading.Thread(target=worker) for _ in range(a.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errs:
            sys.exit("create-dbs: %d failures, first: %s" % (len(errs), errs[0]))

    def get_version(k):
        st, body = kv_conn(L.sub_of_key(k)).request("GET", "/keys/%s?api-version=%s" % (L.key(k), KV_API), a.kv_token)
        if st != 200:
            raise RuntimeError("key %s: HTTP %d %s" % (L.key(k), st, body[:200]))
        versions[k] = json.loads(body)["key"]["kid"]

    t0 = time.time()
    run(get_version, range(L.keys))
    arm = {}

    def arm_conn():
        t = threading.get_ident()
        if t not in arm:
            arm[t] = Conn("management.localhost", a.port, ctx)
        return arm[t]

    def put_db(d):
        i = L.server_of_db(d)
        uri = versions[L.key_of_server(i)]
        body = {"location": REGION,
                "identity": {"type": "UserAssigned", "userAssignedIdentities": {L.umi_rid(L.umi_index(i)): {}}},
                "properties": {"createMode": "Default", "keys": {uri: {}}, "encryptionProtector": uri,
                               "encryptionProtectorAutoRotation": False}}
        st, text = arm_conn().request("PUT", "%s/databases/%s?api-version=%s" % (L.server_rid(i), L.db(d), SQL_API),
                                      a.arm_token, body)
        if st not in (200, 201, 202):
            raise RuntimeError("HTTP %d %s" % (st, text[:300]))

    run(put_db, range(L.dbs))
    # the LROs complete on the emulator's next requests: list every server
    # until all its databases are there
    per_server = {}
    for d in range(L.dbs):
        per_server[L.server_of_db(d)] = per_server.get(L.server_of_db(d), 0) + 1

    def check_server(i):
        for _ in range(60):
            st, text = arm_conn().request("GET", "%s/databases?api-version=%s" % (L.server_rid(i), SQL_API),
                                          a.arm_token)
            if st == 200:
                online = [x for x in json.loads(text).get("value", [])
                          if x["name"] != "master" and x.get("properties", {}).get("status") == "Online"]
                if len(online) >= per_server[i]:
                    return
            time.sleep(1)
        raise RuntimeError("server %s: databases not all Online" % L.server(i))

    run(check_server, sorted(per_server))
    print("created %d databases on %d servers in %.0f s" % (L.dbs, len(per_server), time.time() - t0),
          file=sys.stderr)


# ---- waiting on Kubernetes -----------------------------------------------------------

def cmd_watch(L, a):
    """Returns when every expected database is Ready for its current
    generation (and, for the change, shows the new key as its protector).
    A list gives the state, a watch (started before the list, so nothing
    falls in between) the changes; both are renewed every few minutes."""
    if a.what == "change":
        expect = {L.db(d): "/keys/%s/" % L.key(L.change_key(d)) for d in L.changed_dbs()}
        sel = ["-l", "bench.sqltde.io/sub=%02d" % L.change_sub]
    else:
        expect = {L.db(d): "" for d in range(L.dbs)}
        sel = []
    one = ('{.metadata.name}{" "}{.metadata.generation}{" "}{.status.observedGeneration}{" "}'
           '{.status.conditions[?(@.type=="Ready")].status}{" "}{.status.protectorKeyUri}{"\\n"}')
    base = ["kubectl", "get", "sqldatabases", "-n", NS] + sel
    t0 = time.time()
    deadline = t0 + a.timeout
    done = set()
    shown = [0]

    def take(line):
        # name generation observedGeneration Ready protector ("" fields vanish: then not ready)
        f = line.split()
        if not f or f[0] not in expect:
            return
        name = f[0]
        ok = (len(f) >= 4 and f[2] == f[1] and f[3] == "True" and
              (not expect[name] or (len(f) >= 5 and expect[name] in f[4])))
        if ok:
            done.add(name)
        else:
            done.discard(name)
        if a.progress and len(done) >= shown[0] + 1000:
            shown[0] = len(done) // 1000 * 1000
            print("  %d/%d ready after %.0f s" % (len(done), len(expect), time.time() - t0), file=sys.stderr)

    while True:
        w = subprocess.Popen(base + ["--watch-only", "-o", "jsonpath=" + one], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)  # the watch is established before the list
        lst = subprocess.run(base + ["-o", "jsonpath={range .items[*]}" + one + "{end}"], capture_output=True,
                             text=True)
        for line in lst.stdout.splitlines():
            take(line)
        renew = min(deadline, time.time() + 300)
        timer = threading.Timer(max(1, renew - time.time()), w.kill)
        timer.start()
        if len(done) < len(expect):
            for line in w.stdout:
                take(line)
                if len(done) == len(expect):
                    break
        timer.cancel()
        w.kill()
        w.wait()
        if len(done) == len(expect):
            print("%.1f" % (time.time() - t0))
            return
        if time.time() >= deadline:
            missing = sorted(set(expect) - done)
            print("watch: %d of %d not ready after %d s, e.g. %s" % (len(missing), len(expect), a.timeout,
                                                                      missing[:5]), file=sys.stderr)
            print("timeout")
            sys.exit(1)


# ---- request log ----------------------------------------------------------------------

def log_pages(a, since):
    """The emulator's request log after seq `since`, page by page (the
    control API answers at most 10,000 entries per call)."""
    c = Conn("control.localhost", a.port, ssl.create_default_context(cafile=a.ca))
    while True:
        st, text = c.request("GET", "/_emulator/requests?since=%d&limit=10000" % since, None)
        if st != 200:
            sys.exit("request log: HTTP %d" % st)
        v = json.loads(text)["value"]
        if not v:
            return
        yield v
        since = v[-1]["seq"]


def cmd_last_seq(L, a):
    last = a.since
    for page in log_pages(a, a.since):
        last = page[-1]["seq"]
    print(last)


def classify(r):
    """The kind of one logged request ("" = not counted)."""
    host, m, path = r["host"], r["method"], r["path"].rstrip("/").lower()
    if ".vault." in host:
        return "kv_requests"
    if host.startswith("login."):
        return "token_requests"
    if not host.startswith("management."):
        return ""
    if m != "GET":
        return "arm_writes"
    if "azureasyncoperation/" in path or "operationresults/" in path:
        return "arm_reads_lro_poll"
    if path.endswith("/databases"):
        return "arm_reads_db_list"
    if "/databases/" in path:
        return "arm_reads_db_get"
    if "/encryptionprotector" in path:
        return "arm_reads_server_protector"
    if "microsoft.sql" in path and "/keys/" in path:
        return "arm_reads_server_key"
    if "/providers/microsoft.sql/servers/" in path:
        return "arm_reads_server_get"
    if "microsoft.keyvault/vaults" in path:
        return "arm_reads_vault"
    if "roleassignments" in path:
        return "arm_reads_role_assignments"
    return "arm_reads_other"


def cmd_requests(L, a):
    c = {"arm_writes": 0, "arm_reads": 0, "arm_429": 0}
    first_w = last_w = None
    for page in log_pages(a, a.since):
        for r in page:
            if a.until and r["seq"] > a.until:
                break
            k = classify(r)
            if not k:
                continue
            if k.startswith("arm_") and r["status"] == 429:
                # refused by ARM's throttling: not a read or write made
                c["arm_429"] += 1
                continue
            c[k] = c.get(k, 0) + 1
            if k.startswith("arm_reads_"):
                c["arm_reads"] += 1
            if k == "arm_writes":
                first_w = first_w if first_w is not None else r["timeMs"]
                last_w = r["timeMs"]
    if first_w is not None:
        c["arm_writes_span_s"] = "%.1f" % ((last_w - first_w) / 1000.0)
    for k in sorted(c):
        print(a.prefix + k, c[k])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = p.add_subparsers(dest="cmd", required=True)
    x = sp.add_parser("seed"); x.add_argument("file")
    x = sp.add_parser("estate"); x.add_argument("file")
    x = sp.add_parser("crs"); x.add_argument("--port", type=int, required=True); x.add_argument("dir")
    x = sp.add_parser("change"); x.add_argument("--port", type=int, required=True); x.add_argument("file")
    x = sp.add_parser("create-dbs")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--ca", required=True)
    x.add_argument("--arm-token", required=True)
    x.add_argument("--kv-token", required=True)
    x.add_argument("--threads", type=int, default=4)
    x = sp.add_parser("watch")
    x.add_argument("--what", choices=["all", "change"], default="all")
    x.add_argument("--timeout", type=int, default=3600)
    x.add_argument("--progress", action="store_true")
    x = sp.add_parser("requests")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--ca", required=True)
    x.add_argument("--since", type=int, default=0)
    x.add_argument("--until", type=int, default=0)
    x.add_argument("--prefix", default="")
    x = sp.add_parser("last-seq")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--ca", required=True)
    x.add_argument("--since", type=int, default=0)
    a = p.parse_args()
    L = Layout()
    {"seed": cmd_seed, "estate": cmd_estate, "crs": cmd_crs, "change": cmd_change, "create-dbs": cmd_create_dbs,
     "watch": cmd_watch, "requests": cmd_requests, "last-seq": cmd_last_seq}[a.cmd](L, a)


if __name__ == "__main__":
    main()
