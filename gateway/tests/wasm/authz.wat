;; An external-authorization filter: for each request it calls the `authz`
;; cluster (GET /check with the request's `x-user` header) through
;; proxy_http_call and waits (Pause); in proxy_on_http_call_response a 200
;; lets the request on with `x-authz: allowed` added, anything else — a
;; failed callout included (no headers) — is answered 403 by the filter. A
;; refused callout (a cluster the plugin config does not list) is 502.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call"
    (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $respond (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))

  (data (i32.const 256) "x-user")
  (data (i32.const 272) "authz")
  ;; The callout's fixed pairs, then the `x-user` name: 42 + 7 bytes.
  (data (i32.const 288) ":method\00GET\00:path\00/check\00:authority\00authz\00x-user\00")
  (data (i32.const 352) ":status")
  (data (i32.const 368) "200")
  (data (i32.const 384) "x-authz")
  (data (i32.const 400) "allowed")
  (data (i32.const 416) "denied")
  (data (i32.const 432) "callout refused")

  (func (export "proxy_abi_version_0_2_1"))
  (func $alloc (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (local.get $ptr))
  (func (export "proxy_on_context_create") (param i32 i32))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $user i32) (local $ulen i32) (local $map i32) (local $total i32)
    (global.set $heap (i32.const 8192))
    (if (call $get (i32.const 0) (i32.const 256) (i32.const 6) (i32.const 0) (i32.const 4))
      (then (i32.store (i32.const 0) (i32.const 0)) (i32.store (i32.const 4) (i32.const 0))))
    (local.set $user (i32.load (i32.const 0)))
    (local.set $ulen (i32.load (i32.const 4)))
    ;; 4 pairs: 36 bytes of counts and lengths, 49 fixed bytes, the user, a NUL.
    (local.set $total (i32.add (i32.const 86) (local.get $ulen)))
    (local.set $map (call $alloc (local.get $total)))
    (i32.store (local.get $map) (i32.const 4))
    (i32.store offset=4 (local.get $map) (i32.const 7))
    (i32.store offset=8 (local.get $map) (i32.const 3))
    (i32.store offset=12 (local.get $map) (i32.const 5))
    (i32.store offset=16 (local.get $map) (i32.const 6))
    (i32.store offset=20 (local.get $map) (i32.const 10))
    (i32.store offset=24 (local.get $map) (i32.const 5))
    (i32.store offset=28 (local.get $map) (i32.const 6))
    (i32.store offset=32 (local.get $map) (local.get $ulen))
    (memory.copy (i32.add (local.get $map) (i32.const 36)) (i32.const 288) (i32.const 49))
    (if (local.get $ulen)
      (then (memory.copy (i32.add (local.get $map) (i32.const 85)) (local.get $user) (local.get $ulen))))
    (i32.store8 (i32.add (i32.add (local.get $map) (i32.const 85)) (local.get $ulen)) (i32.const 0))
    (if (call $http_call
          (i32.const 272) (i32.const 5)
          (local.get $map) (local.get $total)
          (i32.const 0) (i32.const 0)
          (i32.const 0) (i32.const 0)
          (i32.const 1000)
          (i32.const 8))
      (then
        (drop (call $respond (i32.const 502) (i32.const 0) (i32.const 0)
          (i32.const 432) (i32.const 15) (i32.const 0) (i32.const 0) (i32.const -1)))))
    ;; Pause: wait for the answer.
    (i32.const 1))

  (func (export "proxy_on_http_call_response")
    (param $ctx i32) (param $token i32) (param $headers i32) (param $body i32) (param $trailers i32)
    (if (i32.and
          (i32.eqz (call $get (i32.const 6) (i32.const 352) (i32.const 7) (i32.const 0) (i32.const 4)))
          (i32.eq (i32.load (i32.const 4)) (i32.const 3)))
      (then
        (if (i32.eq (i32.load16_u (i32.load (i32.const 0))) (i32.load16_u (i32.const 368)))
          (then
            (if (i32.eq (i32.load8_u offset=2 (i32.load (i32.const 0))) (i32.load8_u offset=2 (i32.const 368)))
              (then
                (drop (call $add (i32.const 0) (i32.const 384) (i32.const 7) (i32.const 400) (i32.const 7)))
                (return))))))) 
    (drop (call $respond (i32.const 403) (i32.const 0) (i32.const 0)
      (i32.const 416) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1))))

  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
