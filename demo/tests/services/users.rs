//! The users service: seed data, pagination and filtering, create/update/batch-get.

use super::*;

#[tokio::test]
async fn get_user_returns_seed_data_and_rich_errors() {
    let server = start().await;
    let mut client = users(&server).await;

    let ada = client
        .get_user(GetUserRequest {
            id: "1".into(),
            read_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ada.name, "Ada Lovelace");
    assert_eq!(ada.email, "ada@example.com");
    assert_eq!(ada.role(), Role::Admin);
    // 2024-01-01T00:00:00Z + 1h
    assert_eq!(ada.create_time.unwrap().seconds, 1_704_070_800);

    let grace = client
        .get_user(GetUserRequest {
            id: "2".into(),
            read_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (grace.name.as_str(), grace.role()),
        ("Grace Hopper", Role::Customer)
    );

    let missing = client
        .get_user(GetUserRequest {
            id: "99".into(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "user \"99\" not found");
    let rich = rich_status(&missing).unwrap();
    assert_eq!(rich.code, Code::NotFound as i32);
    assert_eq!(
        rich.details[0].type_url,
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
    let info = ErrorInfo::decode(rich.details[0].value.as_slice()).unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("USER_NOT_FOUND", "users.demo")
    );
    assert_eq!(info.metadata["id"], "99");

    // "01" must not alias user "1".
    let aliased = client
        .get_user(GetUserRequest {
            id: "01".into(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(aliased.code(), Code::NotFound);

    let empty = client
        .get_user(GetUserRequest {
            id: String::new(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&empty), ["id"]);
}

#[tokio::test]
async fn list_users_pages_and_filters() {
    let server = start().await;
    let mut client = users(&server).await;

    let first = client
        .list_users(ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.users.len(), 10);
    assert_eq!(first.users[0].id, "1");
    assert!(!first.next_page_token.is_empty());

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_users(ListUsersRequest {
                page_size: 7,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.users.iter().map(|u| u.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (1..=20).map(|n| n.to_string()).collect();
    assert_eq!(seen, expected);

    let admins = client
        .list_users(ListUsersRequest {
            role: Role::Admin as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_users(&admins.users), ["1"]);
    assert!(admins.next_page_token.is_empty());

    let bad = client
        .list_users(ListUsersRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&bad), ["page_token"]);
}

#[tokio::test]
async fn create_update_and_batch_get_users() {
    let server = start().await;
    let mut client = users(&server).await;

    let created = client
        .create_user(CreateUserRequest {
            user: Some(User {
                id: "ignored".into(),
                name: "Hedy Lamarr".into(),
                email: "hedy@example.com".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "21");
    assert_eq!(created.role(), Role::Customer);
    assert!(created.create_time.is_some());

    let invalid = client
        .create_user(CreateUserRequest {
            user: Some(User {
                name: "  ".into(),
                email: "nope".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&invalid), ["user.name", "user.email"]);

    // With a mask only the named fields change, even if others are set.
    let masked = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "21".into(),
                name: "Not Applied".into(),
                email: "hedy.lamarr@example.com".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["email".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(masked.name, "Hedy Lamarr");
    assert_eq!(masked.email, "hedy.lamarr@example.com");

    // Without a mask every set field changes.
    let unmasked = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "21".into(),
                role: Role::Admin as i32,
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unmasked.role(), Role::Admin);
    assert_eq!(unmasked.email, "hedy.lamarr@example.com");

    let immutable = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "21".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["create_time".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(immutable.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&immutable), ["update_mask.paths[0]"]);

    let missing = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "404".into(),
                name: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let batch = client
        .batch_get_users(BatchGetUsersRequest {
            ids: vec!["3".into(), "99".into(), "21".into(), "1".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_users(&batch.users), ["3", "21", "1"]);
}

#[tokio::test]
async fn get_user_returns_only_the_read_mask_fields_and_refuses_unknown_paths() {
    let server = start().await;
    let mut client = users(&server).await;
    let mask = |paths: &[&str]| {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        })
    };
    let ada = client
        .get_user(GetUserRequest {
            id: "1".into(),
            read_mask: mask(&["name", "create_time"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ada.name, "Ada Lovelace");
    assert!(ada.create_time.is_some());
    assert_eq!((ada.id.as_str(), ada.email.as_str()), ("", ""));
    assert_eq!(server.last_read_mask(), ["name", "create_time"]);
    let err = client
        .get_user(GetUserRequest {
            id: "1".into(),
            read_mask: mask(&["password"]),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}
