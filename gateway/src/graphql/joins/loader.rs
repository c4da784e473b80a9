//! The per-request loader of each join: de-duplicates keys and batches the
//! keys sibling fields ask for (see the [`super`] module docs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Join, Outcome};
use crate::graphql::call::RequestHeaders;

/// Keys remembered per join and request, beyond which results are fetched
/// again rather than kept.
pub const MAX_REMEMBERED: usize = 10_000;

/// Per-request state of the GraphQL executor, in the request data. Clones
/// share it (a subscription keeps a handle to renew it per event).
#[derive(Clone)]
pub struct RequestState {
    inner: Arc<Mutex<StateInner>>,
}

struct StateInner {
    started: Instant,
    loaders: HashMap<usize, Arc<Loader>>,
}

/// One join's loader within one request.
#[derive(Default)]
pub(super) struct Loader {
    state: Mutex<LoaderState>,
}

#[derive(Default)]
struct LoaderState {
    /// Keys waiting for the next batch.
    queued: Vec<String>,
    /// Who waits for each key queued or in flight.
    waiting: HashMap<String, Vec<oneshot::Sender<Outcome>>>,
    /// Keys already fetched in this request.
    done: HashMap<String, Outcome>,
}

// === impl RequestState ===

impl RequestState {
    pub fn new() -> RequestState {
        RequestState {
            inner: Arc::new(Mutex::new(StateInner {
                started: Instant::now(),
                loaders: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the request started: upstream calls get what remains of
    /// `graphql.timeout` from here.
    pub fn started(&self) -> Instant {
        self.lock().started
    }

    /// Starts afresh: each event of a subscription is resolved as a request
    /// of its own (its own deadline, nothing remembered from the last one).
    pub fn renew(&self) {
        let mut inner = self.lock();
        inner.started = Instant::now();
        inner.loaders.clear();
    }

    pub(super) fn loader(&self, join: usize) -> Arc<Loader> {
        self.lock().loaders.entry(join).or_default().clone()
    }
}

impl Default for RequestState {
    fn default() -> Self {
        RequestState::new()
    }
}

// === impl Loader ===

impl Loader {
    /// The outcome for `key`, batched with the keys its siblings ask for.
    pub(super) async fn load(
        &self,
        join: &Join,
        key: String,
        headers: Option<&RequestHeaders>,
        started: Instant,
    ) -> Outcome {
        let (rx, leader) = {
            let mut state = self.lock();
            if let Some(done) = state.done.get(&key) {
                return done.clone();
            }
            let (tx, rx) = oneshot::channel();
            let leader = state.queued.is_empty();
            match state.waiting.get_mut(&key) {
                Some(waiters) => waiters.push(tx),
                None => {
                    state.waiting.insert(key.clone(), vec![tx]);
                    state.queued.push(key);
                }
            }
            (rx, leader && !state.queued.is_empty())
        };
        if leader {
            // Let the sibling fields polled after this one queue their keys.
            tokio::task::yield_now().await;
            let keys = std::mem::take(&mut self.lock().queued);
            let outcomes = join.fetch(keys, headers, started).await;
            let mut state = self.lock();
            for (key, outcome) in outcomes {
                for tx in state.waiting.remove(&key).unwrap_or_default() {
                    let _ = tx.send(outcome.clone());
                }
                if state.done.len() < MAX_REMEMBERED {
                    state.done.insert(key, outcome);
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(async_graphql::Error::new(
                "the batch this field waited for was cancelled",
            ))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoaderState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
