use super::*;

fn parse(template: &str) -> PathTemplate {
    PathTemplate::parse(template).unwrap_or_else(|e| panic!("{e}"))
}

fn names(template: &PathTemplate) -> Vec<&str> {
    template
        .variables()
        .iter()
        .map(TemplateVariable::name)
        .collect()
}

/// `None` = no match; `Some(values)` = match with those captures.
fn check_matches(cases: &[(&str, &str, Option<&[&str]>)]) {
    for &(template, path, expected) in cases {
        let got = parse(template)
            .matches(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let expected: Option<Vec<String>> =
            expected.map(|values| values.iter().map(|v| v.to_string()).collect());
        assert_eq!(got, expected, "template {template} on path {path}");
    }
}

#[test]
fn parse_accepts_valid_templates_and_reports_shape_variables_and_verb() {
    let cases: &[(&str, &str, &[&str], Option<&str>)] = &[
        ("/", "/", &[], None),
        ("/v1/users", "/v1/users", &[], None),
        ("/v1/users/{id}", "/v1/users/*", &["id"], None),
        ("/v1/users/{id=*}", "/v1/users/*", &["id"], None),
        (
            "/v1/{name=shelves/*/books/*}",
            "/v1/shelves/*/books/*",
            &["name"],
            None,
        ),
        ("/v1/{name=messages/**}", "/v1/messages/**", &["name"], None),
        ("/**", "/**", &[], None),
        ("/v1/*/x/**", "/v1/*/x/**", &[], None),
        ("/v1/users/{user.id}", "/v1/users/*", &["user.id"], None),
        ("/v1/{a}/{b_2.c}", "/v1/*/*", &["a", "b_2.c"], None),
        ("/v1/{a.b}/{a.c}", "/v1/*/*", &["a.b", "a.c"], None),
        (
            "/v1/orders/{id}:cancel",
            "/v1/orders/*:cancel",
            &["id"],
            Some("cancel"),
        ),
        (
            "/v1/users:batchGet",
            "/v1/users:batchGet",
            &[],
            Some("batchGet"),
        ),
        (
            "/v1/{name=**}:undelete",
            "/v1/**:undelete",
            &["name"],
            Some("undelete"),
        ),
        ("/v1/us%65rs/a%20b", "/v1/users/a%20b", &[], None),
        (
            "/v1/a-b.c_d~e!$&'()+,;@",
            "/v1/a-b.c_d~e!$&'()+,;@",
            &[],
            None,
        ),
        ("/v1/%2A/%3A", "/v1/%2A/%3A", &[], None),
    ];
    for &(text, shape, vars, verb) in cases {
        let template = parse(text);
        assert_eq!(template.shape(), shape, "{text}");
        assert_eq!(names(&template), vars, "{text}");
        assert_eq!(template.verb(), verb, "{text}");
        assert_eq!(template.as_str(), text);
        assert_eq!(template.to_string(), text);
    }
}

#[test]
fn parse_rejects_invalid_templates_with_position_and_reason() {
    let cases = [
        ("v1/users", "at byte 0: a template must start with '/'"),
        ("", "at byte 0: a template must start with '/'"),
        ("/v1//users", "at byte 4: empty segment"),
        ("/v1/users/", "at byte 10: empty segment"),
        ("/v1/:verb", "at byte 4: empty segment"),
        ("/v1/{a=}", "at byte 7: empty segment"),
        ("/v1/{a={b}}", "at byte 7: variables cannot be nested"),
        ("/v1/{a=x/{b}}", "at byte 9: variables cannot be nested"),
        ("/v1/{a", "at byte 4: '{' is never closed"),
        ("/v1/{a=b/c", "at byte 4: '{' is never closed"),
        ("/v1/a}", "at byte 5: '}' without a matching '{'"),
        ("/v1/}", "at byte 4: '}' without a matching '{'"),
        ("/v1/{}", "at byte 5: expected a field name"),
        ("/v1/{1a}", "at byte 5: expected a field name"),
        ("/v1/{a.}", "at byte 7: expected a field name"),
        ("/v1/{a-b}", "at byte 6: unexpected character '-'"),
        ("/v1/{a/b}", "at byte 6: unexpected character '/'"),
        ("/v1/{a}/{a}", "at byte 8: field `a` is bound twice"),
        ("/v1/{a.b}/{a}", "at byte 10: fields `a.b` and `a` overlap"),
        ("/**/a", "at byte 1: '**' must be the last segment"),
        ("/v1/{a=**}/b", "at byte 7: '**' must be the last segment"),
        ("/v1/{a=**/b}", "at byte 7: '**' must be the last segment"),
        ("/v1/***", "at byte 6: unexpected character '*'"),
        ("/v1/a*", "at byte 5: unexpected character '*'"),
        ("/v1/a{b}", "at byte 5: unexpected character '{'"),
        ("/v1/a:b/c", "at byte 7: unexpected character '/'"),
        ("/v1/a:b:c", "at byte 7: unexpected character ':'"),
        ("/v1/a:", "at byte 6: empty verb after ':'"),
        ("/v1/a:{b}", "at byte 6: unexpected character '{'"),
        ("/v1/a=b", "at byte 5: unexpected character '='"),
        ("/v1/caf\u{e9}", "at byte 7: unexpected character '\u{e9}'"),
        ("/v1/a%2", "at byte 5: invalid percent-encoding"),
        ("/v1/a%zz", "at byte 5: invalid percent-encoding"),
        ("/v1/%FF", "at byte 4: invalid percent-encoding"),
    ];
    for (text, expected) in cases {
        let err = PathTemplate::parse(text).expect_err(text);
        let message = err.to_string();
        let prefix = format!("invalid path template `{text}` ");
        assert!(message.starts_with(&prefix), "{message}");
        assert!(message.contains(expected), "{text}: got {message:?}");
        assert_eq!(err.template(), text);
    }
}

#[test]
fn template_error_is_a_std_error_with_structured_reason() {
    let err = PathTemplate::parse("/v1/{a}/{a}").unwrap_err();
    let dyn_err: &dyn std::error::Error = &err;
    assert!(dyn_err.to_string().contains("bound twice"));
    assert_eq!(err.position(), 8);
    assert_eq!(
        err.reason(),
        &TemplateErrorReason::DuplicateVariable("a".into())
    );
}

#[test]
fn variables_record_segment_range_and_multi_segment_flag() {
    type Case<'a> = (&'a str, &'a [(Range<usize>, bool)]);
    let cases: &[Case] = &[
        ("/v1/users/{id}", &[(2..3, false)]),
        ("/v1/{name=shelves/*/books/*}", &[(1..5, true)]),
        ("/v1/{name=messages/**}", &[(1..3, true)]),
        ("/{path=**}", &[(0..1, true)]),
        ("/v1/{x=lit}", &[(1..2, false)]),
        ("/{a}/{b=*/*}:v", &[(0..1, false), (1..3, true)]),
    ];
    for &(text, expected) in cases {
        let template = parse(text);
        let got: Vec<_> = template
            .variables()
            .iter()
            .map(|v| (v.segments(), v.is_multi_segment()))
            .collect();
        assert_eq!(got, expected, "{text}");
    }
    assert_eq!(
        parse("/v1/users/{user.id}").variables()[0].field_path,
        ["user", "id"]
    );
}

#[test]
fn shape_erases_variable_names_and_boundaries_but_keeps_verb() {
    let same = [
        ("/v1/users/{id}", "/v1/users/{name}"),
        ("/v1/users/{id}", "/v1/users/*"),
        ("/v1/{name=shelves/*}", "/v1/shelves/{shelf}"),
        ("/v1/us%65rs", "/v1/users"),
        ("/{a=**}", "/**"),
    ];
    for (a, b) in same {
        assert_eq!(parse(a).shape(), parse(b).shape(), "{a} vs {b}");
    }
    let different = [
        ("/v1/users/{id}", "/v1/users/{id}:cancel"),
        ("/v1/users/*", "/v1/users/**"),
        ("/v1/users", "/v1/users/*"),
        ("/v1/%2A", "/v1/*"),
    ];
    for (a, b) in different {
        assert_ne!(parse(a).shape(), parse(b).shape(), "{a} vs {b}");
    }
}

#[test]
fn matches_single_variable_templates() {
    check_matches(&[
        ("/v1/users/{id}", "/v1/users/42", Some(&["42"])),
        ("/v1/users/{id}", "/v1/users/42/x", None),
        ("/v1/users/{id}", "/v1/users", None),
        ("/v1/users/{id}", "/v1/groups/42", None),
        ("/v1/users/{user.id}", "/v1/users/7", Some(&["7"])),
        ("/v1/{a}/{b}", "/v1/x/y", Some(&["x", "y"])),
        ("/v1/users", "/v1/users", Some(&[])),
        ("/", "/", Some(&[])),
        ("/", "/v1", None),
        ("/v1/users", "v1/users", None),
        ("/v1/users", "*", None),
        ("/v1/users", "", None),
    ]);
}

#[test]
fn matches_multi_segment_variables_and_double_wildcard() {
    check_matches(&[
        (
            "/v1/{name=shelves/*/books/*}",
            "/v1/shelves/1/books/2",
            Some(&["shelves/1/books/2"]),
        ),
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books", None),
        (
            "/v1/{name=shelves/*/books/*}",
            "/v1/shelves/1/notes/2",
            None,
        ),
        (
            "/v1/{name=messages/**}",
            "/v1/messages/a/b/c",
            Some(&["messages/a/b/c"]),
        ),
        (
            "/v1/{name=messages/**}",
            "/v1/messages",
            Some(&["messages"]),
        ),
        ("/v1/{name=messages/**}", "/v1/other/a", None),
        ("/**", "/", Some(&[])),
        ("/**", "/a/b/c", Some(&[])),
        ("/{path=**}", "/", Some(&[""])),
        ("/{path=**}", "/a/b", Some(&["a/b"])),
        ("/v1/{rest=**}", "/v1", Some(&[""])),
        ("/v1/*/x/**", "/v1/a/x", Some(&[])),
        ("/v1/{a}/{b=**}", "/v1/a/b/c", Some(&["a", "b/c"])),
        ("/v1/{x=lit}", "/v1/lit", Some(&["lit"])),
        ("/v1/{x=lit}", "/v1/other", None),
    ]);
}

#[test]
fn matches_custom_verbs_only_when_the_template_has_one() {
    check_matches(&[
        (
            "/v1/orders/{id}:cancel",
            "/v1/orders/7:cancel",
            Some(&["7"]),
        ),
        ("/v1/orders/{id}:cancel", "/v1/orders/7", None),
        ("/v1/orders/{id}:cancel", "/v1/orders/7:refund", None),
        (
            "/v1/orders/{id}:cancel",
            "/v1/orders/a:b:cancel",
            Some(&["a:b"]),
        ),
        (
            "/v1/orders/{id}:cancel",
            "/v1/orders/7:canc%65l",
            Some(&["7"]),
        ),
        ("/v1/orders/{id}:cancel", "/v1/orders/7%3Acancel", None),
        ("/v1/orders/{id}:cancel", "/v1/orders/:cancel", None),
        ("/v1/users:batchGet", "/v1/users:batchGet", Some(&[])),
        ("/v1/users:batchGet", "/v1/users", None),
        ("/v1/users:batchGet", "/v1/users/x:batchGet", None),
        ("/v1/{name=**}:undelete", "/v1/a/b:undelete", Some(&["a/b"])),
        ("/v1/{name=**}:undelete", "/v1:undelete", Some(&[""])),
        ("/v1/users/{id}", "/v1/users/a:b", Some(&["a:b"])),
        ("/v1/users/{id}", "/v1/users/7:cancel", Some(&["7:cancel"])),
        ("/v1/{a}/b", "/v1/x:y/b", Some(&["x:y"])),
    ]);
}

#[test]
fn decodes_single_segment_values_fully_and_multi_segment_values_except_slash() {
    check_matches(&[
        ("/v1/users/{id}", "/v1/users/a%2Fb", Some(&["a/b"])),
        ("/v1/users/{id}", "/v1/users/a%2fb", Some(&["a/b"])),
        ("/v1/users/{id}", "/v1/users/a%20b", Some(&["a b"])),
        (
            "/v1/users/{id}",
            "/v1/users/caf%C3%A9",
            Some(&["caf\u{e9}"]),
        ),
        ("/v1/users/{id}", "/v1/users/a+b", Some(&["a+b"])),
        ("/v1/{name=**}", "/v1/a%2Fb/c", Some(&["a%2Fb/c"])),
        ("/v1/{name=**}", "/v1/a%2fb/c", Some(&["a%2Fb/c"])),
        ("/v1/{name=**}", "/v1/a%20b/c%3Fd", Some(&["a b/c?d"])),
        (
            "/v1/{name=shelves/*}",
            "/v1/shelves/x%2Fy",
            Some(&["shelves/x%2Fy"]),
        ),
        (
            "/v1/{name=shelves/*}",
            "/v1/shelv%65s/1",
            Some(&["shelves/1"]),
        ),
        ("/v1/{x=lit}", "/v1/l%69t", Some(&["lit"])),
    ]);
}

#[test]
fn literals_compare_against_the_decoded_segment_without_splitting_on_escaped_slash() {
    check_matches(&[
        ("/v1/users", "/v1/us%65rs", Some(&[])),
        ("/v1/users", "/v1/US%65RS", None),
        ("/v1/a%20b", "/v1/a%20b", Some(&[])),
        ("/v1/a/b", "/v1/a%2Fb", None),
        ("/v1/{x}/b", "/v1/a%2Fb", None),
        ("/v1/a%2Fb", "/v1/a%2fb", Some(&[])),
    ]);
}

#[test]
fn empty_segments_never_match_so_trailing_slashes_do_not_match() {
    check_matches(&[
        ("/v1/users/{id}", "/v1/users/", None),
        ("/v1/users", "/v1/users/", None),
        ("/v1/users/{id}", "/v1//users/1", None),
        ("/v1/{a}/b", "/v1//b", None),
        ("/v1/**", "/v1/a/", None),
        ("/v1/**", "/v1/a//b", None),
        ("/v1/**", "/v1/", None),
        ("/**", "//", None),
    ]);
}

#[test]
fn invalid_request_paths_are_errors_not_misses() {
    let cases = [
        (
            "/v1/users/{id}",
            "/v1/users/a%2",
            PathError::InvalidPercentEncoding { position: 11 },
        ),
        (
            "/v1/users/{id}",
            "/v1/users/%zz",
            PathError::InvalidPercentEncoding { position: 10 },
        ),
        (
            "/v1/users/{id}",
            "/v1/%/7",
            PathError::InvalidPercentEncoding { position: 4 },
        ),
        // Escapes are validated before matching, so a miss cannot hide a malformed path.
        (
            "/v2/users",
            "/v1/us%zzers",
            PathError::InvalidPercentEncoding { position: 6 },
        ),
        (
            "/v1/users/{user.id}",
            "/v1/users/%FF",
            PathError::InvalidUtf8 {
                variable: "user.id".into(),
            },
        ),
        (
            "/v1/{name=**}",
            "/v1/a/%C3",
            PathError::InvalidUtf8 {
                variable: "name".into(),
            },
        ),
    ];
    for (template, path, expected) in cases {
        let err = parse(template).matches(path).expect_err(path);
        assert_eq!(err, expected, "{path}");
        let dyn_err: &dyn std::error::Error = &err;
        assert!(!dyn_err.to_string().is_empty());
    }
    // Non-UTF-8 in a segment that is not captured simply fails to equal the literal.
    check_matches(&[
        ("/v1/users", "/v1/%FF", None),
        ("/v1/*", "/v1/%FF", Some(&[])),
    ]);
}

#[test]
fn path_error_messages_explain_the_problem() {
    let invalid = PathError::InvalidPercentEncoding { position: 3 };
    assert_eq!(
        invalid.to_string(),
        "invalid percent-encoding at byte 3 of the request path"
    );
    let utf8 = PathError::InvalidUtf8 {
        variable: "a.b".into(),
    };
    assert_eq!(
        utf8.to_string(),
        "path variable `a.b` is not valid UTF-8 once percent-decoded"
    );
}

#[test]
fn from_str_parses_like_parse() {
    let template: PathTemplate = "/v1/{id}".parse().unwrap();
    assert_eq!(template, parse("/v1/{id}"));
    assert!("v1".parse::<PathTemplate>().is_err());
}
