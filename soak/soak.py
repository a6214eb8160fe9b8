#!/usr/bin/env python3
"""Soak: fixed-rate load through the generated configuration with TLS origination.

An upstream Envoy on loopback serves TLS for `httpbin.test` (the declared service), plain
HTTP for `plain.test` (undeclared: it must never see a request) and DNS for both. The Envoy
under test runs what `extsvc generate` makes of one ExternalService (TLS, caCert) with
passthrough off. The load mixes declared requests (`Host: httpbin.mesh`, want 200) and
undeclared ones (`Host: plain.test:<port>`, want 403) at a fixed rate on keep-alive
connections, and every 10 s samples Envoy's resident memory (/proc) and the filter's gauge
`wasmcustom.external_service.vm_memory_bytes`.

Writes soak/RESULTS.md and the "## Soak" section of BENCHMARKS.md (replaced if present, else
appended; nothing else in that file is touched). Exit status 1 when a check fails.

Python 3 standard library only; openssl makes the certificates. Everything on 127.0.0.1;
every process started here is killed on exit.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVOY = Path(os.environ.get("EXTSVC_ENVOY", ROOT / ".venv/bin/envoy"))
WASM = Path(os.environ.get("EXTSVC_WASM", ROOT / "target/wasm32-wasip1/release/external_service_filter.wasm"))
EXTSVC = ROOT / "target/release/extsvc"
SAMPLE_PERIOD = 10.0
GAUGE = "wasmcustom.external_service.vm_memory_bytes"

PROCS: list[subprocess.Popen] = []


def sh(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


def certs(d: Path) -> None:
    """A CA and a server certificate for httpbin.test / 127.0.0.1."""
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=soak-ca", cwd=d)
    (d / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:httpbin.test,IP:127.0.0.1\n")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=httpbin.test", cwd=d)
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    os.chmod(d / "server.key", 0o600)
    os.chmod(d / "ca.key", 0o600)


def upstream_yaml(d: Path) -> str:
    def http_listener(name: str, tls: bool) -> str:
        y = f"""  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "hello from {name}\\n"}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"""
        if tls:
            y += f"""      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{filename: "{d / 'server.pem'}"}}
              private_key: {{filename: "{d / 'server.key'}"}}
"""
        return y

    return (
        "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
        "static_resources:\n  listeners:\n"
        + http_listener("tls", True)
        + http_listener("plain", False)
        + """  - name: dns
    address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: 0}}
    listener_filters:
    - name: envoy.filters.udp.dns_filter
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.udp.dns_filter.v3.DnsFilterConfig
        stat_prefix: soak_dns
        server_config:
          inline_dns_table:
            virtual_domains:
            - name: httpbin.test
              endpoint: {address_list: {address: ["127.0.0.1"]}}
            - name: plain.test
              endpoint: {address_list: {address: ["127.0.0.1"]}}
"""
    )


class Envoy:
    """An Envoy process; admin address read back from --admin-address-path."""

    base = (os.getpid() % 100_000) * 10

    def __init__(self, d: Path, name: str, config: Path):
        Envoy.base += 1
        self.name = name
        self.admin_path = d / f"{name}.admin"
        self.log = open(d / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [str(ENVOY), "-c", str(config), "--base-id", str(Envoy.base), "--disable-hot-restart",
             "--concurrency", "1", "-l", "warning", "--admin-address-path", str(self.admin_path)],
            stdout=subprocess.DEVNULL, stderr=self.log, stdin=subprocess.DEVNULL)
        PROCS.append(self.proc)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"envoy {name} exited; see {d / (name + '.log')}")
            try:
                self.admin = self.admin_path.read_text().strip()
                if self.get("/ready").strip() == "LIVE":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"envoy {name} not ready in 30 s")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as r:
            return r.read().decode()

    def stats(self) -> dict[str, int]:
        out = {}
        for line in self.get("/stats").splitlines():
            k, _, v = line.rpartition(": ")
            if v.isdigit():
                out[k] = int(v)
        return out

    def listeners(self) -> dict[str, int]:
        v = json.loads(self.get("/listeners?format=json"))
        return {l["name"]: l["local_address"]["socket_address"]["port_value"] for l in v["listener_statuses"]}

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Load:
    """Fixed-rate requests: slot i is due at start + i / rate; workers take slots in turn, each
    on its own keep-alive connection. Every `undeclared_every`-th slot asks for the
    undeclared host."""

    def __init__(self, port: int, rate: float, seconds: float, undeclared_host: str, undeclared_every: int,
                 workers: int):
        self.port, self.rate, self.seconds = port, rate, seconds
        self.undeclared_host, self.undeclared_every = undeclared_host, undeclared_every
        self.workers = workers
        self.lock = threading.Lock()
        self.next_slot = 0
        self.total_slots = int(rate * seconds)
        self.declared: dict[str, int] = {}
        self.undeclared: dict[str, int] = {}
        self.latencies: list[float] = []
        self.late = 0

    def take(self) -> int | None:
        with self.lock:
            if self.next_slot >= self.total_slots:
                return None
            i = self.next_slot
            self.next_slot += 1
            return i

    def worker(self) -> None:
        conn = None
        while (i := self.take()) is not None:
            due = self.start + i / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif now - due > 0.1:
                with self.lock:
                    self.late += 1
            declared = i % self.undeclared_every != 0
            host = "httpbin.mesh" if declared else self.undeclared_host
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", f"/soak/{i}", headers={"Host": host})
                resp = conn.getresponse()
                resp.read()
                outcome = str(resp.status)
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                outcome = f"error:{type(e).__name__}"
                if conn is not None:
                    conn.close()
                conn = None
            took = time.monotonic() - t0
            with self.lock:
                table = self.declared if declared else self.undeclared
                table[outcome] = table.get(outcome, 0) + 1
                self.latencies.append(took)
        if conn is not None:
            conn.close()

    def run(self) -> None:
        self.start = time.monotonic() + 0.2
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.workers)]
        for t in self.threads:
            t.start()

    def done(self) -> bool:
        return all(not t.is_alive() for t in self.threads)


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def mib(b: float) -> str:
    return f"{b / 1048576:.1f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 200)), help="requests per second")
    ap.add_argument("--undeclared-every", type=int, default=10, help="every Nth request asks for the undeclared host")
    ap.add_argument("--workers", type=int, default=8, help="keep-alive connections")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before memory is judged")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    for p, what in [(ENVOY, "make setup"), (WASM, "make build"), (EXTSVC, "make build")]:
        if not p.exists():
            raise SystemExit(f"{p} is missing: run `{what}`")

    work = Path(tempfile.mkdtemp(prefix="extsvc-soak-"))
    try:
        certs(work)
        (work / "upstream.yaml").write_text(upstream_yaml(work))
        up = Envoy(work, "upstream", work / "upstream.yaml")
        ports = up.listeners()
        dns_port = ports["dns"]
        tls_port, plain_port = ports["tls"], ports["plain"]
        (work / "resources.yaml").write_text(f"""type: Mesh
name: default
networking:
  outbound:
    passthrough: false
---
type: ExternalService
mesh: default
name: httpbin
tags:
  kuma.io/service: httpbin
  kuma.io/protocol: http
networking:
  address: httpbin.test:{tls_port}
  tls:
    enabled: true
    caCert: {{file: "{work / 'ca.pem'}"}}
""")
        listen = free_port()
        subprocess.run(
            [str(EXTSVC), "generate", str(work / "resources.yaml"), "-o", str(work / "envoy.yaml"),
             "--listen", f"127.0.0.1:{listen}", "--admin", "127.0.0.1:0", "--wasm", str(WASM),
             "--dns-resolver", f"127.0.0.1:{dns_port}"],
            check=True, timeout=60)
        envoy = Envoy(work, "sidecar", work / "envoy.yaml")
        # The access log goes to stdout (/dev/null here): the soak measures the proxy, not a disk.

        undeclared_host = f"plain.test:{plain_port}"
        load = Load(listen, args.rate, args.seconds, undeclared_host, args.undeclared_every, args.workers)
        print(f"soak: {args.rate:g} req/s for {args.seconds:g} s through 127.0.0.1:{listen} "
              f"(1 in {args.undeclared_every} to {undeclared_host}); work dir {work}", flush=True)
        began = time.monotonic()
        load.run()
        samples = []  # (t, rss, gauge)
        next_sample = began
        while not load.done():
            now = time.monotonic()
            if now >= next_sample:
                st = envoy.stats()
                samples.append((now - began, envoy.rss_bytes(), st.get(GAUGE, 0)))
                t, rss, g = samples[-1]
                with load.lock:
                    sent = sum(load.declared.values()) + sum(load.undeclared.values())
                print(f"  t={t:6.0f}s  requests={sent:8d}  rss={mib(rss)}  vm_memory={mib(g)}", flush=True)
                next_sample += SAMPLE_PERIOD
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        time.sleep(0.5)
        st = envoy.stats()
        samples.append((time.monotonic() - began, envoy.rss_bytes(), st.get(GAUGE, 0)))
        ust = up.stats()
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in PROCS:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    declared_total = sum(load.declared.values())
    declared_ok = sum(n for k, n in load.declared.items() if k.startswith("2"))
    undeclared_total = sum(load.undeclared.values())
    undeclared_403 = load.undeclared.get("403", 0)
    leaks = ust.get("http.plain.downstream_rq_total", 0)
    leak_cx = ust.get("http.plain.downstream_cx_total", 0)
    judged = [s for s in samples if s[0] >= args.warmup] or samples[-2:]
    rss0, rss1 = judged[0][1], judged[-1][1]
    rss_max = max(s[1] for s in judged)
    g_values = [s[2] for s in judged]
    rss_growth = rss1 - rss0
    rss_flat = rss_max - rss0 <= max(2 * 1048576, 0.05 * rss0)
    vm_flat = len(set(g_values)) == 1 and g_values[0] > 0
    checks = {
        "zero non-2xx for the declared service": declared_ok == declared_total and declared_total > 0,
        "every undeclared request refused with 403": undeclared_403 == undeclared_total and undeclared_total > 0,
        "zero requests or connections reach the undeclared upstream": leaks == 0 and leak_cx == 0,
        "filter VM memory flat (gauge unchanged after warm-up)": vm_flat,
        "Envoy RSS flat (max after warm-up within max(2 MiB, 5%) of the first)": rss_flat,
    }
    lat = load.latencies
    achieved = (declared_total + undeclared_total) / elapsed if elapsed else 0
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    load_avg = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        "## Soak",
        "",
        "Written by `make soak` (`soak/soak.py`); `SOAK_SECONDS` (default 600) and `SOAK_RATE` "
        "(default 200 req/s) set the run. Fixed-rate HTTP/1.1 keep-alive load "
        f"({args.workers} connections) into the generated configuration: `httpbin.mesh` -> TLS "
        "origination (caCert, SAN checked) to a loopback upstream Envoy; 1 request in "
        f"{args.undeclared_every} asks for an undeclared host that a leak would really reach.",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {rev}; "
        f"duration {args.seconds:g} s{' (a shortened run; the default is 600 s)' if args.seconds < 600 else ''} "
        f"at {args.rate:g} req/s (achieved {achieved:.1f} req/s, "
        f"{load.late} requests started >100 ms late); load average at the end {' '.join(load_avg)}",
        f"- Declared (`httpbin.mesh`): {declared_total} requests, {declared_ok} 2xx, "
        f"outcomes {dict(sorted(load.declared.items()))}",
        f"- Undeclared (`plain.test`): {undeclared_total} requests, {undeclared_403} answered 403, "
        f"outcomes {dict(sorted(load.undeclared.items()))}; undeclared upstream saw "
        f"{leaks} requests, {leak_cx} connections",
        f"- Latency (client side, all requests): p50 {pct(lat, 50) * 1000:.2f} ms, "
        f"p99 {pct(lat, 99) * 1000:.2f} ms, max {max(lat, default=0) * 1000:.1f} ms",
        f"- Envoy RSS after {args.warmup:g} s warm-up: first {mib(rss0)}, last {mib(rss1)}, "
        f"max {mib(rss_max)} (growth {rss_growth / 1024:+.0f} KiB)",
        f"- `{GAUGE}` after warm-up: {sorted(set(g_values))} bytes",
        "",
        "| t (s) | Envoy RSS | filter VM memory |",
        "|---|---|---|",
    ]
    for t, rss, g in samples:
        lines.append(f"| {t:.0f} | {mib(rss)} | {g} |")
    lines += ["", "| check | result |", "|---|---|"]
    for name, ok in checks.items():
        lines.append(f"| {name} | {'pass' if ok else '**FAIL**'} |")
    section = "\n".join(lines) + "\n"
    print(section)
    (ROOT / "soak" / "RESULTS.md").write_text("# Soak results\n\n" + section.replace("## Soak\n", "", 1))
    text = args.out.read_text() if args.out.exists() else ""
    m = re.search(r"^## Soak\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if m:
        text = text[:m.start()] + section + ("\n" if text[m.end():] else "") + text[m.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    args.out.write_text(text)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
