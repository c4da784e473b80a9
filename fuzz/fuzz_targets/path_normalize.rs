//! Path normalisation (what routing and auth see): never panics, and is
//! idempotent (a normal path is its own normal form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::routing::normalize::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(normal) = normalize(path) {
        let again = normalize(&normal).expect("a normal path normalises");
        assert_eq!(again, normal, "not idempotent for {path:?}");
        assert!(
            !normal.contains("/../") && !normal.ends_with("/.."),
            "{path:?} -> {normal:?}"
        );
    }
});
