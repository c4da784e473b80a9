use std::path::PathBuf;

use super::*;
use crate::auth::tests::sha256_hex;

fn key(consumer: &str, secret: &str) -> KeyEntry {
    KeyEntry {
        consumer: consumer.into(),
        sha256: sha256_hex(secret),
    }
}

fn config(keys: Vec<KeyEntry>) -> ApiKeyConfig {
    ApiKeyConfig {
        header: None,
        query: None,
        keys,
        keys_file: None,
    }
}

fn new_err(config: &ApiKeyConfig) -> String {
    match ApiKey::new(config) {
        Ok(_) => panic!("expected an error for {config:?}"),
        Err(e) => e,
    }
}

/// A file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "switchyard-auth-{}-{name}.keys",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn authenticated(consumer: &str) -> Outcome {
    Outcome::Authenticated(Identity {
        consumer: consumer.into(),
        headers: Vec::new(),
        claims: None,
    })
}

// --- digests ---

#[test]
fn parses_hex_digests_in_either_case() {
    let lower = sha256_hex("k");
    let expected: [u8; 32] = Sha256::digest(b"k").into();
    assert_eq!(parse_sha256_hex(&lower).unwrap(), expected);
    assert_eq!(parse_sha256_hex(&lower.to_uppercase()).unwrap(), expected);
}

#[test]
fn rejects_digests_of_the_wrong_length_or_alphabet() {
    let short = parse_sha256_hex(&sha256_hex("k")[1..]).unwrap_err();
    assert!(short.contains("64 hex digits"), "{short}");
    assert!(short.contains("got 63 characters"), "{short}");
    assert!(short.contains("printf %s"), "{short}");
    let raw_key = parse_sha256_hex("demo-key-123").unwrap_err();
    assert!(raw_key.contains("got 12 characters"), "{raw_key}");
    let not_hex = parse_sha256_hex(&"g".repeat(64)).unwrap_err();
    assert!(not_hex.contains("other than 0-9, a-f"), "{not_hex}");
    // Multi-byte characters are counted as characters, and refused.
    assert!(parse_sha256_hex(&"é".repeat(32)).is_err());
}

// --- config validation ---

#[test]
fn reads_x_api_key_when_neither_header_nor_query_is_set() {
    let method = ApiKey::new(&config(vec![key("acme", "s3cret")])).unwrap();
    assert_eq!(method.header.as_ref().unwrap(), "x-api-key");
    assert_eq!(method.query, None);
    assert_eq!(method.challenge, "ApiKey header=\"x-api-key\"");
}

#[test]
fn query_alone_reads_no_header() {
    let mut c = config(vec![key("acme", "s3cret")]);
    c.query = Some("api_key".into());
    let method = ApiKey::new(&c).unwrap();
    assert_eq!(method.header, None);
    assert_eq!(method.challenge, "ApiKey query=\"api_key\"");
}

#[test]
fn header_and_query_both_appear_in_the_challenge() {
    let mut c = config(vec![key("acme", "s3cret")]);
    c.header = Some("X-Partner-Key".into());
    c.query = Some("key".into());
    let method = ApiKey::new(&c).unwrap();
    assert_eq!(method.header.as_ref().unwrap(), "x-partner-key");
    assert_eq!(
        method.challenge,
        "ApiKey header=\"x-partner-key\", query=\"key\""
    );
}

#[test]
fn rejects_empty_or_invalid_header_and_query_names() {
    let mut c = config(vec![key("acme", "s3cret")]);
    c.header = Some(String::new());
    assert!(new_err(&c).contains("`header` is empty"));
    c.header = Some("bad header".into());
    assert!(new_err(&c).contains("not a valid header name"));
    c.header = None;
    c.query = Some(String::new());
    assert!(new_err(&c).contains("`query` is empty"));
    c.query = Some("api key".into());
    assert!(new_err(&c).contains("not a plain parameter name"));
    c.query = Some("a\"b".into());
    assert!(new_err(&c).contains("not a plain parameter name"));
}

#[test]
fn rejects_a_config_without_keys() {
    assert_eq!(
        new_err(&config(vec![])),
        "no keys: set `keys` and/or `keys_file`"
    );
    let file = TempFile::new("empty", "# nobody yet\n\n");
    let mut c = config(vec![]);
    c.keys_file = Some(file.0.clone());
    let err = new_err(&c);
    assert!(err.contains("lists none"), "{err}");
    assert!(err.contains(&file.0.display().to_string()), "{err}");
}

#[test]
fn rejects_bad_digests_naming_the_key_but_not_the_digest() {
    let c = config(vec![
        key("acme", "s3cret"),
        KeyEntry {
            consumer: "globex".into(),
            sha256: "abc".into(),
        },
    ]);
    let err = new_err(&c);
    assert!(
        err.starts_with("keys[1] (consumer `globex`): `sha256` must be 64 hex digits"),
        "{err}"
    );
}

#[test]
fn rejects_duplicate_digests() {
    let c = config(vec![
        key("acme", "s3cret"),
        key("globex", "other"),
        key("initech", "s3cret"),
    ]);
    assert_eq!(
        new_err(&c),
        "keys[2] (consumer `initech`) has the same digest as keys[0] (consumer `acme`): \
         each key may be listed once"
    );
    // Case does not make two digests different.
    let mut upper = key("acme", "s3cret");
    upper.sha256 = upper.sha256.to_uppercase();
    let c = config(vec![key("acme", "s3cret"), upper]);
    assert!(new_err(&c).contains("has the same digest as keys[0]"));
}

#[test]
fn rejects_the_digest_of_the_empty_string() {
    let err = new_err(&config(vec![key("acme", "")]));
    assert!(err.contains("digest of the empty string"), "{err}");
}

#[test]
fn rejects_bad_consumer_names() {
    for bad in ["", "two words", &"x".repeat(129), "tab\there"] {
        let err = new_err(&config(vec![key(bad, "s3cret")]));
        assert!(err.starts_with("keys[0]: consumer "), "{err}");
    }
}

// --- keys_file ---

#[test]
fn loads_a_keys_file_with_comments_blank_lines_and_crlf() {
    let text = format!(
        "# issued 2024-05\n\nacme:{}\r\n  globex : {}  \n",
        sha256_hex("acme-key"),
        sha256_hex("globex-key").to_uppercase()
    );
    let file = TempFile::new("good", &text);
    let mut c = config(vec![key("initech", "initech-key")]);
    c.keys_file = Some(file.0.clone());
    let method = ApiKey::new(&c).unwrap();
    assert_eq!(method.consumers, ["initech", "acme", "globex"]);
    assert_eq!(method.check(b"globex-key"), authenticated("globex"));
    assert_eq!(method.check(b"acme-key"), authenticated("acme"));
}

#[test]
fn a_bad_line_names_the_file_and_line_but_not_its_text() {
    let text = format!(
        "# keys\nacme:{}\nthis-is-a-raw-key-pasted-by-mistake\n",
        sha256_hex("acme-key")
    );
    let file = TempFile::new("badline", &text);
    let mut c = config(vec![]);
    c.keys_file = Some(file.0.clone());
    let err = new_err(&c);
    assert_eq!(
        err,
        format!(
            "keys_file `{}` line 3: expected `consumer:sha256hex`",
            file.0.display()
        )
    );
    assert!(!err.contains("pasted"), "{err}");
}

#[test]
fn a_bad_digest_in_the_file_names_the_file_line_and_consumer() {
    let file = TempFile::new("badhex", "acme:not-a-digest\n");
    let mut c = config(vec![]);
    c.keys_file = Some(file.0.clone());
    let err = new_err(&c);
    assert!(
        err.starts_with(&format!(
            "keys_file `{}` line 1 (consumer `acme`): `sha256` must be 64 hex digits",
            file.0.display()
        )),
        "{err}"
    );
    assert!(!err.contains("not-a-digest"), "{err}");
}

#[test]
fn a_duplicate_across_keys_and_file_names_both_places() {
    let file = TempFile::new("dup", &format!("globex:{}\n", sha256_hex("shared")));
    let mut c = config(vec![key("acme", "shared")]);
    c.keys_file = Some(file.0.clone());
    assert_eq!(
        new_err(&c),
        format!(
            "keys_file `{}` line 1 (consumer `globex`) has the same digest as keys[0] \
             (consumer `acme`): each key may be listed once",
            file.0.display()
        )
    );
}

#[test]
fn an_unreadable_keys_file_is_named() {
    let mut c = config(vec![]);
    c.keys_file = Some("/nonexistent/switchyard/keys".into());
    let err = new_err(&c);
    assert!(
        err.starts_with("keys_file `/nonexistent/switchyard/keys`: cannot read it: "),
        "{err}"
    );
}

// --- request side ---

#[test]
fn every_configured_digest_is_compared_whatever_the_key() {
    let keys: Vec<_> = (0..5)
        .map(|i| key(&format!("c{i}"), &format!("key-{i}")))
        .collect();
    let method = ApiKey::new(&config(keys)).unwrap();
    for (presented, expected) in [
        ("key-0", authenticated("c0")),
        ("key-2", authenticated("c2")),
        ("key-4", authenticated("c4")),
        ("key-9", Outcome::Rejected(INVALID)),
    ] {
        let before = COMPARISONS.with(|n| n.get());
        assert_eq!(method.check(presented.as_bytes()), expected, "{presented}");
        let compared = COMPARISONS.with(|n| n.get()) - before;
        assert_eq!(compared, 5, "digests compared for {presented}");
    }
}

#[test]
fn reads_the_header_then_the_query() {
    let mut c = config(vec![key("acme", "a-key"), key("globex", "g-key")]);
    c.header = Some("x-api-key".into());
    c.query = Some("api_key".into());
    let method = ApiKey::new(&c).unwrap();
    let both = parts("/p?api_key=g-key", &[("x-api-key", "a-key")]);
    assert_eq!(method.authenticate(&both), authenticated("acme"));
    let query = parts("/p?api_key=g-key", &[]);
    assert_eq!(method.authenticate(&query), authenticated("globex"));
    let empty_header = parts("/p?api_key=g-key", &[("x-api-key", "")]);
    assert_eq!(method.authenticate(&empty_header), authenticated("globex"));
    assert_eq!(method.authenticate(&parts("/p", &[])), Outcome::Absent);
    assert_eq!(
        method.authenticate(&parts("/p?api_key=", &[])),
        Outcome::Absent
    );
}

#[test]
fn refuses_repeated_or_malformed_credentials() {
    let mut c = config(vec![key("acme", "a-key")]);
    c.query = Some("api_key".into());
    c.header = Some("x-api-key".into());
    let method = ApiKey::new(&c).unwrap();
    let twice = parts("/", &[("x-api-key", "a-key"), ("x-api-key", "a-key")]);
    assert_eq!(method.authenticate(&twice), Outcome::Rejected(INVALID));
    let twice = parts("/?api_key=a-key&api_key=a-key", &[]);
    assert_eq!(method.authenticate(&twice), Outcome::Rejected(INVALID));
    let malformed = parts("/?api_key=a-key%zz", &[]);
    assert_eq!(method.authenticate(&malformed), Outcome::Rejected(INVALID));
}

#[test]
fn finds_the_query_parameter_form_decoded() {
    assert_eq!(find_param(None, "k"), Param::Absent);
    assert_eq!(find_param(Some("a=1&b=2"), "k"), Param::Absent);
    assert_eq!(
        find_param(Some("a=1&k=x%2By+z&b=2"), "k"),
        Param::Found(Cow::Borrowed(b"x+y z".as_slice()))
    );
    // An encoded name is the same name.
    assert_eq!(
        find_param(Some("%6B=v"), "k"),
        Param::Found(Cow::Borrowed(b"v".as_slice()))
    );
    // `k` alone is `k=`.
    assert_eq!(
        find_param(Some("k"), "k"),
        Param::Found(Cow::Borrowed(b"".as_slice()))
    );
    assert_eq!(find_param(Some("k=1&k=2"), "k"), Param::Invalid);
    assert_eq!(find_param(Some("k=%4"), "k"), Param::Invalid);
    // A malformed escape elsewhere is not this method's business.
    assert_eq!(
        find_param(Some("q=%zz&k=v"), "k"),
        Param::Found(Cow::Borrowed(b"v".as_slice()))
    );
}

#[test]
fn strips_the_parameter_and_keeps_the_rest_of_the_uri() {
    let strip = |uri: &str| without_param(&uri.parse().unwrap(), "api_key").map(|u| u.to_string());
    assert_eq!(strip("/v1/x?a=1"), None);
    assert_eq!(strip("/v1/x"), None);
    assert_eq!(strip("/v1/x?api_key=k").as_deref(), Some("/v1/x"));
    assert_eq!(
        strip("/v1/x?a=1&api_key=k&b=%20&&c").as_deref(),
        Some("/v1/x?a=1&b=%20&c")
    );
    assert_eq!(
        strip("/v1/x?api%5Fkey=k&api_key=j&a=1").as_deref(),
        Some("/v1/x?a=1")
    );
    assert_eq!(
        strip("http://gw.example:8080/v1/x?api_key=k&a=1").as_deref(),
        Some("http://gw.example:8080/v1/x?a=1")
    );
}

#[test]
fn strip_removes_the_header_and_the_parameter() {
    let mut c = config(vec![key("acme", "a-key")]);
    c.header = Some("x-api-key".into());
    c.query = Some("api_key".into());
    let method = ApiKey::new(&c).unwrap();
    let mut p = parts(
        "/v1/x?api_key=a-key&page=2",
        &[
            ("x-api-key", "a-key"),
            ("x-api-key", "b"),
            ("accept", "*/*"),
        ],
    );
    method.strip(&mut p);
    assert!(p.headers.get("x-api-key").is_none());
    assert_eq!(p.headers["accept"], "*/*");
    assert_eq!(p.uri, "/v1/x?page=2");
}
