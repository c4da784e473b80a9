//! One tonic codec for every method: requests and responses are
//! `prost_reflect::DynamicMessage`s, described by the descriptors loaded at run
//! time, so no Rust code is generated per service.

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Encodes any `DynamicMessage`, decodes into `output`'s message type.
#[derive(Clone, Debug)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

/// Encoder half of [`DynamicCodec`].
#[derive(Debug)]
pub struct DynamicEncoder;

/// Decoder half of [`DynamicCodec`].
#[derive(Debug)]
pub struct DynamicDecoder {
    output: MessageDescriptor,
}

// === impl DynamicCodec ===

impl DynamicCodec {
    pub fn new(output: MessageDescriptor) -> Self {
        DynamicCodec { output }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder {
            output: self.output.clone(),
        }
    }
}

// === impl DynamicEncoder ===

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding request: {e}")))
    }
}

// === impl DynamicDecoder ===

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.output.clone(), src)
            .map(Some)
            .map_err(|e| {
                Status::internal(format!(
                    "upstream sent an invalid {}: {e}",
                    self.output.full_name()
                ))
            })
    }
}
