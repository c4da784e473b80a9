//! The stored record's encoding, the fingerprint, and what is storable.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Uri};

use super::*;

fn stored() -> StoredResponse {
    StoredResponse {
        fingerprint: Fingerprint([7; 32]),
        status: StatusCode::CREATED,
        headers: vec![
            (
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("grpc-metadata-x"),
                HeaderValue::from_static("a"),
            ),
            (
                HeaderName::from_static("grpc-metadata-x"),
                HeaderValue::from_static("b"),
            ),
        ],
        body: Bytes::from_static(b"{\"id\":\"11\"}\n\n\x00binary"),
    }
}

#[test]
fn records_round_trip() {
    let in_flight = Record::InFlight {
        fingerprint: Fingerprint([1; 32]),
        token: u128::MAX - 5,
    };
    assert_eq!(
        Record::decode(in_flight.encode().into()).unwrap(),
        in_flight
    );
    let completed = Record::Completed(Arc::new(stored()));
    assert_eq!(
        Record::decode(completed.encode().into()).unwrap(),
        completed
    );
}

#[test]
fn the_metadata_is_one_json_line_before_the_raw_body() {
    let encoded = Record::Completed(Arc::new(stored())).encode();
    let text = String::from_utf8_lossy(&encoded);
    let (meta, body) = text.split_once('\n').unwrap();
    let meta: serde_json::Value = serde_json::from_str(meta).unwrap();
    assert_eq!(meta["state"], "completed");
    assert_eq!(meta["status"], 201);
    assert_eq!(
        meta["headers"][0],
        serde_json::json!(["content-type", "application/json"])
    );
    assert!(body.starts_with("{\"id\":\"11\"}"));
}

#[test]
fn anything_else_does_not_decode() {
    for bad in [
        &b""[..],
        b"no newline",
        b"{}\n",
        b"{\"v\":2,\"state\":\"in_flight\",\"fingerprint\":\"00\"}\n",
        b"{\"v\":1,\"state\":\"in_flight\",\"fingerprint\":\"00\"}\n",
        b"{\"v\":1,\"state\":\"completed\",\"fingerprint\":\"0000000000000000000000000000000000000000000000000000000000000000\"}\n",
    ] {
        assert!(Record::decode(Bytes::from_static(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn replays_carry_the_stored_parts_and_the_replayed_header() {
    let response = stored().replay();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    let values: Vec<_> = response
        .headers()
        .get_all("grpc-metadata-x")
        .iter()
        .collect();
    assert_eq!(values, ["a", "b"]);
}

#[test]
fn fingerprints_cover_method_path_query_and_body() {
    let uri = |s: &str| s.parse::<Uri>().unwrap();
    let base = Fingerprint::of(&Method::POST, &uri("/v1/orders"), b"{}");
    assert_eq!(
        base,
        Fingerprint::of(&Method::POST, &uri("/v1/orders"), b"{}")
    );
    for other in [
        Fingerprint::of(&Method::PATCH, &uri("/v1/orders"), b"{}"),
        Fingerprint::of(&Method::POST, &uri("/v1/orders?x=1"), b"{}"),
        Fingerprint::of(&Method::POST, &uri("/v1/orders/"), b"{}"),
        Fingerprint::of(&Method::POST, &uri("/v1/orders"), b"{ }"),
        // No ambiguity between the path and the body.
        Fingerprint::of(&Method::POST, &uri("/v1/order"), b"s{}"),
    ] {
        assert_ne!(base, other);
    }
}

#[test]
fn successes_and_final_client_errors_are_storable() {
    for status in [200, 201, 204, 400, 404, 413, 422] {
        assert!(storable(StatusCode::from_u16(status).unwrap()), "{status}");
    }
    for status in [100, 301, 408, 409, 425, 429, 499, 500, 502, 503, 504] {
        assert!(!storable(StatusCode::from_u16(status).unwrap()), "{status}");
    }
}
