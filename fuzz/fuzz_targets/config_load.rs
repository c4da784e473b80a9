//! Config files: YAML of any shape is parsed, `${ENV}` expanded, checked
//! against the types, or refused with a located error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/nonexistent/fuzz.yaml");
    if let Err(e) = switchyard::config::parse(path, text.to_owned()) {
        let _ = e.to_string();
    }
});
