//! `demo.inventory.v1.InventoryService`: stock levels per SKU, in memory.
//!
//! SKUs "A-1".."A-9" and "B-1".."B-9" with deterministic stock: A-N has 110 - 10N available
//! 100 ... A-9: 20), B-N has 5(N - 1) (B-1 is sold out, B-9: 40).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{RwLock, mpsc};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::errors::{bad_field, bad_request, failed_precondition, not_found};
use crate::pb::inventory::inventory_service_server::InventoryService;
use crate::pb::inventory::{GetStockRequest, Reservation, ReserveStockRequest, Stock, StockTotal};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
const DOMAIN: &str = "inventory.demo";

/// In-memory `InventoryService`. Clones share the same stock.
#[derive(Debug, Clone)]
pub struct InMemoryInventory {
    state: Arc<RwLock<State>>,
}

#[derive(Debug)]
struct State {
    stock: BTreeMap<String, Stock>,
    /// Reservation ids are "r-1", "r-2", ... in the order they were granted.
    next_reservation: u64,
}

impl Default for InMemoryInventory {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryInventory {
    /// A store holding the deterministic seed stock.
    pub fn new() -> Self {
        let mut stock = BTreeMap::new();
        for n in 1..=9 {
            for (sku, available) in [
                (format!("A-{n}"), 110 - 10 * n),
                (format!("B-{n}"), 5 * (n - 1)),
            ] {
                stock.insert(
                    sku.clone(),
                    Stock {
                        sku,
                        available,
                        reserved: 0,
                    },
                );
            }
        }
        Self {
            state: Arc::new(RwLock::new(State {
                stock,
                next_reservation: 1,
            })),
        }
    }
}

/// NOT_FOUND for `sku`, with `ErrorInfo{reason: SKU_NOT_FOUND, domain: inventory.demo}`.
fn sku_not_found(sku: &str) -> Status {
    not_found(
        format!("sku \"{sku}\" not found"),
        "SKU_NOT_FOUND",
        DOMAIN,
        &[("sku", sku)],
    )
}

impl InMemoryInventory {
    /// The stock of `sku`, or NOT_FOUND.
    async fn stock_of(&self, sku: &str) -> Result<Stock, Status> {
        if sku.is_empty() {
            return Err(bad_field("sku", "must not be empty"));
        }
        let state = self.state.read().await;
        state
            .stock
            .get(sku)
            .cloned()
            .ok_or_else(|| sku_not_found(sku))
    }
}

#[tonic::async_trait]
impl InventoryService for InMemoryInventory {
    type LookupStockStream = ReceiverStream<Result<Stock, Status>>;

    async fn sum_stock(
        &self,
        request: Request<Streaming<GetStockRequest>>,
    ) -> Result<Response<StockTotal>, Status> {
        let mut skus = request.into_inner();
        let mut total = StockTotal::default();
        while let Some(next) = skus.next().await {
            let stock = self.stock_of(&next?.sku).await?;
            total.skus += 1;
            total.available = total.available.saturating_add(stock.available);
        }
        Ok(Response::new(total))
    }

    async fn lookup_stock(
        &self,
        request: Request<Streaming<GetStockRequest>>,
    ) -> Result<Response<Self::LookupStockStream>, Status> {
        let mut skus = request.into_inner();
        // One answer in flight at most: a client that stops reading stops
        // the lookups (backpressure through the channel).
        let (tx, rx) = mpsc::channel(1);
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(next) = skus.next().await {
                let answer = match next {
                    Ok(req) => this.stock_of(&req.sku).await,
                    Err(status) => Err(status),
                };
                let last = answer.is_err();
                if tx.send(answer).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_stock(
        &self,
        request: Request<GetStockRequest>,
    ) -> Result<Response<Stock>, Status> {
        let sku = request.into_inner().sku;
        self.stock_of(&sku).await.map(Response::new)
    }

    async fn reserve_stock(
        &self,
        request: Request<ReserveStockRequest>,
    ) -> Result<Response<Reservation>, Status> {
        // `order_id` is accepted so callers can pass it through, but reservations are not
        // tracked per order in this demo.
        let req = request.into_inner();
        let mut violations = Vec::new();
        if req.sku.is_empty() {
            violations.push(("sku".to_owned(), "must not be empty".to_owned()));
        }
        if req.qty <= 0 {
            violations.push(("qty".to_owned(), "must be positive".to_owned()));
        }
        if !violations.is_empty() {
            return Err(bad_request(violations));
        }

        let mut state = self.state.write().await;
        let Some(stock) = state.stock.get_mut(&req.sku) else {
            return Err(sku_not_found(&req.sku));
        };
        if stock.available < req.qty {
            let message = format!(
                "only {} of sku \"{}\" available, {} requested",
                stock.available, req.sku, req.qty
            );
            return Err(failed_precondition(
                message,
                "STOCK",
                &format!("skus/{}", req.sku),
            ));
        }
        stock.available -= req.qty;
        stock.reserved = stock.reserved.saturating_add(req.qty);
        let stock = stock.clone();
        let reservation_id = format!("r-{}", state.next_reservation);
        state.next_reservation += 1;
        Ok(Response::new(Reservation {
            reservation_id,
            stock: Some(stock),
        }))
    }
}
