#!/usr/bin/env python3
"""`make bench`: the filter against native Envoy and Lua, per-request cost, and scale.

Writes BENCHMARKS.md (or --out), keeping the "## Soak" section `make soak` writes there.
Python standard library plus PyYAML (Debian python3-yaml).
Knobs (environment): BENCH_ROUNDS, BENCH_SECONDS, BENCH_LAT_SECONDS, BENCH_CONNECTIONS,
BENCH_SERVICES, BENCH_SCALE (comma list), BENCH_PROFILES (0 skips the profile study),
BENCH_PORT_BASE, BENCH_ACCESS_LOG (1 keeps the generated access log in every variant).
"""

import argparse
import base64
import copy
import datetime
import glob
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench")
ENV = os.environ.get


def knob(name, default):
    return type(default)(ENV(name, default))


ROUNDS = knob("BENCH_ROUNDS", 5)
SECONDS = knob("BENCH_SECONDS", 6)
LAT_SECONDS = knob("BENCH_LAT_SECONDS", 3)
CONNECTIONS = knob("BENCH_CONNECTIONS", 16)
SERVICES = knob("BENCH_SERVICES", 100)
SCALE = [int(n) for n in ENV("BENCH_SCALE", "10,1000,10000").split(",")]
PROFILES = ENV("BENCH_PROFILES", "1") != "0"
PORT = knob("BENCH_PORT_BASE", 24000)
ACCESS_LOG = ENV("BENCH_ACCESS_LOG", "0") == "1"

UP_HTTP, UP_TLS, UP_DNS, UP_ADMIN = PORT + 80, PORT + 443, PORT + 53, PORT + 90
# Proxy listener / admin ports per variant.
VARIANT_PORTS = {"A": (PORT + 101, PORT + 201), "B": (PORT + 102, PORT + 202),
                 "C": (PORT + 103, PORT + 203), "S": (PORT + 104, PORT + 204)}
PROXY_CPU, LOAD_CPU = "0", "1"
TARGET_HOST = "svc-00042.mesh"

EXTSVC = os.path.join(ROOT, "target", "release", "extsvc")
WASM = os.path.join(ROOT, "target", "wasm32-wasip1", "release", "external_service_filter.wasm")

started = []  # every process this script starts; all are stopped on exit


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def envoy_binary():
    found = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "envoy", "_bin", "envoy"))
    # The .venv/bin/envoy wrapper is Python: run the real binary so the pid is Envoy's own.
    return found[0] if found else os.path.join(ROOT, ".venv", "bin", "envoy")


ENVOY = envoy_binary()


def name(i):
    return f"svc-{i:05d}"


# ---------------------------------------------------------------- configurations

def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def make_certs(n):
    """A CA and one upstream certificate whose SANs cover the first n service hosts."""
    d = os.path.join(WORK, "certs")
    os.makedirs(d, exist_ok=True)
    ossl = lambda *a: run(["openssl", *a], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=bench CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=bench upstream",
         "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    sans = ",".join(f"DNS:{name(i)}.bench.test" for i in range(n))
    write(f"{d}/server.ext", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{d}/server.ext", "-out", f"{d}/server.pem")
    return d


def upstream_config(certs, dns_names):
    """The fast upstream: direct_response 200 on plain HTTP and on TLS, and a DNS server."""
    hcm = lambda prefix: {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": prefix,
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}
    addr = lambda port, proto="TCP": {"socket_address": {"protocol": proto, "address": "127.0.0.1", "port_value": port}}
    return {
        "admin": {"address": addr(UP_ADMIN)},
        "static_resources": {"listeners": [
            {"name": "http", "address": addr(UP_HTTP), "filter_chains": [{"filters": [hcm("up_http")]}]},
            {"name": "tls", "address": addr(UP_TLS), "filter_chains": [{
                "filters": [hcm("up_tls")],
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "common_tls_context": {
                        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
                        "tls_certificates": [{"certificate_chain": {"filename": f"{certs}/server.pem"},
                                              "private_key": {"filename": f"{certs}/server.key"}}]}}}}]},
            {"name": "dns", "address": addr(UP_DNS, "UDP"), "listener_filters": [{
                "name": "envoy.filters.udp.dns_filter", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.udp.dns_filter.v3.DnsFilterConfig",
                    "stat_prefix": "bench_dns",
                    "server_config": {"inline_dns_table": {"virtual_domains": [
                        {"name": h, "endpoint": {"address_list": {"address": ["127.0.0.1"]}}} for h in dns_names]}}}}]},
        ]}}


def address(i, tls, ip=False):
    """Where service i lives: a name the bench DNS answers, or a loopback IP (no DNS at all)."""
    port = UP_TLS if tls else UP_HTTP
    return f"127.1.{i >> 8}.{i & 255}:{port}" if ip else f"{name(i)}.bench.test:{port}"


def resources(n, tls, ca_pem=None, ip=False):
    """n ExternalServices svc-NNNNN -> address(i), passthrough off."""
    docs = [{"type": "Mesh", "name": "default", "networking": {"outbound": {"passthrough": False}}}]
    for i in range(n):
        net = {"address": address(i, tls, ip)}
        if tls:
            net["tls"] = {"enabled": True, "caCert": {"inline": base64.b64encode(ca_pem.encode()).decode()}}
        docs.append({"type": "ExternalService", "mesh": "default", "name": f"es-{i}",
                     "tags": {"kuma.io/service": name(i), "kuma.io/protocol": "http"}, "networking": net})
    return docs


def generate(res_path, out, wasm=WASM):
    """Runs extsvc generate under /usr/bin/time: wall seconds, peak RSS KiB, CPU seconds."""
    cmd = [EXTSVC, "generate", res_path, "-o", out, "--listen", f"127.0.0.1:{VARIANT_PORTS['A'][0]}",
           "--admin", f"127.0.0.1:{VARIANT_PORTS['A'][1]}", "--wasm", wasm,
           "--system-ca", "/etc/ssl/certs/ca-certificates.crt", "--dns-resolver", f"127.0.0.1:{UP_DNS}"]
    stats = out + ".time"
    r = run(["/usr/bin/time", "-o", stats, "-f", "%e %M %U %S", *cmd], check=False)
    if r.returncode != 0:
        raise SystemExit(f"extsvc generate failed ({r.returncode}): {' '.join(cmd)}")
    wall, rss, user, system = open(stats).read().split()[-4:]
    return cmd, float(wall), int(rss), float(user) + float(system)


def outbound_hcm(cfg):
    for lst in cfg["static_resources"]["listeners"]:
        if lst["name"] == "outbound_http":
            return lst["filter_chains"][0]["filters"][0]["typed_config"]
    raise SystemExit("generated config has no outbound_http listener")


LUA = """
-- The same job as the filter: .mesh name (or declared host) -> rewrite; anything else -> 403.
local services = {
%s
}
function envoy_on_request(handle)
  local headers = handle:headers()
  local target = services[string.lower(headers:get(":authority") or "")]
  if target == nil then
    handle:respond({[":status"] = "403", ["x-external-service-denied"] = "undeclared-host"},
      "the host is not declared by any ExternalService\\n")
    return
  end
  headers:replace(":authority", target)
  handle:clearRouteCache()
end
"""


def variant(cfg_a, kind, n, tls, wasm=None, ip=False):
    """A (generated, wasm), B (native routes + host_rewrite_literal), C (Lua): same clusters."""
    cfg = copy.deepcopy(cfg_a)
    listen, admin = VARIANT_PORTS[kind]
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    for lst in cfg["static_resources"]["listeners"]:
        if lst["name"] == "outbound_http":
            lst["address"]["socket_address"]["port_value"] = listen
    hcm = outbound_hcm(cfg)
    if not ACCESS_LOG:
        hcm.pop("access_log", None)
    # What the filter rewrites to: the host, plus the port unless it is the scheme's default.
    authority = lambda i: address(i, tls, ip)
    wasm_filter = [f for f in hcm["http_filters"] if "wasm" in f["typed_config"]["@type"]]
    if not wasm_filter:
        raise SystemExit("generated config has no wasm filter")
    if kind == "A" and wasm:
        wasm_filter[0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = wasm
    if kind == "B":
        hcm["http_filters"].remove(wasm_filter[0])
        vhosts = [{"name": f"external_service_{name(i)}",
                   "domains": [f"{name(i)}.mesh", f"{name(i)}.mesh:80", authority(i)],
                   "routes": [{"match": {"prefix": "/"}, "route": {
                       "cluster": f"external_service_{name(i)}", "host_rewrite_literal": authority(i)}}]}
                  for i in range(n)]
        catch_all = hcm["route_config"]["virtual_hosts"][-1]
        hcm["route_config"]["virtual_hosts"] = vhosts + [catch_all]
    if kind == "C":
        entries = []
        for i in range(n):
            for h in (f"{name(i)}.mesh", f"{name(i)}.mesh:80", authority(i)):
                entries.append(f'  ["{h}"] = "{authority(i)}",')
        lua = {"name": "envoy.filters.http.lua", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": LUA % "\n".join(entries)}}}
        hcm["http_filters"][hcm["http_filters"].index(wasm_filter[0])] = lua
    return cfg


# ---------------------------------------------------------------- processes

def start_envoy(cfg_path, cpu, log_path, concurrency=1):
    cmd = ["taskset", "-c", cpu, ENVOY, "-c", cfg_path, "--concurrency", str(concurrency),
           "--disable-hot-restart", "-l", "error", "--file-flush-interval-msec", "1000"]
    out = open(log_path, "w")
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL if not ACCESS_LOG else out, stderr=out,
                         start_new_session=True)
    started.append(p)
    return p, t


def admin_get(port, path, timeout=2):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def wait_live(p, admin, t0, log_path, limit=120):
    while time.perf_counter() - t0 < limit:
        if p.poll() is not None:
            raise SystemExit(f"envoy exited {p.returncode}; see {log_path}:\n" + open(log_path).read()[-3000:])
        try:
            status, body = admin_get(admin, "/ready", timeout=1)
            if status == 200 and body.strip() == "LIVE":
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"envoy not LIVE after {limit}s; see {log_path}")


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in started:
        started.remove(p)


def stop_all(*_):
    for p in list(started):
        stop(p)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (all threads), clock ticks


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(port, host):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/get", headers={"Host": host})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


TICK = os.sysconf("SC_CLK_TCK")
UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def wrk(port, seconds, connections, host=TARGET_HOST):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-H", f"Host: {host}", f"http://127.0.0.1:{port}/get"]
    out = run(cmd, capture_output=True, text=True).stdout
    lat = {m.group(1): float(m.group(2)) * UNIT[m.group(3)]
           for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise SystemExit(f"wrk saw failures on port {port}:\n{out}")
    return {"requests": reqs, "rps": reqs / seconds, "p50": lat.get("50"), "p99": lat.get("99")}, cmd


def measured(proc, port, seconds, connections, host=TARGET_HOST):
    before = cpu_ticks(proc.pid)
    r, cmd = wrk(port, seconds, connections, host)
    r["cpu_us"] = (cpu_ticks(proc.pid) - before) / TICK * 1e6 / max(r["requests"], 1)
    return r, cmd


# ---------------------------------------------------------------- part 1: throughput

def throughput(label, tls, certs, kinds=("A", "B", "C"), wasm_by_kind=None, rounds=ROUNDS, seconds=SECONDS,
               latency=True, host=TARGET_HOST, smoke=True):
    d = os.path.join(WORK, label)
    os.makedirs(d, exist_ok=True)
    ca = open(f"{certs}/ca.pem").read() if tls else None
    res = write(f"{d}/resources.yaml", yaml.safe_dump_all(resources(SERVICES, tls, ca), sort_keys=False))
    gen_cmd, *_ = generate(res, f"{d}/A.generated.yaml")
    cfg_a = yaml.safe_load(open(f"{d}/A.generated.yaml"))
    procs, cmds = {}, {}
    for kind in kinds:
        base = kind[0]
        wasm = (wasm_by_kind or {}).get(kind)
        cfg = variant(cfg_a, base, SERVICES, tls, wasm)
        path = write(f"{d}/{kind}.yaml", yaml.safe_dump(cfg, sort_keys=False))
        procs[kind] = None
        cmds[kind] = path
    # Profile variants all use A's ports: run them one at a time; A/B/C run side by side.
    results = {k: [] for k in kinds}
    lat_results = {k: [] for k in kinds}
    wrk_cmd = lat_cmd = None
    side_by_side = len({k[0] for k in kinds}) == len(kinds)

    def up(kind):
        listen, admin = VARIANT_PORTS[kind[0]]
        lp = f"{d}/{kind}.log"
        p, t0 = start_envoy(cmds[kind], PROXY_CPU, lp)
        wait_live(p, admin, t0, lp)
        checks = ((TARGET_HOST, 200), (f"{name(7)}.mesh", 200), ("not-declared.example.com", 403))
        for h, want in checks if smoke else ((host, 200),):
            got = request(listen, h)
            if got != want:
                raise SystemExit(f"{label} {kind}: {h} answered {got}, expected {want}; see {lp}")
        wrk(listen, 2, CONNECTIONS, host)  # warm-up: connections to the upstream, V8 tiers up
        return p

    if side_by_side:
        for k in kinds:
            procs[k] = up(k)
    for r in range(rounds):
        order = list(kinds[r % len(kinds):]) + list(kinds[:r % len(kinds)])
        for k in order:
            if not side_by_side:
                procs[k] = up(k)
            listen, _ = VARIANT_PORTS[k[0]]
            res_t, wrk_cmd = measured(procs[k], listen, seconds, CONNECTIONS, host)
            results[k].append(res_t)
            if latency:
                res_l, lat_cmd = measured(procs[k], listen, LAT_SECONDS, 1, host)
                lat_results[k].append(res_l)
            log(f"{label} round {r + 1}/{rounds} {k}: {res_t['rps']:.0f} req/s, "
                f"{res_t['cpu_us']:.1f} us CPU/req, p99 {res_t['p99']:.0f} us")
            if not side_by_side:
                stop(procs[k])
    for p in procs.values():
        if p:
            stop(p)
    return {"results": results, "latency": lat_results, "gen_cmd": gen_cmd, "wrk_cmd": wrk_cmd,
            "lat_cmd": lat_cmd, "dir": d}


def med(xs):
    return statistics.median(xs)


def fmt_range(xs, f="{:.0f}"):
    return f"{f.format(med(xs))} ({f.format(min(xs))}–{f.format(max(xs))})"


def throughput_table(t, kinds, names):
    rows = ["| variant | requests/s | p50 µs | p99 µs | proxy CPU µs/request | p50 µs at 1 connection | p99 µs at 1 connection |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for k in kinds:
        r = t["results"][k]
        lat = t["latency"][k]
        col = lambda rs, key, f="{:.0f}": fmt_range([x[key] for x in rs], f) if rs else "–"
        rows.append(f"| {names[k]} | {col(r, 'rps')} | {col(r, 'p50')} | {col(r, 'p99')} | "
                    f"{col(r, 'cpu_us', '{:.2f}')} | {col(lat, 'p50')} | {col(lat, 'p99')} |")
    return "\n".join(rows)


def ratios(t, a, b):
    """Ratios of medians, and the range of the per-round (paired) ratios."""
    ra, rb = t["results"][a], t["results"][b]
    out = {}
    for key in ("cpu_us", "rps", "p99"):
        paired = [x[key] / y[key] for x, y in zip(ra, rb)]
        out[key] = (med([x[key] for x in ra]) / med([y[key] for y in rb]), min(paired), max(paired))
    la, lb = t["latency"][a], t["latency"][b]
    if la and lb:
        out["p99_added_1c"] = med([x["p99"] for x in la]) - med([y["p99"] for y in lb])
        out["p50_added_1c"] = med([x["p50"] for x in la]) - med([y["p50"] for y in lb])
    out["p99_added"] = med([x["p99"] for x in ra]) - med([y["p99"] for y in rb])
    return out


# ---------------------------------------------------------------- part 2: fuel

def cargo_env():
    env = dict(os.environ)
    # The bench profile inherits release (fat LTO, 1 codegen unit): minutes more for wasmtime, and
    # fuel counts the module's instructions, not the host's.
    env.setdefault("CARGO_PROFILE_BENCH_LTO", "false")
    env.setdefault("CARGO_PROFILE_BENCH_CODEGEN_UNITS", "16")
    return env


def filter_cost(modules):
    args = [f"{label}={path}" for label, path in modules]
    cmd = ["cargo", "bench", "-q", "-p", "host-tests", "--bench", "filter_cost", "--", *args]
    out = run(cmd, capture_output=True, text=True, cwd=ROOT, env=cargo_env()).stdout
    return cmd, out


# ---------------------------------------------------------------- release profile study

PROFILE_SET = {
    # name: cargo --config overrides on top of [profile.release] (lto, codegen-units 1, panic abort, strip)
    "o3": {"opt-level": 3},
    "os": {"opt-level": "s"},
    "oz": {"opt-level": "z"},
    "o3-thin": {"opt-level": 3, "lto": "thin", "codegen-units": 16},
}


def build_profiles():
    built = []
    for prof, opts in PROFILE_SET.items():
        pname = f"wasm-{prof}"
        cfg = [f'profile.{pname}.inherits="release"'] + [
            f"profile.{pname}.{k}={json.dumps(v)}" for k, v in opts.items()]
        cmd = ["cargo", "build", "-q", "--target", "wasm32-wasip1", "-p", "external-service-filter",
               "--profile", pname] + [x for c in cfg for x in ("--config", c)]
        log(f"building the module with {prof}: {opts}")
        run(cmd, cwd=ROOT)
        path = os.path.join(ROOT, "target", "wasm32-wasip1", pname, "external_service_filter.wasm")
        built.append((prof, path, " ".join(cmd)))
    if shutil.which("wasm-opt") is None:
        run(["apt-get", "install", "-y", "-qq", "binaryen"], stdout=subprocess.DEVNULL, check=False)
    if shutil.which("wasm-opt"):
        feats = ["--enable-bulk-memory", "--enable-sign-ext", "--enable-nontrapping-float-to-int",
                 "--enable-mutable-globals", "--enable-multivalue", "--enable-reference-types"]
        for src, flag in (("o3", "-O3"), ("oz", "-Oz"), ("os", "-Oz")):
            path = next(p for n, p, _ in built if n == src)
            out = os.path.join(WORK, f"{src}+wasm-opt{flag}.wasm")
            cmd = ["wasm-opt", flag, "--strip-debug", "--strip-producers", *feats, path, "-o", out]
            r = run(cmd, check=False, capture_output=True, text=True)
            if r.returncode == 0:
                built.append((f"{src}+wasm-opt{flag}", out, " ".join(cmd)))
            else:
                log(f"wasm-opt {flag} on {src} failed: {r.stderr.strip()[:300]}")
    return built


# ---------------------------------------------------------------- part 3: scale

def scale(certs_unused):
    rows = []
    for n in SCALE:
        d = os.path.join(WORK, f"scale-{n}")
        os.makedirs(d, exist_ok=True)
        res = write(f"{d}/resources.yaml", yaml.safe_dump_all(resources(n, False, ip=True), sort_keys=False))
        gens = sorted((generate(res, f"{d}/A.yaml") for _ in range(3)), key=lambda g: g[1])
        cmd, wall, _, cpu = gens[1]
        row = {"n": n, "gen_wall": wall, "gen_wall_range": (gens[0][1], gens[-1][1]),
               "gen_rss_kib": max(g[2] for g in gens), "gen_cpu": cpu,
               "size": os.path.getsize(f"{d}/A.yaml"), "gen_cmd": cmd}
        cfg_a = yaml.safe_load(open(f"{d}/A.yaml"))
        for kind in ("A", "B"):
            cfg = variant(cfg_a, kind, n, False, ip=True)
            path = write(f"{d}/{kind}.run.yaml", yaml.safe_dump(cfg, sort_keys=False))
            lives, rsss = [], []
            for _ in range(2 if n >= 10000 else 3):
                lp = f"{d}/{kind}.log"
                p, t0 = start_envoy(path, PROXY_CPU, lp)
                lives.append(wait_live(p, VARIANT_PORTS[kind][1], t0, lp))
                time.sleep(0.5)
                # Nothing listens on 127.1.x.y: a routed request gets 503 (connect failure), a refused one 403.
                got = request(VARIANT_PORTS[kind][0], f"{name(n - 1)}.mesh")
                rsss.append(rss_kib(p.pid))
                stop(p)
                if got != 503:
                    raise SystemExit(f"scale {n} {kind}: the last service answered {got}, expected 503; see {lp}")
            row[f"{kind}_live"] = med(lives)
            row[f"{kind}_live_range"] = (min(lives), max(lives))
            row[f"{kind}_rss_kib"] = med(rsss)
        log(f"scale {n}: generate {wall * 1000:.0f} ms, A LIVE {row['A_live']:.2f} s, B LIVE {row['B_live']:.2f} s")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- report

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001 - only for the report header
        return f"({e})"


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": sh("nproc"), "cpu": cpu, "kernel": sh("uname -r"),
        "debian": sh("cat /etc/debian_version"), "envoy": sh(f"{ENVOY} --version"),
        "wrk": sh("wrk --version 2>&1 | head -1"), "rustc": sh("rustc --version"),
        "wasm_opt": sh("wasm-opt --version 2>/dev/null") or "not installed",
        "commit": sh(f"git -C {ROOT} rev-parse --short HEAD") + (" (dirty tree)" if sh(f"git -C {ROOT} status --porcelain --untracked-files=no") else ""),
        "load": sh("cat /proc/loadavg"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--report-only", action="store_true",
                    help="re-write the report from the last run's target/bench/results.json")
    args = ap.parse_args()
    saved = os.path.join(WORK, "results.json")
    if args.report_only:
        report(args.out, **json.load(open(saved)))
        return
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(1)))
    os.makedirs(WORK, exist_ok=True)
    t_start = time.perf_counter()
    m = machine()
    m["knobs"] = dict(rounds=ROUNDS, seconds=SECONDS, lat_seconds=LAT_SECONDS, connections=CONNECTIONS,
                      services=SERVICES)
    log(f"machine: {m['nproc']} x {m['cpu']}, load {m['load']}")
    certs = make_certs(SERVICES)
    dns_names = [f"{name(i)}.bench.test" for i in range(SERVICES)]
    up_cfg = write(os.path.join(WORK, "upstream.yaml"), yaml.safe_dump(upstream_config(certs, dns_names)))
    try:
        up, t0 = start_envoy(up_cfg, LOAD_CPU, os.path.join(WORK, "upstream.log"))
        wait_live(up, UP_ADMIN, t0, os.path.join(WORK, "upstream.log"))
        names = {"A": "A: generated config, wasm filter", "B": "B: native routes + host_rewrite_literal",
                 "C": "C: Lua filter"}
        log("part 1: plain HTTP upstream")
        plain = throughput("plain", False, certs)
        log("part 1: TLS origination")
        tls = throughput("tls", True, certs)
        modules = [("release (opt-level 3, as built)", WASM)]
        prof_built = build_profiles() if PROFILES else []
        log("part 2: fuel")
        cost_cmd, cost_out = filter_cost(modules + [(n, p) for n, p, _ in prof_built])
        prof_t = None
        if prof_built:
            log("profile study: throughput of A with each module")
            kinds = [f"A-{n}" for n, _, _ in prof_built]
            prof_t = throughput("profiles", False, certs, kinds=kinds,
                                wasm_by_kind={f"A-{n}": p for n, p, _ in prof_built},
                                rounds=max(2, ROUNDS // 2), seconds=max(3, SECONDS // 2), latency=False)
        log("part 3: scale")
        sc = scale(certs)
    finally:
        stop_all()
    elapsed = time.perf_counter() - t_start
    m["load_after"] = sh("cat /proc/loadavg")
    data = dict(m=m, plain=plain, tls=tls, names=names, cost_cmd=cost_cmd, cost_out=cost_out,
                prof_built=prof_built, prof_t=prof_t, sc=sc, elapsed=elapsed)
    write(saved, json.dumps(data, indent=1))
    report(args.out, **data)
    log(f"wrote {args.out} in {elapsed:.0f} s")


def report(out, m, plain, tls, names, cost_cmd, cost_out, prof_built, prof_t, sc, elapsed):
    kn = m.get("knobs", {})
    rounds, seconds, lat_seconds = kn.get("rounds", ROUNDS), kn.get("seconds", SECONDS), kn.get("lat_seconds", LAT_SECONDS)
    conns, services = kn.get("connections", CONNECTIONS), kn.get("services", SERVICES)
    L = []
    w = L.append
    w("# Benchmarks\n")
    w("Written by `make bench` (`bench/bench.py`); regenerate with `make bench`. "
      "Hand-written notes live in `bench/NOTES.md` and are appended below.\n")
    w("## Machine and versions\n")
    w(f"- Date: {m['date']}; commit {m['commit']}; whole run {elapsed / 60:.1f} min")
    w(f"- `nproc`: {m['nproc']}; CPU: {m['cpu']}; kernel {m['kernel']}; Debian {m['debian']}")
    w(f"- Load average before / after: `{m['load']}` / `{m['load_after']}` (the machine is shared)")
    w(f"- Envoy: `{m['envoy']}`")
    w(f"- wrk: `{m['wrk']}`; {m['rustc']}; wasm-opt: {m['wasm_opt']}\n")
    w("## Targets\n")
    summary = {}
    for line in cost_out.splitlines():
        if line.startswith("SUMMARY"):
            parts = line.split("\t")
            summary[parts[1]] = parts[2:]
    ok = lambda c: "met" if c else "**missed**"
    w("| target | result | |")
    w("|---|---|---|")
    for title, t in (("plain", plain), ("TLS", tls)):
        ab, ac = ratios(t, "A", "B"), ratios(t, "A", "C")
        w(f"| A/B proxy CPU per request <= 1.05 ({title}) | {ab['cpu_us'][0]:.3f} | {ok(ab['cpu_us'][0] <= 1.05)} |")
        w(f"| A/B requests/s >= 0.95 ({title}) | {ab['rps'][0]:.3f} | {ok(ab['rps'][0] >= 0.95)} |")
        added = ab.get("p99_added_1c")
        w(f"| p99 added by the filter <= 50 µs, 1 connection ({title}) | {added:+.0f} µs | {ok(added is not None and added <= 50)} |")
        w(f"| A cheaper than C, CPU per request ({title}) | A/C {ac['cpu_us'][0]:.3f} | {ok(ac['cpu_us'][0] < 1.0)} |")
    rel = next(iter(summary.values()), None)
    if rel:
        fwd = int(rel[1]) / max(int(rel[0]), 1)
        deny = int(rel[3]) / max(int(rel[2]), 1)
        w(f"| Per-request fuel 1 -> 10,000 services <= +10% | forward x{fwd:.3f}, deny x{deny:.3f} | {ok(fwd <= 1.10 and deny <= 1.10)} |")
        w(f"| Configure 10,000 services <= 100 ms in the wasm engine | {rel[5]} in wasmtime (Cranelift, no opt), {int(rel[4]) / 1e6:.0f} M fuel | {ok(float(rel[5].split()[0]) <= 100)} |")
    size = os.path.getsize(WASM)
    w(f"| `.wasm` <= 300 KiB | {size / 1024:.1f} KiB | {ok(size <= 300 * 1024)} |")
    big = [r for r in sc if r["n"] == 10000]
    if big:
        w(f"| Generate 10,000 services <= 1 s | {big[0]['gen_wall'] * 1000:.0f} ms | {ok(big[0]['gen_wall'] <= 1.0)} |")
    w("")
    w("## 1. Throughput and latency through Envoy\n")
    w(f"Setup: the proxy Envoy runs with `--concurrency 1`, pinned to CPU {PROXY_CPU} (`taskset -c {PROXY_CPU}`); "
      f"wrk (`-t1`) and the upstream Envoy (`direct_response` 200, `--concurrency 1`) are pinned to CPU {LOAD_CPU}. "
      f"{services} ExternalServices, Mesh passthrough off; every request is `GET /get` with `Host: {TARGET_HOST}` "
      "(forwarded, rewritten to `svc-00042.bench.test:PORT`). "
      f"The three proxies run side by side; each round runs A, B, C in a rotated order (ABC, BCA, CAB, ...), "
      f"{rounds} rounds, {seconds} s at {conns} connections, then {lat_seconds} s at 1 connection "
      "(latency at equal, light load). A 2 s warm-up precedes the rounds. "
      "Cells: median (min–max over rounds). Proxy CPU per request = (utime+stime of the Envoy process from "
      "`/proc/<pid>/stat`, all threads, across the wrk run) / requests served.\n")
    w("- A: `extsvc generate` output" + ("" if ACCESS_LOG else
      " with its stdout access log removed (from all three variants: it would add the same cost to each "
      "and hide the filter's share; `BENCH_ACCESS_LOG=1` keeps it)") + ".")
    w("- B: the same config without the wasm filter; one virtual host per service (`svc.mesh`, `svc.mesh:80`, "
      "the real `host:port`) with `host_rewrite_literal`, then the generated 403 catch-all.")
    w("- C: the same config with the wasm filter replaced by a Lua filter (a table lookup, "
      "`headers:replace(':authority', ...)`, `clearRouteCache()`, or `respond(403)`).\n")
    w(f"Commands: `{' '.join(plain['gen_cmd'])}`; `{' '.join(plain['wrk_cmd'])}`; `{' '.join(plain['lat_cmd'] or [])}`. "
      f"Configs and logs: `{os.path.relpath(plain['dir'], ROOT)}/`, `{os.path.relpath(tls['dir'], ROOT)}/`.\n")
    for title, t in (("Plain HTTP upstream", plain), ("TLS origination (upstream TLS 1.3, CA and SAN verified)", tls)):
        w(f"### {title}\n")
        w(throughput_table(t, ["A", "B", "C"], names) + "\n")
        ab, ac = ratios(t, "A", "B"), ratios(t, "A", "C")
        cb = ratios(t, "C", "B")
        ok = lambda c: "**met**" if c else "**missed**"
        w("| ratio | CPU per request | requests/s | p99 (16 conns) | p99 added at 1 connection | target |")
        w("|---|---:|---:|---:|---:|---|")
        fmt = lambda r, k: f"{r[k][0]:.3f} ({r[k][1]:.3f}–{r[k][2]:.3f})"
        w(f"| A/B | {fmt(ab, 'cpu_us')} | {fmt(ab, 'rps')} | {fmt(ab, 'p99')} | {ab.get('p99_added_1c', 0):+.0f} µs | "
          f"CPU ≤ 1.05: {ok(ab['cpu_us'][0] <= 1.05)}; rps ≥ 0.95: {ok(ab['rps'][0] >= 0.95)}; "
          f"p99 added ≤ 50 µs: {ok(ab.get('p99_added_1c', 1e9) <= 50)} |")
        w(f"| A/C | {fmt(ac, 'cpu_us')} | {fmt(ac, 'rps')} | {fmt(ac, 'p99')} | {ac.get('p99_added_1c', 0):+.0f} µs | "
          f"A cheaper than C: {ok(ac['cpu_us'][0] < 1.0)} |")
        w(f"| C/B | {fmt(cb, 'cpu_us')} | {fmt(cb, 'rps')} | {fmt(cb, 'p99')} | {cb.get('p99_added_1c', 0):+.0f} µs | (Lua's cost, for scale) |\n")
        cpu_a = med([x["cpu_us"] for x in t["results"]["A"]])
        cpu_b = med([x["cpu_us"] for x in t["results"]["B"]])
        w(f"Filter's share of the proxy's CPU per request: {cpu_a - cpu_b:+.2f} µs of {cpu_a:.2f} µs "
          f"({(cpu_a - cpu_b) / cpu_a * 100:+.1f}%). Ratios: of medians, with the range of the per-round ratios.\n")
    w("## 2. Per-request cost inside the filter (wasmtime host, fuel)\n")
    w(f"Command: `{' '.join(cost_cmd)}` (source: `host-tests/benches/filter_cost.rs`). "
      "Services are named `svc-NNNNN` (fixed width) so the measured request's strings have the same length at every "
      "count; the forwarded request is for the last service, the denied one for an undeclared host (passthrough off). "
      "Seven request headers, log level info (Envoy's default), 20 warm-up requests before the measured one. "
      "Fuel ≈ wasm instructions: it does not depend on machine load. Wall-clock columns do, and the host compiles "
      "with Cranelift `OptLevel::None` (`host-tests/src/plugin.rs`), so they are pessimistic next to V8's optimising tier: "
      "Envoy's own start-up times are in part 3.\n")
    w("\n".join(l for l in cost_out.splitlines() if not l.startswith("SUMMARY")) + "\n")
    if prof_built:
        w("## Release profile study (the module Envoy loads)\n")
        w("Every build keeps `lto = true`, `codegen-units = 1`, `panic = \"abort\"`, `strip = true` from "
          "`[profile.release]` unless the name says otherwise; built with "
          "`cargo build --target wasm32-wasip1 -p external-service-filter --profile wasm-<name> "
          "--config 'profile.wasm-<name>.inherits=\"release\"' --config 'profile.wasm-<name>.opt-level=...'`; "
          "`+wasm-opt` rows are that build run through binaryen's `wasm-opt`.\n")
        w("| build | .wasm bytes | KiB | forward fuel (1 / 10,000 services) | deny fuel (1 / 10,000) | configure 10,000: fuel | configure 10,000: wall | A requests/s | A CPU µs/request |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n, p, _ in prof_built:
            s = summary.get(n, ["?"] * 7)
            tr = prof_t["results"].get(f"A-{n}", []) if prof_t else []
            rps = fmt_range([x["rps"] for x in tr]) if tr else "–"
            cpu = fmt_range([x["cpu_us"] for x in tr], "{:.2f}") if tr else "–"
            size = os.path.getsize(p)
            w(f"| {n} | {size} | {size / 1024:.1f} | {s[0]} / {s[1]} | {s[2]} / {s[3]} | {s[4]} | {s[5]} | {rps} | {cpu} |")
        if prof_t:
            w(f"\nThroughput rows: variant A (plain HTTP), {max(2, rounds // 2)} rounds of {max(3, seconds // 2)} s, "
              "one proxy at a time, rotated order; median (min–max).\n")
    w("## 3. Generator and Envoy at scale\n")
    w("`extsvc generate` under `/usr/bin/time -f '%e %M %U %S'` (median wall of 3 runs, max peak RSS), then Envoy started on the "
      f"generated config (`--concurrency 1`, CPU {PROXY_CPU}): time from spawn to `/ready` = `LIVE`, and VmRSS "
      "0.5 s after LIVE (median of 3 starts, 2 at 10,000). B is the native variant of part 1 at the same size, for "
      "comparison. Services have loopback IP addresses (`127.1.x.y:PORT`, STATIC clusters): with host names every "
      "STRICT_DNS cluster waits for its first DNS answer before Envoy is LIVE, which measures the resolver, not the "
      "configuration (a trial with the bench's DNS server took ~6 s to LIVE at 1,000 services for A and B alike).\n")
    w("| services | config bytes | generate wall | generate CPU | generate peak RSS | A (wasm) to LIVE | A RSS | B (native) to LIVE | B RSS |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sc:
        w(f"| {r['n']} | {r['size']} | {r['gen_wall'] * 1000:.0f} ms ({r['gen_wall_range'][0] * 1000:.0f}–{r['gen_wall_range'][1] * 1000:.0f}) | {r['gen_cpu'] * 1000:.0f} ms | "
          f"{r['gen_rss_kib'] / 1024:.1f} MiB | {r['A_live']:.2f} s ({r['A_live_range'][0]:.2f}–{r['A_live_range'][1]:.2f}) | "
          f"{r['A_rss_kib'] / 1024:.0f} MiB | {r['B_live']:.2f} s ({r['B_live_range'][0]:.2f}–{r['B_live_range'][1]:.2f}) | {r['B_rss_kib'] / 1024:.0f} MiB |")
    if sc:
        w(f"\nCommand: `{' '.join(sc[-1]['gen_cmd'])}`.\n")
    notes = os.path.join(ROOT, "bench", "NOTES.md")
    if os.path.exists(notes):
        w(open(notes).read())
    # `make soak` owns the "## Soak" section of the same file: keep it.
    if os.path.exists(out):
        soak = re.search(r"^## Soak\n.*?(?=^## |\Z)", open(out).read(), flags=re.S | re.M)
        if soak:
            w(soak.group(0).rstrip("\n") + "\n")
    write(out, "\n".join(L) + "\n")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
