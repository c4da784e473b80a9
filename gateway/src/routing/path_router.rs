//! Many [`PathTemplate`]s compiled into one segment trie, for one HTTP method.
//!
//! Matching follows the rules in [`crate::transcode::path_template`] (raw split on `/`, decoded
//! comparison of literals and verbs, empty segments match nothing, `%2F` handling of values),
//! and [`PathRouter::at`] agrees with [`PathTemplate::matches`] for every single template.
//!
//! # Precedence
//!
//! When several templates match one path:
//! 1. A template whose verb equals the request's verb (text after the last `:` of the last
//!    segment) beats every template without a verb, however specific. A verb is explicit intent
//!    and this is how Envoy behaves: `/v1/projects/p/topics/t:setIamPolicy` goes to
//!    `/v1/{resource=**}:setIamPolicy`, not to `/v1/projects/{p}/topics/{t}` with
//!    `t = "t:setIamPolicy"`. Only if no verb template matches is the whole path, colon
//!    included, tried against the templates without a verb.
//! 2. Then segment by segment from the left: a literal beats `*`, `*` beats `**`; a template
//!    that ends where the path ends beats a `**` that would match zero segments.
//! 3. Templates equal under 1 and 2 have the same [`PathTemplate::shape`] and are rejected by
//!    [`PathRouterBuilder::insert`], so the insertion-order tiebreak never has to fire.
//!
//! The trie is searched depth first, literal child, then `*` child, then `**` leaves, which
//! yields exactly that order. Paths are walked as sub-slices of the request: nothing is
//! allocated per request except the captured values. Recursion depth is bounded by the
//! longest template, not by the request.

use std::collections::HashMap;
use std::fmt;

/// Re-exported so callers of [`PathRouter::at`] can name its error from here.
pub use crate::transcode::path_template::PathError;
use crate::transcode::path_template::{
    PathTemplate, RequestPath, Segment, all_non_empty, decoded_eq, first_rest, next_segment,
};

/// Many templates compiled into one matcher. Built once per config version; matching allocates
/// nothing but the captured values.
#[derive(Debug)]
pub struct PathRouter<T> {
    /// `nodes[0]` is the root.
    nodes: Vec<Node>,
    routes: Vec<Route<T>>,
    /// Skips the verb search entirely for routers without any verb template.
    has_verbs: bool,
}

#[derive(Debug)]
pub struct PathRouterBuilder<T> {
    router: PathRouter<T>,
}

#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    pub value: &'a T,
    pub template: &'a PathTemplate,
    /// In `template.variables()` order.
    pub captures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterError {
    /// Both templates (original text) match exactly the same requests.
    Conflict { existing: String, new: String },
}

#[derive(Debug)]
struct Route<T> {
    template: PathTemplate,
    value: T,
}

#[derive(Debug, Default)]
struct Node {
    /// Keyed by decoded literal text.
    literals: HashMap<Box<str>, usize>,
    wildcard: Option<usize>,
    /// Templates ending here.
    leaves: Vec<Leaf>,
    /// Templates ending in a `**` that takes the rest of the path from here.
    multi_leaves: Vec<Leaf>,
}

#[derive(Debug)]
struct Leaf {
    /// Decoded verb.
    verb: Option<Box<str>>,
    route: usize,
}

// === impl PathRouterBuilder ===

impl<T> PathRouterBuilder<T> {
    pub fn new() -> Self {
        Self {
            router: PathRouter {
                nodes: vec![Node::default()],
                routes: Vec::new(),
                has_verbs: false,
            },
        }
    }

    /// Err(Conflict{existing, new}) when an equal-shaped template with the same verb is already
    /// inserted (same method is the caller's concern: one router per HTTP method).
    pub fn insert(&mut self, template: PathTemplate, value: T) -> Result<(), RouterError> {
        let router = &mut self.router;
        let mut node = 0;
        let mut ends_in_multi = false;
        for segment in template.segments() {
            match segment {
                Segment::Literal(text) => node = router.literal_child_or_insert(node, text),
                Segment::Wildcard => node = router.wildcard_child_or_insert(node),
                Segment::MultiWildcard => ends_in_multi = true,
            }
        }
        let target = &mut router.nodes[node];
        let leaves = if ends_in_multi {
            &mut target.multi_leaves
        } else {
            &mut target.leaves
        };
        if let Some(leaf) = leaves
            .iter()
            .find(|leaf| leaf.verb.as_deref() == template.verb())
        {
            return Err(RouterError::Conflict {
                existing: router.routes[leaf.route].template.as_str().to_owned(),
                new: template.as_str().to_owned(),
            });
        }
        leaves.push(Leaf {
            verb: template.verb().map(Box::from),
            route: router.routes.len(),
        });
        router.has_verbs |= template.verb().is_some();
        router.routes.push(Route { template, value });
        Ok(())
    }

    pub fn build(self) -> PathRouter<T> {
        self.router
    }
}

impl<T> Default for PathRouterBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

// === impl PathRouter ===

impl<T> PathRouter<T> {
    /// The best match for one path (no query), by the module-level precedence rules.
    pub fn at<'a>(&'a self, path: &str) -> Result<Option<RouteMatch<'a, T>>, PathError> {
        let Some(request) = RequestPath::parse(path)? else {
            return Ok(None);
        };
        let with_verb = self
            .has_verbs
            .then(|| request.split_verb())
            .flatten()
            .and_then(|(body, verb)| Some((self.find(0, first_rest(body), Some(verb))?, body)));
        let found = with_verb.or_else(|| {
            let body = request.body();
            Some((self.find(0, first_rest(body), None)?, body))
        });
        let Some((route, body)) = found else {
            return Ok(None);
        };
        let route = &self.routes[route];
        let captures = route.template.captures(body)?;
        Ok(Some(RouteMatch {
            value: &route.value,
            template: &route.template,
            captures,
        }))
    }

    /// The same router with each value replaced by `f(value)`.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PathRouter<U> {
        PathRouter {
            nodes: self.nodes,
            routes: self
                .routes
                .into_iter()
                .map(|route| Route {
                    template: route.template,
                    value: f(route.value),
                })
                .collect(),
            has_verbs: self.has_verbs,
        }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// In insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&PathTemplate, &T)> {
        self.routes
            .iter()
            .map(|route| (&route.template, &route.value))
    }

    /// First route in precedence order under `node` for the segments in `rest`; `verb` is the
    /// raw request verb, or `None` to consider only templates without one.
    fn find(&self, node: usize, rest: Option<&str>, verb: Option<&str>) -> Option<usize> {
        let node = &self.nodes[node];
        let Some(rest) = rest else {
            return leaf_for(&node.leaves, verb).or_else(|| leaf_for(&node.multi_leaves, verb));
        };
        let (segment, tail) = next_segment(rest);
        if segment.is_empty() {
            return None;
        }
        node.literal_child(segment)
            .and_then(|child| self.find(child, tail, verb))
            .or_else(|| node.wildcard.and_then(|child| self.find(child, tail, verb)))
            .or_else(|| {
                let usable = !node.multi_leaves.is_empty() && all_non_empty(Some(rest));
                usable.then(|| leaf_for(&node.multi_leaves, verb)).flatten()
            })
    }

    fn literal_child_or_insert(&mut self, node: usize, text: &str) -> usize {
        let fresh = self.nodes.len();
        let child = *self.nodes[node]
            .literals
            .entry(text.into())
            .or_insert(fresh);
        if child == fresh {
            self.nodes.push(Node::default());
        }
        child
    }

    fn wildcard_child_or_insert(&mut self, node: usize) -> usize {
        let fresh = self.nodes.len();
        let child = *self.nodes[node].wildcard.get_or_insert(fresh);
        if child == fresh {
            self.nodes.push(Node::default());
        }
        child
    }
}

// === impl Node ===

impl Node {
    fn literal_child(&self, raw: &str) -> Option<usize> {
        if raw.contains('%') {
            // Escaped segments are rare; a scan keeps the hot path free of a decode buffer.
            self.literals
                .iter()
                .find(|(text, _)| decoded_eq(raw, text))
                .map(|(_, &child)| child)
        } else {
            self.literals.get(raw).copied()
        }
    }
}

// === impl RouterError ===

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict { existing, new } => write!(
                f,
                "path template `{new}` conflicts with `{existing}`: both match the same requests"
            ),
        }
    }
}

impl std::error::Error for RouterError {}

// === private helpers ===

fn leaf_for(leaves: &[Leaf], verb: Option<&str>) -> Option<usize> {
    leaves
        .iter()
        .find(|leaf| match (&leaf.verb, verb) {
            (None, None) => true,
            (Some(expected), Some(raw)) => decoded_eq(raw, expected),
            _ => false,
        })
        .map(|leaf| leaf.route)
}

#[cfg(test)]
mod tests;
