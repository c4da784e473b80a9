//! The one way Switchyard connects to Redis (shared rate limits,
//! idempotency keys, the gateway's Redis Streams sink and inbound webhook
//! dedupe): a `ConnectionManager` made lazily, so the gateway starts while
//! Redis is down and reconnects after, with `timeout` on connecting and on
//! each response, and one retry.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A lazily connecting manager for `client`.
pub fn lazy_manager(
    client: redis::Client,
    timeout: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config)
}
