//! `google.api.http` path templates: parsing any text, and matching any
//! path against what parsed. Input: template, a NUL, path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::transcode::path_template::PathTemplate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, path) = text.split_once('\0').unwrap_or((text, "/"));
    if let Ok(parsed) = PathTemplate::parse(template) {
        // The shape and the text of what parsed are total functions.
        let _ = parsed.shape();
        if let Ok(Some(captures)) = parsed.matches(path) {
            assert_eq!(captures.len(), parsed.variables().len());
        }
    }
});
