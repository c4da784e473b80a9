//! The running config as `/admin/config` shows it: values after `${ENV}`
//! expansion, secrets replaced by `"<redacted>"`.
//!
//! A value is a secret when its key names one (`secret`, `secrets`,
//! `password`, `token`, `credentials`, `sha256`, …: HMAC and webhook
//! secrets, API key digests, the admin token, broker credentials), and
//! the password of any URL (`redis://user:pw@host`) is one too. A key
//! that holds a file *path* (`cert`, `key`, `ca`, `credentials_file`) is
//! kept: the path is not the secret.

use serde_json::Value;

/// What stands in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Key names (lower case) whose values are secrets, matched as a whole or
/// as a `_`-separated part (`client_secret`, `api_token`).
const SECRET_WORDS: &[&str] = &[
    "secret",
    "secrets",
    "password",
    "passwd",
    "passphrase",
    "token",
    "tokens",
    "credentials",
    "hash",
    "hashes",
    "sha256",
    "nkey",
    "seed",
    "authorization",
    "cookie",
];

/// Key parts that say the value is a path to a file, not the secret.
const FILE_WORDS: &[&str] = &["file", "path", "dir"];

/// `values` with every secret replaced.
pub fn redact(values: &Value) -> Value {
    match values {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if is_secret_key(key) {
                        hide(value)
                    } else {
                        redact(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) => Value::String(redact_url(text)),
        other => other.clone(),
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let parts: Vec<&str> = key.split(['_', '-']).collect();
    parts.iter().any(|p| SECRET_WORDS.contains(p)) && !parts.iter().any(|p| FILE_WORDS.contains(p))
}

/// Every scalar under `value` replaced (the shape stays: a list of
/// secrets is a list of `<redacted>`).
fn hide(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), hide(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(hide).collect()),
        Value::Null => Value::Null,
        _ => Value::String(REDACTED.to_owned()),
    }
}

/// `scheme://user:password@host…` with the password replaced.
fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return text.to_owned();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        // A lone user part may itself be a token (`nats://TOKEN@host`).
        None => REDACTED.to_owned(),
    };
    format!(
        "{}{user}{}",
        &text[..scheme_end + 3],
        &text[scheme_end + 3 + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_by_key_are_hidden_and_paths_kept() {
        let config = json!({
            "admin": {"token": "t0ps3cret", "address": "127.0.0.1:9090"},
            "plugins": [{"hmac": {"keys": [{"id": "p1", "secret": "abc"}]}},
                        {"api_key": {"keys": [{"consumer": "ci", "sha256": "5e88…"}]}}],
            "listeners": [{"tls": {"certificates": [{"cert": "a.pem", "key": "a.key"}]}}],
            "sinks": {"bus": {"nats": {"credentials_file": "/etc/nats.creds"}}},
            "webhooks": [{"secrets": ["whsec_1", "whsec_2"]}]
        });
        let shown = redact(&config);
        assert_eq!(shown["admin"]["token"], REDACTED);
        assert_eq!(shown["admin"]["address"], "127.0.0.1:9090");
        assert_eq!(shown["plugins"][0]["hmac"]["keys"][0]["secret"], REDACTED);
        assert_eq!(shown["plugins"][0]["hmac"]["keys"][0]["id"], "p1");
        assert_eq!(
            shown["plugins"][1]["api_key"]["keys"][0]["sha256"],
            REDACTED
        );
        assert_eq!(shown["plugins"][1]["api_key"]["keys"][0]["consumer"], "ci");
        assert_eq!(
            shown["listeners"][0]["tls"]["certificates"][0]["key"],
            "a.key"
        );
        assert_eq!(
            shown["sinks"]["bus"]["nats"]["credentials_file"],
            "/etc/nats.creds"
        );
        assert_eq!(shown["webhooks"][0]["secrets"], json!([REDACTED, REDACTED]));
        assert!(!shown.to_string().contains("t0ps3cret"));
    }

    #[test]
    fn url_passwords_are_hidden_and_the_rest_of_the_url_kept() {
        assert_eq!(
            redact_url("redis://app:hunter2@10.0.0.1:6379/0"),
            "redis://app:<redacted>@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("nats://s3cr3t@127.0.0.1:4222"),
            "nats://<redacted>@127.0.0.1:4222"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:50051"),
            "http://127.0.0.1:50051"
        );
        assert_eq!(
            redact_url("https://h.example/p?q=a@b"),
            "https://h.example/p?q=a@b"
        );
    }
}
