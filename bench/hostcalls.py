#!/usr/bin/env python3
"""What each per-request host call of the filter costs in Envoy (an experiment, not in `make bench`).

Copies the committed tree to a scratch directory, builds the module once as is and once per
variant with one call of the forward path removed or added (by exact statement, so a changed
filter/src/lib.rs fails loudly), then runs variant A of bench.py with each module, one proxy at
a time, rotated, and prints proxy CPU per request. The cost is Envoy's side of each call (C++
and V8), which the wasmtime host of host-tests cannot stand in for: hence Envoy, not fuel. Every request uses the real authority, which the filter
forwards (same work as a `.mesh` name) and which routes even when the filter does nothing.
Usage: python3 bench/hostcalls.py   (knobs: BENCH_ROUNDS, BENCH_SECONDS as in bench.py)
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

SCRATCH = os.path.join(bench.WORK, "hostcalls")
GLUE = os.path.join("filter", "src", "lib.rs")
REWRITE = '                self.set_http_request_header(":authority", Some(&service.authority));\n'
# Dropped from the glue (Envoy picks the route again by itself); measured again here.
CLEAR = '                let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));\n'
PROP = "                self.set_property(vec![SERVICE_PROPERTY], Some(service.name.as_bytes()));\n"
METRIC = "                let _ = hostcalls::increment_metric(configured.forwarded[id], 1);\n"
HEAD = "fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {\n"
VARIANTS = {
    "as-is": [],
    "plus-clear_route_cache": [(REWRITE, CLEAR + REWRITE)],
    "no-set_property": [(PROP, "")],
    "no-forward-counter": [(METRIC, "                let _ = id;\n")],
    "rewrite-only": [(PROP, ""), (METRIC, "                let _ = id;\n")],
    "returns-Continue-at-once": [(HEAD, HEAD + "        #[allow(unreachable_code)]\n        if true {\n            return Action::Continue;\n        }\n")],
}


def build():
    src = os.path.join(SCRATCH, "src")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    subprocess.run(f"git -C {bench.ROOT} archive HEAD | tar -x -C {src}", shell=True, check=True)
    glue = os.path.join(src, GLUE)
    original = open(glue).read()
    built = {}
    for label, edits in VARIANTS.items():
        text = original
        for old, new in edits:
            if text.count(old) != 1:
                raise SystemExit(f"{label}: {GLUE} no longer has exactly one {old.strip()!r}")
            text = text.replace(old, new)
        open(glue, "w").write(text)
        bench.log(f"building {label}")
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(SCRATCH, "target"))
        subprocess.run(["cargo", "build", "-q", "--release", "--target", "wasm32-wasip1", "-p",
                        "external-service-filter"], cwd=src, env=env, check=True)
        out = os.path.join(SCRATCH, f"{label}.wasm")
        # bench.WASM is <root>/target/...: the same place under the scratch copy.
        shutil.copy(os.path.join(SCRATCH, os.path.relpath(bench.WASM, bench.ROOT)), out)
        built[label] = out
    return built


def main():
    built = build()
    certs = bench.make_certs(bench.SERVICES)
    up_cfg = bench.write(os.path.join(bench.WORK, "upstream.yaml"), bench.yaml.safe_dump(
        bench.upstream_config(certs, [f"{bench.name(i)}.bench.test" for i in range(bench.SERVICES)])))
    try:
        up, t0 = bench.start_envoy(up_cfg, bench.LOAD_CPU, os.path.join(bench.WORK, "upstream.log"))
        bench.wait_live(up, bench.UP_ADMIN, t0, os.path.join(bench.WORK, "upstream.log"))
        kinds = [f"A-{label}" for label in built] + ["B"]
        t = bench.throughput("hostcalls", False, certs, kinds=kinds,
                             wasm_by_kind={f"A-{label}": p for label, p in built.items()},
                             latency=False, host=bench.address(42, False), smoke=False)
    finally:
        bench.stop_all()
    base = bench.med([x["cpu_us"] for x in t["results"]["A-as-is"]])
    native = bench.med([x["cpu_us"] for x in t["results"]["B"]])
    print("| module | proxy CPU µs/request | vs as-is | vs native (B) | requests/s |")
    print("|---|---:|---:|---:|---:|")
    for k in kinds:
        rs = t["results"][k]
        cpu = bench.med([x["cpu_us"] for x in rs])
        print(f"| {k} | {bench.fmt_range([x['cpu_us'] for x in rs], '{:.2f}')} | {cpu - base:+.2f} | "
              f"{cpu - native:+.2f} | {bench.fmt_range([x['rps'] for x in rs])} |")


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
