use super::*;

fn router(templates: &[&'static str]) -> PathRouter<&'static str> {
    let mut builder = PathRouterBuilder::new();
    for &text in templates {
        let template = PathTemplate::parse(text).unwrap_or_else(|e| panic!("{e}"));
        builder
            .insert(template, text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    builder.build()
}

/// Template text that must win, and its captures.
type Expected<'a> = Option<(&'a str, &'a [&'a str])>;

/// Each case: path, then `Some((template that must win, captures))` or `None` for no match.
fn check_routes(router: &PathRouter<&str>, cases: &[(&str, Expected)]) {
    for &(path, expected) in cases {
        let got = router.at(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let got = got.map(|m| {
            assert_eq!(
                *m.value,
                m.template.as_str(),
                "value belongs to its template"
            );
            (m.template.as_str().to_owned(), m.captures)
        });
        let expected = expected.map(|(template, captures)| {
            let captures = captures.iter().map(|c| c.to_string()).collect::<Vec<_>>();
            (template.to_owned(), captures)
        });
        assert_eq!(got, expected, "path {path}");
    }
}

#[test]
fn routes_each_path_to_its_template_with_captures() {
    let router = router(&[
        "/v1/users/{id}",
        "/v1/{name=shelves/*/books/*}",
        "/v1/{name=messages/**}",
        "/v1/groups/{group.id}/members",
        "/v1/orders/{id}:cancel",
        "/",
    ]);
    check_routes(
        &router,
        &[
            ("/v1/users/42", Some(("/v1/users/{id}", &["42"]))),
            (
                "/v1/shelves/1/books/2",
                Some(("/v1/{name=shelves/*/books/*}", &["shelves/1/books/2"])),
            ),
            (
                "/v1/messages/a/b",
                Some(("/v1/{name=messages/**}", &["messages/a/b"])),
            ),
            (
                "/v1/messages",
                Some(("/v1/{name=messages/**}", &["messages"])),
            ),
            (
                "/v1/groups/g1/members",
                Some(("/v1/groups/{group.id}/members", &["g1"])),
            ),
            (
                "/v1/orders/7:cancel",
                Some(("/v1/orders/{id}:cancel", &["7"])),
            ),
            ("/", Some(("/", &[]))),
            ("/v1/orders/7", None),
            ("/v1/shelves/1/books", None),
            ("/v2/users/42", None),
            ("v1/users/42", None),
            ("", None),
        ],
    );
}

#[test]
fn literal_beats_wildcard_beats_double_wildcard_segment_by_segment() {
    let templates = [
        "/**",
        "/v1/{name=**}",
        "/v1/*/{b}",
        "/v1/users/{id}",
        "/v1/users/me",
        "/v1/*/me",
    ];
    check_routes(
        &router(&templates),
        &[
            ("/v1/users/me", Some(("/v1/users/me", &[]))),
            ("/v1/users/7", Some(("/v1/users/{id}", &["7"]))),
            ("/v1/groups/me", Some(("/v1/*/me", &[]))),
            ("/v1/groups/7", Some(("/v1/*/{b}", &["7"]))),
            ("/v1/a/b/c", Some(("/v1/{name=**}", &["a/b/c"]))),
            ("/v1/a", Some(("/v1/{name=**}", &["a"]))),
            ("/v2/users/me", Some(("/**", &[]))),
            ("/", Some(("/**", &[]))),
        ],
    );
}

#[test]
fn precedence_does_not_depend_on_insertion_order() {
    let mut templates = vec![
        "/**",
        "/v1/{name=**}",
        "/v1/*/{b}",
        "/v1/users/{id}",
        "/v1/users/me",
    ];
    let paths = ["/v1/users/me", "/v1/users/7", "/v1/x/7", "/v1/a/b/c", "/v2"];
    let expected: Vec<_> = paths
        .iter()
        .map(|p| router(&templates).at(p).unwrap().unwrap().value.to_owned())
        .collect();
    templates.reverse();
    let reversed = router(&templates);
    for (path, want) in paths.iter().zip(expected) {
        assert_eq!(*reversed.at(path).unwrap().unwrap().value, want, "{path}");
    }
}

#[test]
fn a_template_ending_at_the_path_end_beats_double_wildcard_matching_nothing() {
    let router = router(&["/v1/{rest=**}", "/v1/x/**", "/v1/x"]);
    check_routes(
        &router,
        &[
            ("/v1/x", Some(("/v1/x", &[]))),
            ("/v1/x/y", Some(("/v1/x/**", &[]))),
            ("/v1", Some(("/v1/{rest=**}", &[""]))),
        ],
    );
}

#[test]
fn backtracks_out_of_a_literal_branch_that_dead_ends() {
    let router = router(&["/v1/users/special/x", "/v1/{a}/{b}/y", "/v1/users/{id}/**"]);
    check_routes(
        &router,
        &[
            ("/v1/users/special/x", Some(("/v1/users/special/x", &[]))),
            (
                "/v1/users/special/z",
                Some(("/v1/users/{id}/**", &["special"])),
            ),
            (
                "/v1/groups/special/y",
                Some(("/v1/{a}/{b}/y", &["groups", "special"])),
            ),
        ],
    );
}

#[test]
fn verb_on_literal_template_routes_next_to_variable_template() {
    let router = router(&["/v1/users/{id}", "/v1/users:batchGet", "/v1/users"]);
    check_routes(
        &router,
        &[
            ("/v1/users:batchGet", Some(("/v1/users:batchGet", &[]))),
            ("/v1/users", Some(("/v1/users", &[]))),
            ("/v1/users/7", Some(("/v1/users/{id}", &["7"]))),
            (
                "/v1/users/7:batchGet",
                Some(("/v1/users/{id}", &["7:batchGet"])),
            ),
            ("/v1/users:other", None),
        ],
    );
}

#[test]
fn matching_verb_beats_templates_without_verb_and_unknown_verbs_stay_in_the_value() {
    let router = router(&[
        "/v1/users/{id}",
        "/v1/users/{id}:cancel",
        "/v1/projects/{p}/topics/{t}",
        "/v1/{resource=**}:setIamPolicy",
    ]);
    check_routes(
        &router,
        &[
            (
                "/v1/users/7:cancel",
                Some(("/v1/users/{id}:cancel", &["7"])),
            ),
            ("/v1/users/7", Some(("/v1/users/{id}", &["7"]))),
            ("/v1/users/a:b", Some(("/v1/users/{id}", &["a:b"]))),
            (
                "/v1/users/7%3Acancel",
                Some(("/v1/users/{id}", &["7:cancel"])),
            ),
            (
                "/v1/users/7:canc%65l",
                Some(("/v1/users/{id}:cancel", &["7"])),
            ),
            (
                "/v1/projects/p/topics/t:setIamPolicy",
                Some(("/v1/{resource=**}:setIamPolicy", &["projects/p/topics/t"])),
            ),
            (
                "/v1/projects/p/topics/t",
                Some(("/v1/projects/{p}/topics/{t}", &["p", "t"])),
            ),
            // The verb split would leave an empty segment, so only the verb-less reading applies.
            ("/v1/users/:cancel", Some(("/v1/users/{id}", &[":cancel"]))),
        ],
    );
}

#[test]
fn empty_segments_and_trailing_slashes_match_nothing() {
    let router = router(&["/v1/users/{id}", "/v1/users", "/v1/{rest=**}"]);
    check_routes(
        &router,
        &[
            ("/v1/users/", None),
            ("/v1//users", None),
            ("/v1/users//7", None),
            ("/v1/", None),
            ("/v1/users/7", Some(("/v1/users/{id}", &["7"]))),
        ],
    );
}

#[test]
fn literals_are_found_by_decoded_segment_and_escaped_slash_stays_inside_a_segment() {
    let router = router(&["/v1/users/{id}", "/v1/a%20b", "/v1/{name=files/**}"]);
    check_routes(
        &router,
        &[
            ("/v1/us%65rs/7", Some(("/v1/users/{id}", &["7"]))),
            ("/v1/users/a%2Fb", Some(("/v1/users/{id}", &["a/b"]))),
            ("/v1/users%2F7", None),
            ("/v1/a%20b", Some(("/v1/a%20b", &[]))),
            (
                "/v1/files/a%2Fb/c%20d",
                Some(("/v1/{name=files/**}", &["files/a%2Fb/c d"])),
            ),
        ],
    );
}

#[test]
fn malformed_paths_are_errors_distinct_from_no_match() {
    let router = router(&["/v1/users/{id}", "/v1/{name=**}:x"]);
    let cases = [
        (
            "/v1/users/%4",
            PathError::InvalidPercentEncoding { position: 10 },
        ),
        (
            "/nothing/%zz",
            PathError::InvalidPercentEncoding { position: 9 },
        ),
        (
            "/v1/users/%C3%28",
            PathError::InvalidUtf8 {
                variable: "id".into(),
            },
        ),
        (
            "/v1/a/%FF:x",
            PathError::InvalidUtf8 {
                variable: "name".into(),
            },
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(router.at(path).err(), Some(expected), "{path}");
    }
    assert!(router.at("/nothing/here").unwrap().is_none());
}

#[test]
fn conflicting_templates_are_rejected_with_both_texts() {
    let conflicts = [
        ("/v1/users/{id}", "/v1/users/{name}", "/v1/users/7"),
        ("/v1/users/{id}", "/v1/users/*", "/v1/users/7"),
        (
            "/v1/{name=shelves/*}",
            "/v1/shelves/{shelf}",
            "/v1/shelves/1",
        ),
        ("/v1/us%65rs", "/v1/users", "/v1/users"),
        ("/{a=**}", "/**", "/x/y"),
        ("/v1/{id}:cancel", "/v1/{name}:cancel", "/v1/7:cancel"),
    ];
    for (first, second, path) in conflicts {
        let mut builder = PathRouterBuilder::new();
        builder
            .insert(PathTemplate::parse(first).unwrap(), 1)
            .unwrap();
        let err = builder
            .insert(PathTemplate::parse(second).unwrap(), 2)
            .unwrap_err();
        let expected = RouterError::Conflict {
            existing: first.into(),
            new: second.into(),
        };
        assert_eq!(err, expected);
        let message = err.to_string();
        assert!(
            message.contains(first) && message.contains(second),
            "{message}"
        );
        let router = builder.build();
        assert_eq!(
            router.len(),
            1,
            "a rejected template leaves the router as it was"
        );
        assert_eq!(
            router.at(path).unwrap().map(|m| *m.value),
            Some(1),
            "{path}"
        );
    }
}

#[test]
fn templates_differing_in_verb_or_wildcard_kind_do_not_conflict() {
    let templates = [
        "/v1/users/{id}",
        "/v1/users/{id}:cancel",
        "/v1/users/{id}:refund",
        "/v1/users/{name=**}",
        "/v1/users",
        "/v1/users:batchGet",
        "/v1/%2A",
        "/v1/*",
    ];
    assert_eq!(router(&templates).len(), templates.len());
}

#[test]
fn router_agrees_with_each_template_matched_alone() {
    let templates = [
        "/",
        "/**",
        "/v1/users/{id}",
        "/v1/{name=shelves/*/books/*}",
        "/v1/{name=messages/**}",
        "/v1/orders/{id}:cancel",
        "/v1/users:batchGet",
        "/v1/{a}/{b=**}:x",
        "/v1/us%65rs/{u.id}/x",
    ];
    let paths = [
        "/",
        "/v1",
        "/v1/users/7",
        "/v1/users/",
        "/v1/shelves/1/books/2",
        "/v1/messages",
        "/v1/messages/a%2Fb/c",
        "/v1/orders/7:cancel",
        "/v1/orders/7",
        "/v1/users:batchGet",
        "/v1/a:x",
        "/v1/a/b/c:x",
        "/v1/a/b/c:y",
        "/v1/users/%20/x",
        "/v1/users/a:b",
        "//",
        "/v1/users/%FF",
        "/v1/users/%F",
        "x",
    ];
    for template in templates {
        let single = router(&[template]);
        let parsed = PathTemplate::parse(template).unwrap();
        for path in paths {
            let via_router = single.at(path).map(|m| m.map(|m| m.captures));
            assert_eq!(via_router, parsed.matches(path), "{template} on {path}");
        }
    }
}

#[test]
fn len_is_empty_and_iter_follow_insertion_order() {
    let empty: PathRouter<()> = PathRouterBuilder::default().build();
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    assert!(empty.at("/anything").unwrap().is_none());

    let templates = ["/b/{x}", "/a", "/c:verb"];
    let router = router(&templates);
    assert!(!router.is_empty());
    assert_eq!(router.len(), 3);
    let listed: Vec<_> = router.iter().map(|(t, v)| (t.as_str(), *v)).collect();
    assert_eq!(
        listed,
        [("/b/{x}", "/b/{x}"), ("/a", "/a"), ("/c:verb", "/c:verb")]
    );
}

#[test]
fn router_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PathRouter<String>>();
    assert_send_sync::<PathRouterBuilder<String>>();
}
