//! `switchyard_events_total{sink, type, outcome}` for one sink. The `type`
//! label is the CloudEvents type; since an inbound webhook's type may come
//! from the provider's body, the distinct types a process labels are
//! bounded ([`MAX_TYPES`]): past the bound, a new type is counted as
//! `other`, so a provider cannot grow the metrics without limit.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, IntCounterVec};

/// Distinct `type` label values, all sinks together.
pub const MAX_TYPES: usize = 256;

/// The label of the types past [`MAX_TYPES`].
pub const OTHER: &str = "other";

/// The types labelled so far, shared by every sink of one gateway.
#[derive(Default)]
pub struct TypeLabels {
    seen: Mutex<HashSet<String>>,
}

impl TypeLabels {
    /// `event_type` if it has (or gets) a label of its own, else [`OTHER`].
    fn label<'a>(&self, event_type: &'a str) -> &'a str {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(event_type) {
            return event_type;
        }
        if seen.len() < MAX_TYPES {
            seen.insert(event_type.to_owned());
            return event_type;
        }
        OTHER
    }
}

/// One sink's event counters.
#[derive(Clone)]
pub struct EventCounters {
    events: IntCounterVec,
    sink: Arc<str>,
    types: Arc<TypeLabels>,
}

impl EventCounters {
    pub fn new(events: IntCounterVec, sink: &str, types: Arc<TypeLabels>) -> EventCounters {
        EventCounters {
            events,
            sink: sink.into(),
            types,
        }
    }

    /// The counter of `event_type` events with `outcome`: resolve it once
    /// where the type is fixed (an event definition), not per event.
    pub fn counter(&self, event_type: &str, outcome: &str) -> IntCounter {
        let label = self.types.label(event_type);
        self.events
            .with_label_values(&[&*self.sink, label, outcome])
    }

    /// Counts one event of `event_type` with `outcome`.
    pub fn inc(&self, event_type: &str, outcome: &str) {
        self.counter(event_type, outcome).inc();
    }

    /// This sink's events with `outcome`, all types.
    #[cfg(test)]
    pub fn total(&self, outcome: &str) -> u64 {
        use prometheus::core::Collector;
        self.events
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                let labels = m.get_label();
                let has = |name: &str, value: &str| {
                    labels
                        .iter()
                        .any(|l| l.name() == name && l.value() == value)
                };
                has("sink", &self.sink) && has("outcome", outcome)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_past_the_bound_are_counted_as_other() {
        let vec = IntCounterVec::new(
            prometheus::Opts::new("e", "e"),
            &["sink", "type", "outcome"],
        )
        .unwrap();
        let counters = EventCounters::new(vec.clone(), "bus", Arc::default());
        for n in 0..MAX_TYPES + 10 {
            counters.inc(&format!("t{n}"), "appended");
        }
        counters.inc("t0", "published");
        assert_eq!(vec.with_label_values(&["bus", "t0", "published"]).get(), 1);
        assert_eq!(vec.with_label_values(&["bus", OTHER, "appended"]).get(), 10);
        use prometheus::core::Collector;
        let series: usize = vec
            .collect()
            .iter()
            .map(|family| family.get_metric().len())
            .sum();
        assert_eq!(
            series,
            MAX_TYPES + 2,
            "bounded: MAX_TYPES types, t0 published, other"
        );
    }
}
