//! Hostile JSON bodies: nesting 10 000 deep, invalid UTF-8, numbers out of
//! range (`1e400`, past an int32 or 2^63, fractions, NaN), and keys given
//! twice. Each is a clean 400 with the JSON error shape, the process does
//! not panic, and nothing reaches the upstream. (An upstream reply over
//! `limits.max_upstream_message` is a 502: `gateway_errors.rs`.)

use http::StatusCode;
use switchyard_demo::Service;

use crate::common::TestGateway;

fn order_with_item(item: &str) -> String {
    format!(r#"{{"userId":"1","items":[{item}]}}"#)
}

#[tokio::test]
async fn nesting_ten_thousand_deep_is_400_anywhere_in_the_body() {
    let gw = TestGateway::demo_with(", json: { unknown_fields: ignore }", "").await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    for body in [
        deep.clone(),
        format!(r#"{{"userId":"1","items":{deep}}}"#),
        // Even where the field would be ignored (`unknown_fields: ignore`).
        format!(r#"{{"userId":"1","items":[{{"sku":"A-1","qty":1}}],"ignored":{deep}}}"#),
        format!(r#"{{"userId":"1","items":[{{"sku":"A-1","qty":1}}],"ignored":{deep_objects}}}"#),
    ] {
        let reply = gw.post_json("/v1/orders", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        let (_, message) = reply.error();
        assert!(message.starts_with("invalid JSON body"), "{message}");
    }
    assert_eq!(gw.demo.calls(Service::Orders), 0);
    gw.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let gw = TestGateway::demo().await;
    for body in [
        &b"{\"userId\":\"\xff\xfe\",\"items\":[{\"sku\":\"A-1\",\"qty\":1}]}"[..],
        &b"{\"userId\":\"\xc0\xaf\",\"items\":[{\"sku\":\"A-1\",\"qty\":1}]}"[..], // overlong
        &b"{\"userId\":\"\xed\xa0\x80\",\"items\":[{\"sku\":\"A-1\",\"qty\":1}]}"[..], // a surrogate
        &b"{\"userId\":\"\\ud800\",\"items\":[{\"sku\":\"A-1\",\"qty\":1}]}"[..], // a lone escaped surrogate
    ] {
        let reply = gw
            .send(
                http::Method::POST,
                "/v1/orders",
                &[("content-type", "application/json")],
                bytes::Bytes::copy_from_slice(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        reply.error();
    }
    assert_eq!(gw.demo.calls(Service::Orders), 0);
    gw.stop().await;
}

#[tokio::test]
async fn numbers_out_of_range_are_400_never_rounded() {
    let gw = TestGateway::demo().await;
    for item in [
        r#"{"sku":"A-1","qty":1e400}"#,
        r#"{"sku":"A-1","qty":-1e400}"#,
        r#"{"sku":"A-1","qty":2147483648}"#,
        r#"{"sku":"A-1","qty":1.5}"#,
        r#"{"sku":"A-1","qty":1,"unitPriceCents":1e400}"#,
        r#"{"sku":"A-1","qty":1,"unitPriceCents":9223372036854775808}"#,
        r#"{"sku":"A-1","qty":1,"unitPriceCents":"9223372036854775808"}"#,
        r#"{"sku":"A-1","qty":1,"unitPriceCents":NaN}"#,
        r#"{"sku":"A-1","qty":1,"unitPriceCents":"Infinity"}"#,
    ] {
        let reply = gw.post_json("/v1/orders", &order_with_item(item)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{item}: {}",
            reply.text()
        );
        reply.error();
    }
    assert_eq!(gw.demo.calls(Service::Orders), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_key_or_a_field_given_twice_is_400() {
    let gw = TestGateway::demo().await;
    for (body, key) in [
        (
            r#"{"userId":"1","userId":"2","items":[{"sku":"A-1","qty":1}]}"#,
            "userId",
        ),
        (
            r#"{"userId":"1","user_id":"2","items":[{"sku":"A-1","qty":1}]}"#,
            "user_id",
        ),
        (
            r#"{"userId":"1","items":[{"sku":"A-1","qty":1,"qty":2}]}"#,
            "qty",
        ),
    ] {
        let reply = gw.post_json("/v1/orders", body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        let (_, message) = reply.error();
        assert!(
            message.starts_with(&format!("invalid JSON body: duplicate key \"{key}\"")),
            "{message}"
        );
    }
    assert_eq!(gw.demo.calls(Service::Orders), 0);
    gw.stop().await;
}
