use super::*;

fn demo_sources() -> ProtoSources {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../proto"));
    ProtoSources {
        sources: vec![root.join("demo")],
        includes: vec![root],
    }
}

#[test]
fn demo_protos_compile_with_http_annotations_kept() {
    let pool = load(&demo_sources()).unwrap();
    let service = pool
        .get_service_by_name("demo.users.v1.UserService")
        .unwrap();
    let get_user = service.methods().find(|m| m.name() == "GetUser").unwrap();
    let http = pool.get_extension_by_name("google.api.http").unwrap();
    let options = get_user.options();
    assert!(options.has_extension(&http), "google.api.http dropped");
    assert!(pool.get_message_by_name("google.rpc.ErrorInfo").is_some());
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sy-proto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.proto"),
        "syntax = \"proto3\";\nmessage A {\n  string x = ;\n}\n",
    )
    .unwrap();
    let err = load(&ProtoSources {
        sources: vec![dir.clone()],
        includes: vec![],
    })
    .unwrap_err();
    let text = err.to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(text.starts_with("bad.proto:3:"), "{text}");
}

#[test]
fn a_missing_source_is_reported() {
    let err = load(&ProtoSources {
        sources: vec!["/nonexistent/x.proto".into()],
        includes: vec![],
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/x.proto: no such file or directory"
    );
}
