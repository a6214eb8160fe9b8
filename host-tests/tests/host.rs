//! Tests of the host itself, against tiny proxy-wasm modules written in WAT (no binaries kept).

// clippy.toml allows these in #[test] functions only; the helpers below are test code too.
#![allow(clippy::unwrap_used, clippy::panic)]

use host_tests::{
    serialize_map, Action, LogEntry, LogLevel, MetricType, Module, Plugin, PluginOptions,
    StartFailure,
};

/// Exports every module needs; a test's own `funcs` replace any of them by exporting the name.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "proxy_abi_version_0_2_1",
        r#"(func (export "proxy_abi_version_0_2_1"))"#,
    ),
    ("_initialize", r#"(func (export "_initialize"))"#),
    (
        "proxy_on_context_create",
        r#"(func (export "proxy_on_context_create") (param i32 i32))"#,
    ),
    (
        "proxy_on_vm_start",
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)"#,
    ),
    (
        "proxy_on_configure",
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)"#,
    ),
    (
        "proxy_on_request_headers",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) i32.const 0)"#,
    ),
    (
        "proxy_on_done",
        r#"(func (export "proxy_on_done") (param i32) (result i32) i32.const 1)"#,
    ),
    (
        "proxy_on_log",
        r#"(func (export "proxy_on_log") (param i32))"#,
    ),
    (
        "proxy_on_delete",
        r#"(func (export "proxy_on_delete") (param i32))"#,
    ),
];

/// A module with `imports`, a bump allocator over a 2-page memory (heap from 64 KiB), `$ok`
/// (traps on a non-zero status), the default exports, and `funcs`. Bytes 0..64 are scratch slots
/// for returned pointers and sizes; strings go from 1024.
fn module(imports: &str, funcs: &str) -> Module {
    let mut wat = format!(
        r#"(module {imports}
        (memory (export "memory") 2)
        (global $heap (mut i32) (i32.const 65536))
        (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
          (local $p i32)
          (local.set $p (global.get $heap))
          (global.set $heap (i32.add (global.get $heap) (local.get $n)))
          (local.get $p))
        (func $ok (param i32) (if (local.get 0) (then unreachable)))
        {funcs}"#
    );
    for (name, default) in DEFAULTS {
        if !funcs.contains(&format!(r#"(export "{name}")"#)) {
            wat.push_str(default);
        }
    }
    wat.push(')');
    let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{wat}"));
    Module::from_binary(&bytes).unwrap()
}

/// A WAT data segment holding `bytes` at `offset`.
fn data(offset: u32, bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    format!(r#"(data (i32.const {offset}) "{escaped}")"#)
}

fn start(module: &Module) -> Plugin {
    Plugin::start(module, PluginOptions::default()).unwrap()
}

#[test]
fn header_maps_round_trip_through_the_module_and_keep_order() {
    let m = module(
        r#"(import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
        (import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
        (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          ;; the whole map out and back in: host serialisation, then host parsing
          (call $ok (call $pairs (i32.const 0) (i32.const 0) (i32.const 4)))
          (call $ok (call $set_pairs (i32.const 0) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
          ;; the first x-dup value, copied to X-First-Dup
          (call $ok (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 8) (i32.const 12)))
          (call $ok (call $add (i32.const 0) (i32.const 1040) (i32.const 11) (i32.load (i32.const 8)) (i32.load (i32.const 12))))
          (call $ok (call $replace (i32.const 0) (i32.const 1056) (i32.const 5) (i32.const 1064) (i32.const 4)))
          (call $ok (call $remove (i32.const 0) (i32.const 1072) (i32.const 6)))
          ;; a missing name is NotFound
          (if (i32.ne (call $get (i32.const 0) (i32.const 1088) (i32.const 4) (i32.const 8) (i32.const 12)) (i32.const 1))
            (then unreachable))
          (i32.const 0))
        (data (i32.const 1024) "x-dup")
        (data (i32.const 1040) "X-First-Dup")
        (data (i32.const 1056) ":path")
        (data (i32.const 1064) "/new")
        (data (i32.const 1072) "x-drop")
        (data (i32.const 1088) "nope")"#,
    );
    let mut plugin = start(&m);
    let stream = plugin.new_http_context().unwrap();
    let headers = [
        (":path", "/old"),
        ("x-dup", "1"),
        ("x-drop", "z"),
        ("x-dup", "2"),
    ];
    let action = plugin
        .call_on_request_headers(stream, &headers, true)
        .unwrap();

    assert_eq!(action, Action::Continue);
    let expected = [
        (":path", "/new"),
        ("x-dup", "1"),
        ("x-dup", "2"),
        ("x-first-dup", "1"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(plugin.current_request_headers(stream), expected);
    assert_eq!(plugin.request_header(stream, "X-DUP").as_deref(), Some("1"));
    assert_eq!(plugin.request_header(stream, "x-drop"), None);
}

#[test]
fn local_response_is_captured_with_all_its_parts() {
    let headers = serialize_map(&[("content-type", "text/plain"), ("x-why", "policy")]);
    let m = module(
        r#"(import "env" "proxy_send_local_response"
            (func $send (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        &format!(
            r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
              (call $ok (call $send (i32.const 403) (i32.const 1024) (i32.const 6)
                (i32.const 1040) (i32.const 9) (i32.const 2048) (i32.const {len}) (i32.const -1)))
              (i32.const 1))
            (data (i32.const 1024) "denied")
            (data (i32.const 1040) "forbidden")
            {map}"#,
            len = headers.len(),
            map = data(2048, &headers)
        ),
    );
    let mut plugin = start(&m);
    let stream = plugin.new_http_context().unwrap();
    let action = plugin
        .call_on_request_headers(stream, &[(":authority", "evil.example")], true)
        .unwrap();

    assert_eq!(action, Action::Pause);
    let reply = plugin
        .sent_local_response(stream)
        .expect("a local response");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "denied");
    assert_eq!(reply.body_text(), "forbidden");
    assert_eq!(reply.header("x-why"), Some("policy"));
    assert_eq!(reply.headers.len(), 2);
    assert_eq!(reply.grpc_status, -1);
    let other = plugin.new_http_context().unwrap();
    assert!(plugin.sent_local_response(other).is_none());
}

#[test]
fn unimplemented_imports_link_and_trap_with_their_name() {
    let m = module(
        r#"(import "env" "proxy_http_call"
            (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $http_call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
            (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))"#,
    );
    assert!(m
        .imports()
        .contains(&("env".into(), "proxy_http_call".into())));
    let mut plugin = start(&m);
    let stream = plugin.new_http_context().unwrap();
    let err = plugin
        .call_on_request_headers(stream, &[], true)
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("host function proxy_http_call is not implemented by host-tests"),
        "{text}"
    );
    assert!(text.contains("proxy_on_request_headers"), "{text}");
}

#[test]
fn a_missing_module_file_says_how_to_build_it() {
    let err = Module::load("/nonexistent/external_service_filter.wasm").unwrap_err();
    assert_eq!(
        err.to_string(),
        "proxy-wasm module not found at /nonexistent/external_service_filter.wasm: build it with `make build` (or `cargo build --release --target wasm32-wasip1 -p external-service-filter`), or set EXTSVC_WASM to a built module"
    );
}

const CONFIGURE_ECHO: &str = r#"(func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
  (call $ok (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
  ;; a configuration starting with 'n' is refused, with an error log
  (if (i32.eq (i32.load8_u (i32.load (i32.const 0))) (i32.const 110))
    (then
      (call $ok (call $log (i32.const 4) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
      (return (i32.const 0))))
  (call $ok (call $log (i32.const 2) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
  (i32.const 1))"#;

const BUFFER_AND_LOG: &str = r#"(import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;

#[test]
fn configure_reads_the_plugin_configuration_and_its_verdict_is_reported() {
    let m = module(BUFFER_AND_LOG, CONFIGURE_ECHO);

    let plugin = Plugin::start(&m, PluginOptions::with_configuration(r#"{"ok":1}"#)).unwrap();
    assert_eq!(plugin.logs(LogLevel::Info), [r#"{"ok":1}"#]);

    let err = Plugin::start(&m, PluginOptions::with_configuration("no good").quiet()).unwrap_err();
    assert!(err.is_configure_rejected());
    assert_eq!(err.logs(LogLevel::Error), ["no good"]);
    assert!(
        err.to_string()
            .contains("proxy_on_configure returned false"),
        "{err}"
    );
    assert!(err.to_string().contains("no good"), "{err}");
}

#[test]
fn metrics_are_defined_by_name_and_keep_their_values() {
    let m = module(
        r#"(import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
        (import "env" "proxy_record_metric" (func $record (param i32 i64) (result i32)))
        (import "env" "proxy_get_metric" (func $get (param i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
          (call $ok (call $define (i32.const 0) (i32.const 1024) (i32.const 8) (i32.const 16)))
          (call $ok (call $define (i32.const 1) (i32.const 1040) (i32.const 8) (i32.const 20)))
          (call $ok (call $define (i32.const 2) (i32.const 1056) (i32.const 5) (i32.const 24)))
          ;; defining a name again gives the same id
          (call $ok (call $define (i32.const 0) (i32.const 1024) (i32.const 8) (i32.const 28)))
          (if (i32.ne (i32.load (i32.const 16)) (i32.load (i32.const 28))) (then unreachable))
          (i32.const 1))
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $ok (call $inc (i32.load (i32.const 16)) (i64.const 1)))
          ;; a counter does not go down
          (if (i32.ne (call $inc (i32.load (i32.const 16)) (i64.const -1)) (i32.const 2)) (then unreachable))
          (call $ok (call $inc (i32.load (i32.const 20)) (i64.const 5)))
          (call $ok (call $inc (i32.load (i32.const 20)) (i64.const -2)))
          (call $ok (call $record (i32.load (i32.const 24)) (i64.const 7)))
          (call $ok (call $get (i32.load (i32.const 16)) (i32.const 32)))
          (if (i64.eqz (i64.load (i32.const 32))) (then unreachable))
          ;; an unknown id is NotFound
          (if (i32.ne (call $inc (i32.const 99) (i64.const 1)) (i32.const 1)) (then unreachable))
          (i32.const 0))
        (data (i32.const 1024) "requests")
        (data (i32.const 1040) "inflight")
        (data (i32.const 1056) "sizes")"#,
    );
    let mut plugin = start(&m);
    for _ in 0..2 {
        let stream = plugin.new_http_context().unwrap();
        plugin.call_on_request_headers(stream, &[], true).unwrap();
    }
    assert_eq!(plugin.counter("requests"), Some(2));
    assert_eq!(plugin.gauge("inflight"), Some(6));
    assert_eq!(plugin.histogram("sizes"), Some(vec![7, 7]));
    assert_eq!(plugin.counter("inflight"), None);
    assert_eq!(plugin.counter("absent"), None);
    let kinds: Vec<MetricType> = plugin.metrics().iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Histogram
        ]
    );
}

#[test]
fn properties_and_foreign_functions_behave_like_envoy() {
    let m = module(
        r#"(import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_set_property" (func $set_property (param i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_call_foreign_function" (func $foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $ok (call $get_property (i32.const 1024) (i32.const 16) (i32.const 0) (i32.const 4)))
          (call $ok (call $set_property (i32.const 1056) (i32.const 7) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
          (if (i32.ne (call $get_property (i32.const 1072) (i32.const 4) (i32.const 0) (i32.const 4)) (i32.const 1))
            (then unreachable))
          (call $ok (call $foreign (i32.const 1088) (i32.const 8) (i32.const 1104) (i32.const 3) (i32.const 8) (i32.const 12)))
          (call $ok (call $log (i32.const 2) (i32.load (i32.const 8)) (i32.load (i32.const 12))))
          (if (i32.ne (call $foreign (i32.const 1120) (i32.const 6) (i32.const 1104) (i32.const 3) (i32.const 8) (i32.const 12)) (i32.const 1))
            (then unreachable))
          (i32.const 0))
        (data (i32.const 1024) "xds\00cluster_name")
        (data (i32.const 1056) "copy\00of")
        (data (i32.const 1072) "nope")
        (data (i32.const 1088) "compress")
        (data (i32.const 1104) "abc")
        (data (i32.const 1120) "nosuch")"#,
    );
    let options = PluginOptions::default()
        .property(&["xds", "cluster_name"], "outbound:httpbin")
        .foreign_function("compress", "zipped");
    let mut plugin = Plugin::start(&m, options).unwrap();
    let stream = plugin.new_http_context().unwrap();
    plugin.call_on_request_headers(stream, &[], true).unwrap();

    assert_eq!(
        plugin.stream_property(stream, &["copy", "of"]).as_deref(),
        Some(&b"outbound:httpbin"[..])
    );
    // Set on a stream, as Envoy keeps it: in that request's filter state.
    assert_eq!(plugin.property(&["copy", "of"]), None);
    assert_eq!(plugin.logs(LogLevel::Info), ["zipped"]);
    let calls: Vec<(&str, &[u8])> = plugin
        .foreign_calls()
        .iter()
        .map(|(n, a)| (n.as_str(), a.as_slice()))
        .collect();
    assert_eq!(calls, [("compress", &b"abc"[..]), ("nosuch", &b"abc"[..])]);
}

#[test]
fn stdout_and_stderr_become_logs_and_proc_exit_traps() {
    let m = module(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
          (call $ok (call $fd_write (i32.const 1) (i32.const 512) (i32.const 2) (i32.const 0)))
          (if (i32.ne (i32.load (i32.const 0)) (i32.const 12)) (then unreachable))
          (call $ok (call $fd_write (i32.const 2) (i32.const 528) (i32.const 1) (i32.const 0)))
          (call $exit (i32.const 3))
          (i32.const 1))
        (data (i32.const 512) "\00\04\00\00\09\00\00\00\10\04\00\00\03\00\00\00")
        (data (i32.const 528) "\20\04\00\00\04\00\00\00")
        (data (i32.const 1024) "hello\0awor")
        (data (i32.const 1040) "ld\0a")
        (data (i32.const 1056) "oops")"#,
    );
    let err = Plugin::start(&m, PluginOptions::default().quiet()).unwrap_err();
    assert!(matches!(err.failure, StartFailure::Error(_)), "{err}");
    assert!(err.to_string().contains("proc_exit(3)"), "{err}");
    let logs: Vec<LogEntry> = err.logs.clone();
    let expected = [
        (LogLevel::Info, "hello"),
        (LogLevel::Info, "world"),
        (LogLevel::Error, "oops"),
    ];
    let expected: Vec<LogEntry> = expected
        .iter()
        .map(|(level, m)| LogEntry {
            level: *level,
            message: m.to_string(),
        })
        .collect();
    assert_eq!(logs, expected);
}

const LIFECYCLE_LOGS: &str = r#"(func (export "proxy_on_done") (param i32) (result i32)
  (call $ok (call $log (i32.const 2) (i32.const 1024) (i32.const 4))) (i32.const 1))
(func (export "proxy_on_log") (param i32)
  (call $ok (call $log (i32.const 2) (i32.const 1032) (i32.const 3))))
(func (export "proxy_on_delete") (param i32)
  (call $ok (call $log (i32.const 2) (i32.const 1040) (i32.const 6))))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (local $i i32)
  ;; as many loop turns as headers, so the cost depends on the input
  (local.set $i (i32.mul (local.get 1) (i32.const 100)))
  (block (loop
    (br_if 1 (i32.eqz (local.get $i)))
    (local.set $i (i32.sub (local.get $i) (i32.const 1)))
    (br 0)))
  (i32.const 0))
(data (i32.const 1024) "done")
(data (i32.const 1032) "log")
(data (i32.const 1040) "delete")"#;

#[test]
fn completing_a_stream_runs_done_log_delete_in_order() {
    let m = module(
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
        LIFECYCLE_LOGS,
    );
    let mut plugin = start(&m);
    let stream = plugin.new_http_context().unwrap();
    plugin.call_on_request_headers(stream, &[], true).unwrap();
    assert!(!plugin.http_stream_deleted(stream));
    assert!(plugin.complete_http_stream(stream).unwrap());
    assert!(plugin.http_stream_deleted(stream));
    assert_eq!(plugin.logs(LogLevel::Info), ["done", "log", "delete"]);
    assert_eq!(plugin.memory_size_bytes(), 2 * 65536);
}

#[test]
fn fuel_is_deterministic_and_grows_with_the_work() {
    let m = module(
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
        LIFECYCLE_LOGS,
    );
    let fuel_for = |headers: &[(&str, &str)]| {
        let mut plugin = start(&m);
        let stream = plugin.new_http_context().unwrap();
        plugin
            .call_on_request_headers(stream, headers, true)
            .unwrap();
        let last = plugin.last_call_fuel();
        let (_, total) = plugin
            .fuel_consumed_by(|p| p.call_on_request_headers(stream, headers, true))
            .unwrap();
        assert_eq!(last, total);
        last
    };
    // wasmtime 48's fuel: 809 for one header; each header adds 100 loop turns of 8 each.
    let one = fuel_for(&[("a", "1")]);
    assert_eq!(one, 809);
    assert_eq!(one, fuel_for(&[("a", "1")]));
    assert_eq!(fuel_for(&[("a", "1"), ("b", "2")]), one + 800);
}

#[test]
fn a_fuel_limit_stops_a_runaway_module() {
    let m = module(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (loop (br 0))
          (i32.const 0))"#,
    );
    let mut plugin = Plugin::start(&m, PluginOptions::default().fuel_limit(100_000)).unwrap();
    let stream = plugin.new_http_context().unwrap();
    let err = plugin
        .call_on_request_headers(stream, &[], true)
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("proxy_on_request_headers"),
        "{err:?}"
    );
}

#[test]
fn a_module_without_the_abi_marker_is_refused() {
    let bytes =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_initialize")))"#)
            .unwrap();
    let m = Module::from_binary(&bytes).unwrap();
    let err = Plugin::start(&m, PluginOptions::default()).unwrap_err();
    assert!(err.to_string().contains("proxy_abi_version_0_2_1"), "{err}");
}

#[test]
fn plugins_of_one_module_do_not_share_state() {
    let m = module(BUFFER_AND_LOG, CONFIGURE_ECHO);
    let a = Plugin::start(&m, PluginOptions::with_configuration("first")).unwrap();
    let b = Plugin::start(&m, PluginOptions::with_configuration("second")).unwrap();
    assert_eq!(a.logs(LogLevel::Info), ["first"]);
    assert_eq!(b.logs(LogLevel::Info), ["second"]);
    // Modules are shared across test threads.
    fn shareable<T: Send + Sync + Clone>(_: &T) {}
    shareable(&m);
}
