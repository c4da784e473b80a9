//! GraphQL operation metrics: operations by name, type and outcome, and the
//! query cost the protection computed.
//!
//! Operation names come from clients, so they are bounded before they
//! become labels: a name must be a GraphQL name of at most
//! [`MAX_NAME_LEN`] characters, and past [`MAX_NAMES`] distinct names any
//! new one is counted as `other` (anonymous operations as `-`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// Distinct operation names kept as label values.
pub const MAX_NAMES: usize = 200;
/// Longest operation name kept as a label value.
pub const MAX_NAME_LEN: usize = 64;

/// `graphql_operations_total` and `graphql_query_cost`.
#[derive(Clone, Debug)]
pub struct GraphqlMetrics {
    operations: IntCounterVec,
    cost: Histogram,
    names: Arc<Mutex<HashSet<String>>>,
}

impl GraphqlMetrics {
    pub(super) fn new() -> GraphqlMetrics {
        let operations = IntCounterVec::new(
            Opts::new(
                "graphql_operations_total",
                "GraphQL operations by name (bounded), type (query, mutation, subscription) and outcome (ok, errors: some field failed, refused: by protection before running).",
            ),
            &["operation", "type", "outcome"],
        )
        .expect("static metric definition");
        let cost = Histogram::with_opts(
            HistogramOpts::new(
                "graphql_query_cost",
                "The complexity of each GraphQL operation that was checked (graphql.limits).",
            )
            .buckets(vec![
                1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
            ]),
        )
        .expect("static metric definition");
        GraphqlMetrics {
            operations,
            cost,
            names: Default::default(),
        }
    }

    /// The names of its metrics (without the registry's prefix).
    pub(super) fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        [self.operations.desc(), self.cost.desc()]
            .into_iter()
            .flatten()
            .map(|d| d.fq_name.clone())
            .collect()
    }

    pub(super) fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.operations.clone()))?;
        registry.register(Box::new(self.cost.clone()))
    }

    /// Counts one operation; `kind` is `query`, `mutation`, `subscription`
    /// or `-` (unknown: the document did not parse or name one).
    pub fn observe(&self, name: Option<&str>, kind: &str, outcome: &str, cost: Option<u64>) {
        let name = self.label(name);
        self.operations
            .with_label_values(&[name.as_str(), kind, outcome])
            .inc();
        if let Some(cost) = cost {
            self.cost.observe(cost as f64);
        }
    }

    fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return "-".to_owned();
        };
        let valid = name.len() <= MAX_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return "other".to_owned();
        }
        let mut names = self
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.contains(name) || names.len() < MAX_NAMES {
            names.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_before_they_become_labels() {
        let metrics = GraphqlMetrics::new();
        assert_eq!(metrics.label(None), "-");
        assert_eq!(metrics.label(Some("GetOrders")), "GetOrders");
        assert_eq!(metrics.label(Some("not a name")), "other");
        assert_eq!(metrics.label(Some(&"x".repeat(65))), "other");
        for i in 0..MAX_NAMES {
            metrics.label(Some(&format!("Op{i}")));
        }
        assert_eq!(metrics.label(Some("OneTooMany")), "other");
        assert_eq!(
            metrics.label(Some("GetOrders")),
            "GetOrders",
            "known names stay"
        );
    }
}
