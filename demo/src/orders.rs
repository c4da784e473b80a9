//! `demo.orders.v1.OrderService`: orders of the demo shop, in memory, with a change stream.
//!
//! Seeded with orders "1".."10"; new orders get ids "11", "12", ... Prices come from a fixed
//! table, never from the client, so totals are predictable in tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{RwLock, broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::errors::{bad_field, bad_request, failed_precondition, not_found};
use crate::paging::Page;
use crate::pb::orders::order_service_server::OrderService;
use crate::pb::orders::{
    CancelOrderRequest, CreateOrderRequest, GetOrderRequest, LineItem, ListOrdersRequest,
    ListOrdersResponse, Order, OrderStatus, WatchOrdersRequest,
};
use crate::{canonical_id, timestamp};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
const DOMAIN: &str = "orders.demo";
/// Seed order N was placed N hours after 2024-03-01T00:00:00Z (after every seed user).
const SEED_EPOCH_SECS: i64 = 1_709_251_200;
/// Number of seeded orders.
pub const SEED_ORDERS: u64 = 10;
/// Changes buffered per watcher before it is cut off as too slow (bounded on purpose: one stuck
/// client must not grow the server's memory).
const EVENT_BUFFER: usize = 256;
/// Orders queued per watch stream while the client's HTTP/2 window is full.
const STREAM_BUFFER: usize = 16;

/// Unit price in cents of every SKU the shop sells; the same SKUs as the inventory service.
pub const PRICES: [(&str, i64); 18] = [
    ("A-1", 1250),
    ("A-2", 1500),
    ("A-3", 1750),
    ("A-4", 2000),
    ("A-5", 2250),
    ("A-6", 2500),
    ("A-7", 2750),
    ("A-8", 3000),
    ("A-9", 3250),
    ("B-1", 2999),
    ("B-2", 4999),
    ("B-3", 6999),
    ("B-4", 8999),
    ("B-5", 10999),
    ("B-6", 12999),
    ("B-7", 14999),
    ("B-8", 16999),
    ("B-9", 18999),
];

/// Unit price in cents of `sku`, if the shop sells it.
pub fn price_of(sku: &str) -> Option<i64> {
    PRICES
        .iter()
        .find_map(|(known, price)| (*known == sku).then_some(*price))
}

/// In-memory `OrderService`. Clones share the same store and change feed.
#[derive(Debug, Clone)]
pub struct InMemoryOrders {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    /// Every created or cancelled order; sent while the state's write lock is held so a
    /// watcher that subscribes under the read lock sees each change exactly once.
    events: broadcast::Sender<Order>,
    /// Bumped by [`InMemoryOrders::close_streams`]; open watch streams end when it changes.
    closing: watch::Sender<u64>,
}

#[derive(Debug)]
struct State {
    /// Keyed by numeric id, which also orders them by creation.
    orders: BTreeMap<u64, Order>,
    next_id: u64,
}

impl Default for InMemoryOrders {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryOrders {
    /// A store holding the deterministic seed orders "1".."10".
    pub fn new() -> Self {
        let orders = (1..=SEED_ORDERS).map(|id| (id, seed_order(id))).collect();
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State {
                    orders,
                    next_id: SEED_ORDERS + 1,
                }),
                events: broadcast::channel(EVENT_BUFFER).0,
                closing: watch::channel(0).0,
            }),
        }
    }

    /// Ends every open `WatchOrders` stream with UNAVAILABLE.
    ///
    /// Graceful server shutdown waits for in-flight streams, and a watch never finishes on its
    /// own, so the server calls this when asked to stop. Streams opened later are unaffected,
    /// which lets a stopped service be restarted.
    pub fn close_streams(&self) {
        self.inner
            .closing
            .send_modify(|generation| *generation += 1);
    }

    /// Number of `WatchOrders` streams still being fed.
    ///
    /// Lets tests check that a caller (e.g. the gateway) really releases upstream streams when
    /// its own client goes away. A stream is released shortly after the client disconnects,
    /// so poll rather than assert once.
    pub fn open_watches(&self) -> usize {
        self.inner.events.receiver_count()
    }
}

/// Seed order `id`: order "1" is user "1"'s A-1 x2 + B-2 x1; the rest follow a fixed pattern
/// spread over users "1".."4", with orders 3/6/9 shipped and 8 cancelled.
fn seed_order(id: u64) -> Order {
    let item = |sku: String, qty: u64| {
        let qty = i32::try_from(qty).expect("seed quantities are small");
        let unit_price_cents = price_of(&sku).expect("seed SKUs are in the price table");
        LineItem {
            sku,
            qty,
            unit_price_cents,
        }
    };
    let (user, items) = if id == 1 {
        (1, vec![item("A-1".into(), 2), item("B-2".into(), 1)])
    } else {
        let mut items = vec![item(format!("A-{}", id % 9 + 1), id % 3 + 1)];
        if id.is_multiple_of(2) {
            items.push(item(format!("B-{}", id % 9 + 1), 1));
        }
        ((id - 1) % 4 + 1, items)
    };
    let status = match id {
        8 => OrderStatus::Cancelled,
        _ if id.is_multiple_of(3) => OrderStatus::Shipped,
        _ => OrderStatus::Placed,
    };
    let hours = i64::try_from(id).expect("seed ids are small");
    Order {
        id: id.to_string(),
        user_id: user.to_string(),
        total_cents: total(&items),
        items,
        status: status as i32,
        create_time: Some(timestamp(SEED_EPOCH_SECS + hours * 3600)),
    }
}

/// Sum of qty x unit price; saturates rather than wrapping on absurd quantities.
fn total(items: &[LineItem]) -> i64 {
    items.iter().fold(0i64, |sum, item| {
        sum.saturating_add(i64::from(item.qty).saturating_mul(item.unit_price_cents))
    })
}

/// NOT_FOUND for `id`, with `ErrorInfo{reason: ORDER_NOT_FOUND, domain: orders.demo}`.
fn order_not_found(id: &str) -> Status {
    not_found(
        format!("order \"{id}\" not found"),
        "ORDER_NOT_FOUND",
        DOMAIN,
        &[("id", id)],
    )
}

/// Whether a watch for `user_id` (empty = every user) should see `order`.
fn watched(user_id: &str, order: &Order) -> bool {
    user_id.is_empty() || order.user_id == user_id
}

/// Feeds one watch stream: the snapshot, then matching changes, until the client goes away.
async fn pump(
    snapshot: Vec<Order>,
    user_id: &str,
    mut events: broadcast::Receiver<Order>,
    tx: &mpsc::Sender<Result<Order, Status>>,
) {
    for order in snapshot {
        if tx.send(Ok(order)).await.is_err() {
            return;
        }
    }
    loop {
        // Waiting on `closed()` too means an idle watch notices a departed client at once,
        // not only when the next change fails to send.
        let event = tokio::select! {
            () = tx.closed() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(order) if watched(user_id, &order) => {
                if tx.send(Ok(order)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let status = Status::aborted(format!(
                    "watch fell {missed} changes behind; open a new watch to resync"
                ));
                let _ = tx.send(Err(status)).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[tonic::async_trait]
impl OrderService for InMemoryOrders {
    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(bad_field("id", "must not be empty"));
        }
        let state = self.inner.state.read().await;
        canonical_id(&id)
            .and_then(|key| state.orders.get(&key))
            .cloned()
            .map(Response::new)
            .ok_or_else(|| order_not_found(&id))
    }

    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let req = request.into_inner();
        let mut violations = Vec::new();
        if req.user_id.is_empty() {
            violations.push(("user_id".to_owned(), "must not be empty".to_owned()));
        }
        if req.items.is_empty() {
            violations.push((
                "items".to_owned(),
                "must contain at least one item".to_owned(),
            ));
        }
        let mut items = Vec::with_capacity(req.items.len());
        for (i, item) in req.items.into_iter().enumerate() {
            if item.qty <= 0 {
                violations.push((format!("items[{i}].qty"), "must be positive".to_owned()));
            }
            match price_of(&item.sku) {
                Some(unit_price_cents) => items.push(LineItem {
                    unit_price_cents,
                    ..item
                }),
                None => violations.push((
                    format!("items[{i}].sku"),
                    format!("unknown sku \"{}\"", item.sku),
                )),
            }
        }
        if !violations.is_empty() {
            return Err(bad_request(violations));
        }

        let mut state = self.inner.state.write().await;
        let id = state.next_id;
        state.next_id += 1;
        let order = Order {
            id: id.to_string(),
            user_id: req.user_id,
            total_cents: total(&items),
            items,
            status: OrderStatus::Placed as i32,
            create_time: Some(SystemTime::now().into()),
        };
        state.orders.insert(id, order.clone());
        // No receivers is normal (nobody watching), not an error.
        let _ = self.inner.events.send(order.clone());
        Ok(Response::new(order))
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        let req = request.into_inner();
        let state = self.inner.state.read().await;
        let matching: Vec<&Order> = state
            .orders
            .values()
            .rev()
            .filter(|order| watched(&req.user_id, order))
            .collect();
        let page = Page::resolve(req.page_size, &req.page_token, matching.len())?;
        Ok(Response::new(ListOrdersResponse {
            orders: matching[page.start..page.end]
                .iter()
                .map(|order| (*order).clone())
                .collect(),
            next_page_token: page.next_token(matching.len()),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(bad_field("id", "must not be empty"));
        }
        let mut state = self.inner.state.write().await;
        let Some(order) = canonical_id(&id).and_then(|key| state.orders.get_mut(&key)) else {
            return Err(order_not_found(&id));
        };
        let subject = format!("orders/{id}");
        match OrderStatus::try_from(order.status) {
            Ok(OrderStatus::Cancelled) => {
                let message = format!("order \"{id}\" is already cancelled");
                return Err(failed_precondition(message, "STATUS", &subject));
            }
            Ok(OrderStatus::Shipped) => {
                let message = format!("order \"{id}\" has already shipped");
                return Err(failed_precondition(message, "STATUS", &subject));
            }
            _ => {}
        }
        order.status = OrderStatus::Cancelled as i32;
        let order = order.clone();
        let _ = self.inner.events.send(order.clone());
        Ok(Response::new(order))
    }

    type WatchOrdersStream = ReceiverStream<Result<Order, Status>>;

    async fn watch_orders(
        &self,
        request: Request<WatchOrdersRequest>,
    ) -> Result<Response<Self::WatchOrdersStream>, Status> {
        let user_id = request.into_inner().user_id;
        let mut closing = self.inner.closing.subscribe();
        let (snapshot, events) = {
            let state = self.inner.state.read().await;
            // Subscribing under the read lock: changes are published under the write lock, so
            // each one is either in the snapshot or in the feed, never both or neither.
            let events = self.inner.events.subscribe();
            let snapshot = state
                .orders
                .values()
                .filter(|order| watched(&user_id, order))
                .cloned()
                .collect::<Vec<_>>();
            (snapshot, events)
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            tokio::select! {
                () = pump(snapshot, &user_id, events, &tx) => {}
                // Also fires when the service is dropped (sender gone).
                _ = closing.changed() => {
                    let _ = tx.try_send(Err(Status::unavailable("orders service is shutting down")));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
