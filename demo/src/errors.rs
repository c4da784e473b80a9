//! Rich gRPC errors: every failure the demo services return carries a `google.rpc.Status` in the
//! `grpc-status-details-bin` trailer, so the gateway's error mapping can be exercised end to end.

use prost::{Message, Name};
use prost_types::Any;
use std::collections::HashMap;
use tonic::{Code, Status};

use crate::pb::google::rpc;

/// Builds a `tonic::Status` whose details are a `google.rpc.Status` holding `details`.
///
/// The inner `google.rpc.Status` repeats code and message, as the gRPC richer-error model
/// requires, so clients that only look at the details still see a complete error.
fn with_details(code: Code, message: String, details: Vec<Any>) -> Status {
    let rich = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details,
    };
    Status::with_details(code, message, rich.encode_to_vec().into())
}

/// Packs a generated message into `Any` with its `type.googleapis.com/` URL.
fn pack<M: Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

/// NOT_FOUND with a `google.rpc.ErrorInfo`, e.g. reason `USER_NOT_FOUND`, domain `users.demo`.
///
/// `metadata` names the missing resource (for example `{"id": "42"}`) so callers need not parse
/// the message.
pub(crate) fn not_found(
    message: String,
    reason: &str,
    domain: &str,
    metadata: &[(&str, &str)],
) -> Status {
    let info = rpc::ErrorInfo {
        reason: reason.to_owned(),
        domain: domain.to_owned(),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
    };
    with_details(Code::NotFound, message, vec![pack(&info)])
}

/// One offending request field: `(field path, description)`.
pub(crate) type Violation = (String, String);

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` listing every offending field.
///
/// The message joins the violations (`user.name: must not be empty; ...`) so that clients which
/// ignore details still learn what to fix.
pub(crate) fn bad_request(violations: Vec<Violation>) -> Status {
    let message = violations
        .iter()
        .map(|(field, description)| format!("{field}: {description}"))
        .collect::<Vec<_>>()
        .join("; ");
    let request = rpc::BadRequest {
        field_violations: violations
            .into_iter()
            .map(|(field, description)| rpc::bad_request::FieldViolation {
                field,
                description,
                ..Default::default()
            })
            .collect(),
    };
    with_details(Code::InvalidArgument, message, vec![pack(&request)])
}

/// INVALID_ARGUMENT for a single field.
pub(crate) fn bad_field(field: &str, description: impl Into<String>) -> Status {
    bad_request(vec![(field.to_owned(), description.into())])
}

/// FAILED_PRECONDITION with a `google.rpc.PreconditionFailure`.
///
/// `kind` is the violation type (e.g. `STATUS`, `STOCK`), `subject` the resource (`orders/7`).
pub(crate) fn failed_precondition(message: String, kind: &str, subject: &str) -> Status {
    let failure = rpc::PreconditionFailure {
        violations: vec![rpc::precondition_failure::Violation {
            r#type: kind.to_owned(),
            subject: subject.to_owned(),
            description: message.clone(),
        }],
    };
    with_details(Code::FailedPrecondition, message, vec![pack(&failure)])
}

/// Decodes the `google.rpc.Status` a demo service attached to `status`.
///
/// Returns `None` when the status carries no details (e.g. it came from the transport, not
/// from a service) or they are not a valid `google.rpc.Status`.
pub fn rich_status(status: &Status) -> Option<rpc::Status> {
    if status.details().is_empty() {
        return None;
    }
    rpc::Status::decode(status.details()).ok()
}

/// Finds and decodes the first detail of type `M` in `status`, e.g. `rpc::ErrorInfo`.
pub fn find_detail<M: Name + Default>(status: &Status) -> Option<M> {
    rich_status(status)?
        .details
        .iter()
        .find_map(|any| any.to_msg::<M>().ok())
}
