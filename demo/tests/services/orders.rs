//! The orders service: pricing, listing, cancelling and the order watch stream.

use super::*;

#[tokio::test]
async fn orders_are_priced_listed_and_cancelled() {
    let server = start().await;
    let mut client = orders(&server).await;

    let first = client
        .get_order(GetOrderRequest { id: "1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.user_id, "1");
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.total_cents, 2 * 1250 + 4999);
    assert_eq!(first.status(), OrderStatus::Placed);

    let created = client
        .create_order(CreateOrderRequest {
            user_id: "1".into(),
            items: vec![item("A-1", 3), item("B-9", 1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "11");
    assert_eq!(created.items[0].unit_price_cents, 1250);
    assert_eq!(created.total_cents, 3 * 1250 + 18999);
    assert_eq!(created.status(), OrderStatus::Placed);

    let invalid = client
        .create_order(CreateOrderRequest {
            user_id: String::new(),
            items: vec![item("A-1", 0), item("Z-9", 1)],
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&invalid),
        ["user_id", "items[0].qty", "items[1].sku"]
    );
    let no_items = client
        .create_order(CreateOrderRequest {
            user_id: "1".into(),
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&no_items), ["items"]);

    let mine = client
        .list_orders(ListOrdersRequest {
            user_id: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_orders(&mine.orders), ["11", "9", "5", "1"]);

    let all = client
        .list_orders(ListOrdersRequest {
            page_size: 4,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_orders(&all.orders), ["11", "10", "9", "8"]);
    assert_eq!(all.next_page_token, "4");

    let cancelled = client
        .cancel_order(CancelOrderRequest {
            id: "1".into(),
            reason: "changed my mind".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status(), OrderStatus::Cancelled);

    let again = client
        .cancel_order(CancelOrderRequest {
            id: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let failure = find_detail::<PreconditionFailure>(&again).unwrap();
    assert_eq!(failure.violations[0].subject, "orders/1");

    let shipped = client
        .cancel_order(CancelOrderRequest {
            id: "3".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(shipped.code(), Code::FailedPrecondition);

    let missing = client
        .get_order(GetOrderRequest { id: "77".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let info = find_detail::<ErrorInfo>(&missing).unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("ORDER_NOT_FOUND", "orders.demo")
    );
}

#[tokio::test]
async fn watch_orders_sends_snapshot_then_changes() {
    let mut server = start().await;
    let mut client = orders(&server).await;
    let mut watch = client
        .watch_orders(WatchOrdersRequest {
            user_id: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();

    let mut snapshot = Vec::new();
    for _ in 0..3 {
        snapshot.push(next(&mut watch).await.unwrap().unwrap());
    }
    assert_eq!(ids_of_orders(&snapshot), ["1", "5", "9"]);

    // Another user's order is filtered out; the next message is user 1's.
    for user_id in ["2", "1"] {
        client
            .create_order(CreateOrderRequest {
                user_id: user_id.into(),
                items: vec![item("A-2", 1)],
            })
            .await
            .unwrap();
    }
    let created = next(&mut watch).await.unwrap().unwrap();
    assert_eq!((created.id.as_str(), created.user_id.as_str()), ("12", "1"));

    client
        .cancel_order(CancelOrderRequest {
            id: "5".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let cancelled = next(&mut watch).await.unwrap().unwrap();
    assert_eq!(cancelled.id, "5");
    assert_eq!(cancelled.status(), OrderStatus::Cancelled);

    // Stopping the service must not hang on the open watch; the watch ends with UNAVAILABLE.
    tokio::time::timeout(Duration::from_secs(3), server.stop(Service::Orders))
        .await
        .expect("stop finished despite an open watch");
    let ended = next(&mut watch).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable);
}

#[tokio::test]
async fn watch_is_released_when_the_client_goes_away() {
    let server = start().await;
    let mut client = orders(&server).await;
    let mut watch = client
        .watch_orders(WatchOrdersRequest {
            user_id: "2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    next(&mut watch).await.unwrap().unwrap();
    assert_eq!(server.open_watches(), 1);

    drop(watch);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.open_watches() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "watch still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
