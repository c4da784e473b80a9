//! The inventory service: reservations until sold out.

use super::*;

#[tokio::test]
async fn inventory_reserves_until_sold_out() {
    let server = start().await;
    let mut client = inventory(&server).await;

    let a1 = client
        .get_stock(GetStockRequest { sku: "A-1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((a1.available, a1.reserved), (100, 0));

    let reservation = client
        .reserve_stock(ReserveStockRequest {
            sku: "A-1".into(),
            qty: 30,
            order_id: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reservation.reservation_id, "r-1");
    let stock = reservation.stock.unwrap();
    assert_eq!((stock.available, stock.reserved), (70, 30));

    let too_many = client
        .reserve_stock(ReserveStockRequest {
            sku: "A-1".into(),
            qty: 71,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::FailedPrecondition);
    assert_eq!(
        find_detail::<PreconditionFailure>(&too_many)
            .unwrap()
            .violations[0]
            .subject,
        "skus/A-1"
    );

    let sold_out = client
        .reserve_stock(ReserveStockRequest {
            sku: "B-1".into(),
            qty: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sold_out.code(), Code::FailedPrecondition);

    let zero = client
        .reserve_stock(ReserveStockRequest {
            sku: "A-1".into(),
            qty: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&zero), ["qty"]);

    let unknown = client
        .get_stock(GetStockRequest { sku: "Z-1".into() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(
        find_detail::<ErrorInfo>(&unknown).unwrap().reason,
        "SKU_NOT_FOUND"
    );
}
