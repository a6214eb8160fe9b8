;; The floor of any proxy-wasm HTTP filter in Envoy: a module that exports only what Envoy
;; needs to run it, and whose request-headers callback returns Continue without a host call.
;; `make bench-hostcalls` builds it (wat2wasm, from wabt) and counts its instructions per
;; request beside the filter's: what is left over it is the filter's own work.
(module
  (memory (export "memory") 2)
  ;; Envoy copies the plugin configuration in through proxy_on_memory_allocate, once per
  ;; plugin: a bump allocator that never frees is enough here.
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
  ;; 0: Continue.
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
)
