#!/usr/bin/env bash
# `make run`: generate the Envoy configuration and run it in the foreground; Ctrl-C stops all.
#   run.sh                    the built-in demo (certificates and a local mTLS upstream included)
#   run.sh my-services.yaml   your own resources
set -euo pipefail
cd "$(dirname "$0")/../.."
envoy=${EXTSVC_ENVOY:-.venv/bin/envoy}
extsvc=${EXTSVC:-target/release/extsvc}
# extsvc's default module path is the one `make build` writes.
wasm=()
[ -n "${EXTSVC_WASM:-}" ] && wasm=(--wasm "$EXTSVC_WASM")
out=.run
mkdir -p "$out"
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
trap 'echo; echo "stopping"; exit 0' INT TERM

if [ $# -eq 0 ]; then
  resources=envoy-configs/examples/demo.yaml
  demo=$out/demo
  mkdir -p "$demo"
  # A CA, the upstream's certificate for localhost, and the client certificate Envoy presents.
  if [ ! -f "$demo/client.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj "/CN=extsvc demo CA" -keyout "$demo/ca.key" -out "$demo/ca.pem" 2>/dev/null
    for who in server client; do
      cn=$([ $who = server ] && echo localhost || echo demo-app)
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$cn" \
        -keyout "$demo/$who.key" -out "$demo/$who.csr" 2>/dev/null
      printf 'subjectAltName=DNS:%s\nextendedKeyUsage=%s\n' "$cn" \
        "$([ $who = server ] && echo serverAuth || echo clientAuth)" > "$demo/$who.ext"
      openssl x509 -req -in "$demo/$who.csr" -CA "$demo/ca.pem" -CAkey "$demo/ca.key" \
        -CAcreateserial -days 30 -extfile "$demo/$who.ext" -out "$demo/$who.pem" 2>/dev/null
      chmod 600 "$demo/$who.key"
    done
  fi
  "$envoy" -c envoy-configs/examples/demo-upstream.yaml --base-id 47 -l warning \
    > "$demo/upstream.log" 2>&1 &
  pids+=($!)
else
  resources=$1
fi

"$extsvc" generate "$resources" -o "$out/envoy.yaml" "${wasm[@]}"
echo "generated $out/envoy.yaml from $resources"
if [ $# -eq 0 ]; then
  cat <<'TXT'

Try, in another terminal:
  curl -si -x http://127.0.0.1:15001 http://httpbin.mesh/get       # .mesh name, plain HTTP in, mTLS out
  curl -si -H 'Host: httpbin.mesh' http://127.0.0.1:15001/get       # the same with a Host header
  curl -si -x http://127.0.0.1:15001 http://localhost:18443/get     # the real name and port
  curl -si http://127.0.0.1:10000/get                               # the Dataplane outbound listener
  curl -si -x http://127.0.0.1:15001 http://example.com/            # undeclared: 403, passthrough is off
  curl -s http://127.0.0.1:9901/stats | grep wasmcustom            # the filter's counters
Access log lines appear below. Ctrl-C stops everything.

TXT
fi
"$envoy" -c "$out/envoy.yaml" --base-id 46 -l warning &
pids+=($!)
wait "${pids[-1]}"
