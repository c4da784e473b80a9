//! The one error shape every part of Switchyard answers with.
//!
//! The body is `google.rpc.Status` in its JSON mapping — `{"code", "message",
//! "details"}`, with `code` the numeric gRPC code — the shape grpc-gateway and
//! Google APIs use, so clients parse upstream errors and gateway errors alike.

use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::stage::{Response, full_body};

/// gRPC status codes (google.rpc.Code), with their canonical HTTP mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// A gateway error on its way to the client: HTTP status, gRPC code, message,
/// already-rendered JSON details, and headers the status calls for (`Allow`,
/// `WWW-Authenticate`, `Retry-After`…).
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorResponse {
    pub http_status: StatusCode,
    pub code: Code,
    pub message: String,
    pub details: Vec<serde_json::Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    code: i32,
    message: &'a str,
    details: &'a [serde_json::Value],
}

// === impl Code ===

impl Code {
    /// All codes, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code for a numeric value; unknown numbers are `Unknown`, as gRPC says.
    pub fn from_i32(n: i32) -> Code {
        usize::try_from(n)
            .ok()
            .and_then(|i| Code::ALL.get(i).copied())
            .unwrap_or(Code::Unknown)
    }

    /// The HTTP status for this code, per google.rpc.Code's documented mapping
    /// (also used by grpc-gateway and Envoy's transcoder).
    pub fn http_status(self) -> StatusCode {
        match self {
            Code::Ok => StatusCode::OK,
            // 499 "Client Closed Request" is nginx's code, not in the http crate's table.
            Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                StatusCode::BAD_REQUEST
            }
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The canonical upper-case name (`NOT_FOUND`), as used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

// === impl ErrorResponse ===

impl ErrorResponse {
    /// An error whose HTTP status follows from its gRPC code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ErrorResponse {
            http_status: code.http_status(),
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// An error with an HTTP status that the gRPC mapping cannot express
    /// (405, 413, 415, 431…); `code` is the closest gRPC code.
    pub fn with_status(http_status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ErrorResponse {
            http_status,
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Attaches rendered `google.protobuf.Any` details.
    pub fn with_details(mut self, details: Vec<serde_json::Value>) -> Self {
        self.details = details;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The JSON body, `google.rpc.Status` in its JSON mapping.
    pub fn body_json(&self) -> Vec<u8> {
        let body = StatusJson {
            code: self.code as i32,
            message: &self.message,
            details: &self.details,
        };
        // Serializing strings and already-built JSON values cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The complete HTTP response.
    pub fn into_response(self) -> Response {
        let mut response = http::Response::new(full_body(self.body_json()));
        *response.status_mut() = self.http_status;
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl std::fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.http_status.as_u16(),
            self.code.name(),
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_maps_to_the_documented_http_status() {
        let expected = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        assert_eq!(expected.len(), Code::ALL.len());
        for (code, status) in expected {
            assert_eq!(code.http_status().as_u16(), status, "{}", code.name());
            assert_eq!(Code::from_i32(code as i32), code);
        }
    }

    #[test]
    fn unknown_numeric_codes_are_unknown() {
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
    }

    #[test]
    fn error_body_is_google_rpc_status_json() {
        let err = ErrorResponse::new(Code::NotFound, "user \"9\" not found")
            .with_details(vec![serde_json::json!({"@type": "x"})]);
        let body: serde_json::Value = serde_json::from_slice(&err.body_json()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code": 5, "message": "user \"9\" not found", "details": [{"@type": "x"}]})
        );
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
