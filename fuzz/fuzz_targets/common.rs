//! What several targets share: the test protos' `AllTypes`, compiled once.

use std::path::PathBuf;
use std::sync::OnceLock;

use prost_reflect::MessageDescriptor;
use switchyard::protos::{ProtoSources, load};

/// `switchyard.transcode.test.AllTypes`: every scalar, enums, nested and
/// repeated messages, maps, oneofs and the well-known types.
pub fn all_types() -> MessageDescriptor {
    static DESC: OnceLock<MessageDescriptor> = OnceLock::new();
    DESC.get_or_init(|| {
        let proto = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../gateway/tests/protos/transcode_test.proto"
        ));
        let pool = load(&ProtoSources {
            sources: vec![proto],
            includes: Vec::new(),
        })
        .expect("the test protos compile");
        pool.get_message_by_name("switchyard.transcode.test.AllTypes")
            .expect("AllTypes")
    })
    .clone()
}
