//! A YAML document's shape with the location of every key and value, so that
//! any error — from the YAML parser, from serde, or from validation after the
//! protos are compiled — can name both the key path (`routes[0].upstream`) and
//! the file position.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A key path such as `routes[0].upstream`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<PathSeg>);

/// The YAML tree with locations (values only; scalars carry nothing else).
#[derive(Debug)]
pub enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

// === impl KeyPath ===

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// `self.key`
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(key.into()));
        p
    }

    /// `self[index]`
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(index));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

// === impl Node ===

impl Node {
    /// The location of the key (for a map entry) or value at `path`: the
    /// deepest part of the path that exists, so a missing key points at its parent.
    pub fn locate(root: &Spanned<Node>, path: &KeyPath) -> Location {
        let mut node = root;
        let mut location = root.referenced;
        for seg in &path.0 {
            let next = match (&node.value, seg) {
                (Node::Map(entries), PathSeg::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| &key.value == k)
                    .map(|(key, value)| (key.referenced, value)),
                (Node::Seq(items), PathSeg::Index(i)) => {
                    items.get(*i).map(|item| (item.referenced, item))
                }
                _ => None,
            };
            match next {
                Some((loc, child)) => {
                    location = loc;
                    node = child;
                }
                None => break,
            }
        }
        location
    }

    /// The key path of the innermost entry at or before `at` — the key an error
    /// at that position is about.
    pub fn path_at(root: &Spanned<Node>, at: Location) -> KeyPath {
        let mut path = KeyPath::root();
        let mut node = &root.value;
        loop {
            let next = match node {
                Node::Map(entries) => entries
                    .iter()
                    .rposition(|(key, _)| before_or_at(key.referenced, at))
                    .map(|i| (PathSeg::Key(entries[i].0.value.clone()), &entries[i].1)),
                Node::Seq(items) => items
                    .iter()
                    .rposition(|item| before_or_at(item.referenced, at))
                    .map(|i| (PathSeg::Index(i), &items[i])),
                Node::Scalar => None,
            };
            match next {
                Some((seg, child)) => {
                    path.0.push(seg);
                    node = &child.value;
                }
                None => return path,
            }
        }
    }
}

fn before_or_at(a: Location, b: Location) -> bool {
    (a.line(), a.column()) <= (b.line(), b.column())
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            let key = Spanned::new(key.value.0, key.referenced, key.defined);
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
}

/// A map key of any scalar type, kept as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
