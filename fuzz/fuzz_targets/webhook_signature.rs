//! Inbound webhook signature headers, Standard Webhooks and Stripe style:
//! any header values and body are verified or refused, never a panic.
//! Input: header values separated by NUL (id, timestamp, signature,
//! stripe-signature), then the body.
#![no_main]

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchyard::webhooks::verify::{Scheme, Verifier};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |b| *b == 0);
    let mut headers = HeaderMap::new();
    for name in [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "stripe-signature",
    ] {
        if let Some(value) = parts.next().and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.append(name, value);
        }
    }
    let body = parts.next().unwrap_or_default();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
    let schemes = [
        Scheme::StandardWebhooks,
        Scheme::Stripe {
            header: http::HeaderName::from_static("stripe-signature"),
        },
    ];
    for scheme in schemes {
        let stripe = matches!(scheme, Scheme::Stripe { .. });
        let secret = if stripe {
            "sk_test_a_secret_long_enough".to_owned()
        } else {
            secret.clone()
        };
        let verifier =
            Verifier::new(scheme, &[secret], Duration::from_secs(300)).expect("a valid secret");
        let _ = verifier.verify(&headers, body, 1_700_000_000);
    }
});
