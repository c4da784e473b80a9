use super::*;

// The Standard Webhooks spec's example (also what the Python
// `standardwebhooks` package signs for these inputs).
const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STD_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const STD_TS: u64 = 1614265330;
const STD_BODY: &[u8] = br#"{"test": 2432232314}"#;
const STD_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// Stripe-style: HMAC-SHA256 computed by Python's `hmac` module over
// "1700000000.{body}" with the secret string's bytes.
const STRIPE_SECRET: &str = "whsec_test_stripe_secret_0123456789abcdef";
const STRIPE_TS: u64 = 1700000000;
const STRIPE_BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
const STRIPE_HEX: &str = "8af4df91f671d8533d1f0e8eaecf3be6ef9d38293f47c9b0120c7ef703402989";

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::try_from(*name).unwrap(), value.parse().unwrap());
    }
    map
}

fn standard(secrets: &[&str]) -> Verifier {
    let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
    Verifier::new(Scheme::StandardWebhooks, &secrets, FIVE_MINUTES).unwrap()
}

fn std_headers(signature: &str) -> HeaderMap {
    headers(&[
        ("webhook-id", STD_ID),
        ("webhook-timestamp", &STD_TS.to_string()),
        ("webhook-signature", signature),
    ])
}

fn stripe(secrets: &[&str], header: &str) -> Verifier {
    let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
    let header = HeaderName::try_from(header).unwrap();
    Verifier::new(Scheme::Stripe { header }, &secrets, FIVE_MINUTES).unwrap()
}

#[test]
fn the_standard_webhooks_spec_example_verifies() {
    let verified = standard(&[STD_SECRET])
        .verify(&std_headers(STD_SIG), STD_BODY, STD_TS)
        .unwrap();
    assert_eq!(verified.id.as_deref(), Some(STD_ID));
    // The secret without its prefix is the same key.
    let bare = STD_SECRET.strip_prefix("whsec_").unwrap();
    assert!(
        standard(&[bare])
            .verify(&std_headers(STD_SIG), STD_BODY, STD_TS)
            .is_ok()
    );
}

#[test]
fn any_listed_secret_and_any_sent_signature_is_enough() {
    let other = "whsec_b3RoZXItc2VjcmV0LW9mLTI0LWJ5dGVz";
    let verifier = standard(&[other, STD_SECRET]);
    let several = format!("v1a,AAAA v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {STD_SIG}");
    assert!(
        verifier
            .verify(&std_headers(&several), STD_BODY, STD_TS)
            .is_ok()
    );
    assert_eq!(
        standard(&[other]).verify(&std_headers(STD_SIG), STD_BODY, STD_TS),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn a_tampered_body_id_or_timestamp_is_refused() {
    let verifier = standard(&[STD_SECRET]);
    assert_eq!(
        verifier.verify(&std_headers(STD_SIG), br#"{"test": 2432232315}"#, STD_TS),
        Err(Rejection::BadSignature)
    );
    let mut other_id = std_headers(STD_SIG);
    other_id.insert(WEBHOOK_ID, "msg_other".parse().unwrap());
    assert_eq!(
        verifier.verify(&other_id, STD_BODY, STD_TS),
        Err(Rejection::BadSignature)
    );
    let mut other_ts = std_headers(STD_SIG);
    other_ts.insert(WEBHOOK_TIMESTAMP, (STD_TS + 1).to_string().parse().unwrap());
    assert_eq!(
        verifier.verify(&other_ts, STD_BODY, STD_TS),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn timestamps_outside_the_tolerance_are_refused_after_the_signature() {
    let verifier = standard(&[STD_SECRET]);
    let h = std_headers(STD_SIG);
    assert!(verifier.verify(&h, STD_BODY, STD_TS + 300).is_ok());
    assert!(verifier.verify(&h, STD_BODY, STD_TS - 300).is_ok());
    let old = verifier.verify(&h, STD_BODY, STD_TS + 301).unwrap_err();
    assert_eq!(
        old,
        Rejection::TooOld {
            age: 301,
            tolerance: 300
        }
    );
    assert!(old.to_string().contains("too old"), "{old}");
    let new = verifier.verify(&h, STD_BODY, STD_TS - 301).unwrap_err();
    assert_eq!(
        new,
        Rejection::TooNew {
            ahead: 301,
            tolerance: 300
        }
    );
    assert!(new.to_string().contains("too new"), "{new}");
    // A bad signature is a bad signature whatever the clock says.
    assert_eq!(
        verifier.verify(&h, b"{}", STD_TS + 10_000),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn missing_or_malformed_headers_name_the_header() {
    let verifier = standard(&[STD_SECRET]);
    let ts = STD_TS.to_string();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("webhook-timestamp", &ts), ("webhook-signature", STD_SIG)],
            "missing `webhook-id`",
        ),
        (
            &[("webhook-id", STD_ID), ("webhook-signature", STD_SIG)],
            "missing `webhook-timestamp`",
        ),
        (
            &[("webhook-id", STD_ID), ("webhook-timestamp", &ts)],
            "missing `webhook-signature`",
        ),
        (
            &[
                ("webhook-id", STD_ID),
                ("webhook-timestamp", "16142653.30"),
                ("webhook-signature", STD_SIG),
            ],
            "malformed `webhook-timestamp`",
        ),
        (
            &[
                ("webhook-id", STD_ID),
                ("webhook-timestamp", &ts),
                ("webhook-signature", "v2,abc"),
            ],
            "malformed `webhook-signature`",
        ),
    ];
    for (pairs, message) in cases {
        match verifier.verify(&headers(pairs), STD_BODY, STD_TS) {
            Err(Rejection::Malformed(m)) => assert!(m.contains(message), "{m} vs {message}"),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }
}

#[test]
fn unusable_secrets_are_refused_by_index_without_echoing_them() {
    let check = |secrets: &[&str]| {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        Verifier::new(Scheme::StandardWebhooks, &secrets, FIVE_MINUTES).unwrap_err()
    };
    assert_eq!(check(&[]).0, None);
    let (index, message) = check(&[STD_SECRET, "whsec_not base64!"]);
    assert_eq!(index, Some(1));
    assert!(!message.contains("not base64!"), "{message}");
    let (index, message) = check(&["whsec_c2hvcnQ="]);
    assert_eq!(index, Some(0));
    assert!(message.contains("shorter than 16 bytes"), "{message}");
}

#[test]
fn a_stripe_signature_verifies_among_several_schemes() {
    let verifier = stripe(&[STRIPE_SECRET], STRIPE_SIGNATURE);
    let value = format!("t={STRIPE_TS},v1={},v1={STRIPE_HEX},v0=abc", "0".repeat(64));
    let verified = verifier
        .verify(
            &headers(&[("Stripe-Signature", &value)]),
            STRIPE_BODY,
            STRIPE_TS,
        )
        .unwrap();
    assert_eq!(verified.id, None);
    assert_eq!(
        switchyard_plugins::hex::encode(&verified.signature),
        STRIPE_HEX
    );
}

#[test]
fn stripe_rotation_custom_header_tampering_and_staleness() {
    let verifier = stripe(
        &["whsec_an_older_secret_0123456789", STRIPE_SECRET],
        "x-acme-signature",
    );
    let value = format!("t={STRIPE_TS},v1={STRIPE_HEX}");
    let h = headers(&[("x-acme-signature", &value)]);
    assert!(verifier.verify(&h, STRIPE_BODY, STRIPE_TS + 299).is_ok());
    assert_eq!(
        verifier.verify(&h, br#"{"id":"evt_2","type":"invoice.paid"}"#, STRIPE_TS),
        Err(Rejection::BadSignature)
    );
    assert!(matches!(
        verifier.verify(&h, STRIPE_BODY, STRIPE_TS + 301),
        Err(Rejection::TooOld { age: 301, .. })
    ));
    // The default header is not looked at when another is configured.
    let default = headers(&[("stripe-signature", &value)]);
    assert!(matches!(
        verifier.verify(&default, STRIPE_BODY, STRIPE_TS),
        Err(Rejection::Malformed(_))
    ));
    for bad in [
        format!("v1={STRIPE_HEX}"),
        format!("t=x,v1={STRIPE_HEX}"),
        format!("t={STRIPE_TS}"),
        format!("t={STRIPE_TS},v1=zz"),
    ] {
        assert!(
            matches!(
                verifier.verify(
                    &headers(&[("x-acme-signature", &bad)]),
                    STRIPE_BODY,
                    STRIPE_TS
                ),
                Err(Rejection::Malformed(_))
            ),
            "{bad}"
        );
    }
}
