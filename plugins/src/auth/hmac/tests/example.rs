//! The worked example of `docs/partner-signing.md`, checked: the doc shows
//! exactly the values the code computes, and the gateway admits the request.

use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::super::*;
use super::{call, mac_hex, request, set_now, stack};

const DOC: &str = include_str!("../../../../../docs/partner-signing.md");
const EXAMPLE_SECRET: &str = "partner-a-example-secret-0123456789abcdef";
const EXAMPLE_TS: u64 = 1_767_225_600;
const EXAMPLE_URI: &str = "/v1/partners/acme%20corp/orders?z=last&currency=EUR&note=hello%20world";
const EXAMPLE_BODY: &[u8] = br#"{"sku":"A-1","qty":2}"#;
const EXAMPLE_CONTENT: &str = "d3c95de2d66db9a042603637d7c75dcdb810c4f4a5e5530d450ffd344b022636";
const EXAMPLE_STS: &str = "POST\n/v1/partners/acme%20corp/orders\ncurrency=EUR&note=hello%20world&z=last\n1767225600\nd3c95de2d66db9a042603637d7c75dcdb810c4f4a5e5530d450ffd344b022636";
const EXAMPLE_SIGNATURE: &str = "f8564bc3d7fce55c634afb1c36dc7e57667c0122f92a5bf135f6568d1e2c9aab";

#[tokio::test]
async fn the_documented_worked_example_holds() {
    let uri: http::Uri = EXAMPLE_URI.parse().unwrap();
    assert_eq!(hex(&Sha256::digest(EXAMPLE_BODY)), EXAMPLE_CONTENT);
    let sts = string_to_sign(
        "POST",
        uri.path(),
        uri.query(),
        "1767225600",
        EXAMPLE_CONTENT,
    );
    assert_eq!(sts, EXAMPLE_STS);
    assert_eq!(mac_hex(EXAMPLE_SECRET, &sts), EXAMPLE_SIGNATURE);
    assert_eq!(
        hex(&Sha256::digest(b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // The doc shows exactly these values.
    for value in [
        EXAMPLE_SECRET,
        EXAMPLE_URI,
        "1767225600",
        EXAMPLE_CONTENT,
        EXAMPLE_SIGNATURE,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ] {
        assert!(DOC.contains(value), "docs/partner-signing.md lacks {value}");
    }
    assert!(
        DOC.contains(&format!("```text\n{EXAMPLE_STS}\n```")),
        "string to sign in the doc"
    );
    assert!(DOC.contains(r#"{"sku":"A-1","qty":2}"#));
    // And the gateway admits that request at that time.
    let config = json!({ "methods": [{ "hmac": { "keys": [
        { "id": "partner-a", "consumer": "partner-a", "secret": EXAMPLE_SECRET },
    ]}}]});
    let (service, _) = stack(config).await;
    set_now(EXAMPLE_TS + 10);
    let headers = vec![
        (KEY_ID, "partner-a".to_owned()),
        (TIMESTAMP, EXAMPLE_TS.to_string()),
        (CONTENT_SHA256, EXAMPLE_CONTENT.to_owned()),
        (SIGNATURE, format!("v1={EXAMPLE_SIGNATURE}")),
    ];
    let (status, _) = call(
        &service,
        request("POST", EXAMPLE_URI, EXAMPLE_BODY, &headers),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
