//! Query strings into a message: every scalar kind, enums, nested fields,
//! repeated fields, wrappers and well-known types of `AllTypes`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use prost_reflect::DynamicMessage;
use switchyard::transcode::query::{QueryMapper, QueryOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let desc = common::all_types();
    let mapper = QueryMapper::new(&desc, Vec::new(), QueryOptions::default());
    let mut message = DynamicMessage::new(desc);
    let _ = mapper.apply(&mut message, query);
});
