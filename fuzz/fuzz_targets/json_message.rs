//! JSON bodies into a message (the duplicate-key pass, then prost-reflect's
//! proto3 JSON mapping), with unknown fields refused and ignored.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use switchyard::config::{JsonOptions, UnknownFields};
use switchyard::transcode::request::{decode_json, deserialize_options};

fuzz_target!(|data: &[u8]| {
    let desc = common::all_types();
    for unknown_fields in [UnknownFields::Reject, UnknownFields::Ignore] {
        let json = JsonOptions {
            unknown_fields,
            ..JsonOptions::default()
        };
        let _ = decode_json(&desc, data, &deserialize_options(&json));
    }
});
