;; add-header: a proxy-wasm filter (ABI 0.2.1) in WebAssembly text.
;;
;; Adds a header to the request (the upstream sees it) and the same header
;; to the response, and rewrites the start of the request's path. Its
;; plugin configuration is one `key=value` per line:
;;
;;   header=x-edge        the header's name (required)
;;   value=switchyard     its value
;;   from=/v1/legacy/     a path prefix to rewrite (optional)
;;   to=/v1/              what replaces it
;;
;; Assembled by the gateway itself (a `.wat` module is accepted as is) or by
;; the `wat` crate in the tests; any tool producing a binary module works.
;;
;; Memory: 0..8 the host's return slots; 256.. string literals; 1024..5120
;; the configuration, copied at configure time; 8192.. a bump heap, reset at
;; the start of every callback (what the host hands over is read in the
;; same callback).
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (global $hdr_ptr (mut i32) (i32.const 0))
  (global $hdr_len (mut i32) (i32.const 0))
  (global $val_ptr (mut i32) (i32.const 0))
  (global $val_len (mut i32) (i32.const 0))
  (global $from_ptr (mut i32) (i32.const 0))
  (global $from_len (mut i32) (i32.const 0))
  (global $to_ptr (mut i32) (i32.const 0))
  (global $to_len (mut i32) (i32.const 0))

  (data (i32.const 256) ":path")
  (data (i32.const 272) "header=")
  (data (i32.const 288) "value=")
  (data (i32.const 304) "from=")
  (data (i32.const 320) "to=")
  (data (i32.const 336) "add-header: the configuration needs a header= line")

  (func (export "proxy_abi_version_0_2_1"))

  ;; The host's allocator: a bump pointer, growing memory when needed.
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

  ;; 1 when the $n bytes at $p start with the $k bytes at $lit.
  (func $prefix (param $p i32) (param $n i32) (param $lit i32) (param $k i32) (result i32)
    (local $i i32)
    (if (i32.lt_u (local.get $n) (local.get $k)) (then (return (i32.const 0))))
    (block $mismatch
      (loop $cmp
        (if (i32.ge_u (local.get $i) (local.get $k)) (then (return (i32.const 1))))
        (br_if $mismatch
          (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $lit) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $cmp)))
    (i32.const 0))

  ;; One `key=value` line of the configuration.
  (func $field (param $l i32) (param $n i32)
    (if (call $prefix (local.get $l) (local.get $n) (i32.const 272) (i32.const 7))
      (then
        (global.set $hdr_ptr (i32.add (local.get $l) (i32.const 7)))
        (global.set $hdr_len (i32.sub (local.get $n) (i32.const 7)))
        (return)))
    (if (call $prefix (local.get $l) (local.get $n) (i32.const 288) (i32.const 6))
      (then
        (global.set $val_ptr (i32.add (local.get $l) (i32.const 6)))
        (global.set $val_len (i32.sub (local.get $n) (i32.const 6)))
        (return)))
    (if (call $prefix (local.get $l) (local.get $n) (i32.const 304) (i32.const 5))
      (then
        (global.set $from_ptr (i32.add (local.get $l) (i32.const 5)))
        (global.set $from_len (i32.sub (local.get $n) (i32.const 5)))
        (return)))
    (if (call $prefix (local.get $l) (local.get $n) (i32.const 320) (i32.const 3))
      (then
        (global.set $to_ptr (i32.add (local.get $l) (i32.const 3)))
        (global.set $to_len (i32.sub (local.get $n) (i32.const 3))))))

  ;; Splits the configuration at newlines.
  (func $parse (param $p i32) (param $n i32)
    (local $end i32) (local $line i32) (local $i i32)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (local.set $line (local.get $p))
    (local.set $i (local.get $p))
    (block $done
      (loop $scan
        (if (i32.ge_u (local.get $i) (local.get $end))
          (then
            (call $field (local.get $line) (i32.sub (local.get $i) (local.get $line)))
            (br $done)))
        (if (i32.eq (i32.load8_u (local.get $i)) (i32.const 10))
          (then
            (call $field (local.get $line) (i32.sub (local.get $i) (local.get $line)))
            (local.set $line (i32.add (local.get $i) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan))))

  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))

  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (global.set $heap (i32.const 8192))
    (if (i32.gt_u (local.get $size) (i32.const 4096)) (then (return (i32.const 0))))
    (if (i32.eqz (local.get $size))
      (then
        (drop (call $log (i32.const 4) (i32.const 336) (i32.const 50)))
        (return (i32.const 0))))
    (if (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4))
      (then (return (i32.const 0))))
    (memory.copy (i32.const 1024) (i32.load (i32.const 0)) (i32.load (i32.const 4)))
    (call $parse (i32.const 1024) (i32.load (i32.const 4)))
    (if (i32.eqz (global.get $hdr_len))
      (then
        (drop (call $log (i32.const 4) (i32.const 336) (i32.const 50)))
        (return (i32.const 0))))
    (i32.const 1))

  ;; `from` → `to` at the start of :path.
  (func $rewrite
    (local $path i32) (local $plen i32) (local $new i32) (local $nlen i32) (local $rest i32)
    (if (call $get (i32.const 0) (i32.const 256) (i32.const 5) (i32.const 0) (i32.const 4))
      (then (return)))
    (local.set $path (i32.load (i32.const 0)))
    (local.set $plen (i32.load (i32.const 4)))
    (if (i32.eqz (call $prefix (local.get $path) (local.get $plen) (global.get $from_ptr) (global.get $from_len)))
      (then (return)))
    (local.set $rest (i32.sub (local.get $plen) (global.get $from_len)))
    (local.set $nlen (i32.add (global.get $to_len) (local.get $rest)))
    (local.set $new (call $alloc (local.get $nlen)))
    (memory.copy (local.get $new) (global.get $to_ptr) (global.get $to_len))
    (memory.copy (i32.add (local.get $new) (global.get $to_len))
                 (i32.add (local.get $path) (global.get $from_len))
                 (local.get $rest))
    (drop (call $replace (i32.const 0) (i32.const 256) (i32.const 5) (local.get $new) (local.get $nlen))))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (global.set $heap (i32.const 8192))
    (drop (call $add (i32.const 0) (global.get $hdr_ptr) (global.get $hdr_len) (global.get $val_ptr) (global.get $val_len)))
    (if (global.get $from_len) (then (call $rewrite)))
    (i32.const 0))

  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $add (i32.const 2) (global.get $hdr_ptr) (global.get $hdr_len) (global.get $val_ptr) (global.get $val_len)))
    (i32.const 0))

  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
