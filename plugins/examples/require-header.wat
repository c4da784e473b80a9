;; require-header: a proxy-wasm filter (ABI 0.2.1) in WebAssembly text.
;;
;; Answers 403 itself (proxy_send_local_response: the upstream is never
;; called) when the request lacks the header its plugin configuration names,
;; e.g. `config: x-tenant`. The answer is JSON, like the gateway's own errors:
;;   {"code":"PERMISSION_DENIED","message":"missing required header x-tenant"}
;;
;; Memory: 0..8 the host's return slots; 256.. literals; 1024..1280 the
;; header's name; 8192.. a bump heap, reset at the start of every callback.
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $respond (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (global $name_len (mut i32) (i32.const 0))

  ;; The body's start (63 bytes) and end (2 bytes).
  (data (i32.const 256) "{\"code\":\"PERMISSION_DENIED\",\"message\":\"missing required header ")
  (data (i32.const 320) "\"}")
  ;; One header in the ABI's map serialisation: content-type: application/json.
  (data (i32.const 384) "\01\00\00\00\0c\00\00\00\10\00\00\00content-type\00application/json\00")
  (data (i32.const 448) "missing_header")

  (func (export "proxy_abi_version_0_2_1"))

  (func $alloc (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 16)))
              (i32.const -1))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))

  ;; The configuration is the header's name: 1 to 256 bytes.
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (global.set $heap (i32.const 8192))
    (if (i32.or (i32.eqz (local.get $size)) (i32.gt_u (local.get $size) (i32.const 256)))
      (then (return (i32.const 0))))
    (if (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4))
      (then (return (i32.const 0))))
    (memory.copy (i32.const 1024) (i32.load (i32.const 0)) (i32.load (i32.const 4)))
    (global.set $name_len (i32.load (i32.const 4)))
    (i32.const 1))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $body i32) (local $len i32)
    (global.set $heap (i32.const 8192))
    ;; Status 0: the header is there, go on.
    (if (i32.eqz (call $get (i32.const 0) (i32.const 1024) (global.get $name_len) (i32.const 0) (i32.const 4)))
      (then (return (i32.const 0))))
    (local.set $len (i32.add (i32.const 65) (global.get $name_len)))
    (local.set $body (call $alloc (local.get $len)))
    (memory.copy (local.get $body) (i32.const 256) (i32.const 63))
    (memory.copy (i32.add (local.get $body) (i32.const 63)) (i32.const 1024) (global.get $name_len))
    (memory.copy (i32.add (i32.add (local.get $body) (i32.const 63)) (global.get $name_len)) (i32.const 320) (i32.const 2))
    (drop (call $respond
      (i32.const 403)
      (i32.const 448) (i32.const 14)
      (local.get $body) (local.get $len)
      (i32.const 384) (i32.const 42)
      (i32.const -1)))
    ;; Pause: the stream goes no further.
    (i32.const 1))

  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
