;; The least a proxy-wasm filter can cost for this job when it rewrites: `read_authority.wat`,
;; then one host call that writes the value read back as `:authority` (Envoy then picks the
;; route again, as after the filter's rewrite), then Continue. No `proxy_on_delete`, no state,
;; no decision, no `requested_authority`. Requests name the real authority, so the route is
;; the same one the filter's rewrite of a `.mesh` name leads to. `make bench` counts it beside
;; the filter's `.mesh` request; `make bench-hostcalls` beside the filter's variants.
(module
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value"
    (func $replace_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) ":authority")
  (global $value_data i32 (i32.const 32))
  (global $value_size i32 (i32.const 36))
  (global $next (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next
      (i32.add (global.get $next)
        (i32.and (i32.add (local.get $size) (i32.const 15)) (i32.const -16))))
    (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.add (i32.shr_u (i32.sub (global.get $next) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))))))
    (local.get $at))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; Reads `:authority`, writes it back, then 0: Continue.
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $mark i32)
    (local.set $mark (global.get $next))
    (if (i32.eqz (call $get_header (i32.const 0) (i32.const 16) (i32.const 10)
          (global.get $value_data) (global.get $value_size)))
      (then (drop (call $replace_header (i32.const 0) (i32.const 16) (i32.const 10)
        (i32.load (global.get $value_data)) (i32.load (global.get $value_size))))))
    (global.set $next (local.get $mark))
    (i32.const 0))
)
