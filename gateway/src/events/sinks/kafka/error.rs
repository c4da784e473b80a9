//! Sorting Kafka failures into retry-worthy or not.
//!
//! Permanent (the event is dead-lettered): the broker refuses the record
//! itself — larger than the topic's or broker's limit (`MESSAGE_TOO_LARGE`,
//! `RECORD_LIST_TOO_LARGE`), an invalid topic name
//! (`INVALID_TOPIC_EXCEPTION`), or a record the broker's rules reject
//! (`INVALID_RECORD`, e.g. a compacted topic's). Sending the same bytes
//! again cannot change the answer.
//!
//! Transient (retried until it works): everything else — no broker, a
//! broken connection, timeouts, leader elections and moves
//! (`NOT_LEADER_OR_FOLLOWER`, `LEADER_NOT_AVAILABLE`), too few in-sync
//! replicas for `acks=all` (`NOT_ENOUGH_REPLICAS…`), an unknown topic (it may
//! be created), and authorization or broker configuration errors, which an
//! operator can fix without losing the event.

use std::error::Error as _;

use rskafka::client::error::{Error, ProtocolError};

use super::super::SinkError;

/// Whether retrying the request that failed with `err` cannot help.
pub fn is_permanent(err: &Error) -> bool {
    matches!(
        protocol_error(err),
        Some(
            ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidTopicException
                | ProtocolError::InvalidRecord
        )
    )
}

/// Whether `err` says the topic exists already (creating it).
pub fn is_topic_exists(err: &Error) -> bool {
    protocol_error(err) == Some(ProtocolError::TopicAlreadyExists)
}

/// The broker's error code in `err`: its own, or the last one the client
/// retried before giving up (`RetryFailed` wraps it).
fn protocol_error(err: &Error) -> Option<ProtocolError> {
    match err {
        Error::ServerError { protocol_error, .. } => Some(*protocol_error),
        Error::RetryFailed(retry) => retry
            .source()
            .and_then(|source| source.downcast_ref::<Error>())
            .and_then(protocol_error),
        _ => None,
    }
}

/// `err` as a [`SinkError`], `what` saying what failed (`produce to
/// "orders"…`).
pub fn classify(what: &str, err: &Error) -> SinkError {
    let message = format!("{what}: {}", describe(err));
    if is_permanent(err) {
        SinkError::Permanent(message)
    } else {
        SinkError::Transient(message)
    }
}

/// A one-line account of `err`: rskafka's `Display` of a server error spells
/// out the request context; the error code is what an operator needs.
fn describe(err: &Error) -> String {
    match err {
        Error::ServerError {
            protocol_error,
            error_message,
            ..
        } => match error_message {
            Some(message) => format!("broker error {protocol_error}: {message}"),
            None => format!("broker error {protocol_error}"),
        },
        Error::RetryFailed(retry) => match retry.source().and_then(|s| s.downcast_ref::<Error>()) {
            Some(last) => format!("gave up retrying: {}", describe(last)),
            None => err.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rskafka::BackoffError;
    use rskafka::client::error::RequestContext;

    use super::*;

    fn server(protocol_error: ProtocolError) -> Error {
        Error::ServerError {
            protocol_error,
            error_message: None,
            request: RequestContext::Partition("orders".to_owned(), 0),
            response: None,
            is_virtual: false,
        }
    }

    fn gave_up(last: Error) -> Error {
        Error::RetryFailed(BackoffError::DeadlineExceded {
            deadline: Duration::from_secs(1),
            source: Box::new(last),
        })
    }

    #[test]
    fn a_record_the_broker_can_never_take_is_permanent() {
        for code in [
            ProtocolError::MessageTooLarge,
            ProtocolError::RecordListTooLarge,
            ProtocolError::InvalidTopicException,
            ProtocolError::InvalidRecord,
        ] {
            let err = classify("produce", &server(code));
            assert!(matches!(err, SinkError::Permanent(_)), "{code:?}: {err:?}");
        }
    }

    #[test]
    fn outages_timeouts_and_leader_moves_are_transient() {
        let io = || {
            Error::Request(rskafka::client::error::RequestError::IO(
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            ))
        };
        let mut errors = vec![io(), gave_up(io()), Error::Timeout];
        for code in [
            ProtocolError::NotLeaderOrFollower,
            ProtocolError::LeaderNotAvailable,
            ProtocolError::BrokerNotAvailable,
            ProtocolError::RequestTimedOut,
            ProtocolError::NetworkException,
            ProtocolError::NotEnoughReplicas,
            ProtocolError::NotEnoughReplicasAfterAppend,
            ProtocolError::UnknownTopicOrPartition,
            ProtocolError::TopicAuthorizationFailed,
            ProtocolError::KafkaStorageError,
            ProtocolError::CorruptMessage,
            ProtocolError::Unknown(-42),
        ] {
            errors.push(server(code));
        }
        errors.push(gave_up(server(ProtocolError::NotLeaderOrFollower)));
        for err in errors {
            let sink = classify("produce", &err);
            assert!(matches!(sink, SinkError::Transient(_)), "{err:?}: {sink:?}");
        }
    }

    #[test]
    fn the_error_code_is_found_behind_given_up_retries() {
        let err = gave_up(server(ProtocolError::UnknownTopicOrPartition));
        assert_eq!(
            protocol_error(&err),
            Some(ProtocolError::UnknownTopicOrPartition)
        );
        assert!(!is_permanent(&err));
        let message = classify("produce to \"orders\"", &err).to_string();
        assert!(
            message.contains("gave up retrying") && message.contains("produce to \"orders\""),
            "{message}"
        );
        assert!(is_topic_exists(&server(ProtocolError::TopicAlreadyExists)));
        assert!(!is_topic_exists(&Error::Timeout));
    }
}
