//! Per-operation limits (`graphql.limits`, `graphql.introspection`), checked
//! before an operation runs, so a refused one never reaches an upstream.
//!
//! - [`Limits::check_text`]: size in bytes and in tokens, on the raw text,
//!   before parsing (the token count is a cheap lexer pass, no parse);
//! - [`Limits::check_document`]: on the parsed document, the operation that
//!   would execute with its fragments expanded: root fields, aliases, depth,
//!   introspection (on/off and its own depth), complexity.
//!
//! async-graphql's own `limit_depth`/`limit_complexity` are not used: their
//! errors do not name the limit, their cost model has no list multiplier
//! in the dynamic schema, and they count introspection like any field.
//!
//! Introspection is served from memory, so `__schema`/`__type` and what is
//! below them cost nothing and do not count towards `max_depth`; what makes
//! an introspection query expensive is nesting list fields (`types { fields
//! { type { fields …`), bounded by `max_introspection_depth` (GraphiQL's
//! standard query nests three: `types.fields.args`), as Apollo Router does.

use std::collections::{HashMap, HashSet};

use async_graphql::Variables;
use async_graphql::dynamic::Schema;
use async_graphql::parser::types::Field;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
    Selection, SelectionSet, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Value as ConstValue};

mod tokens;

pub use tokens::count_tokens;

use crate::config::graphql::{GraphqlConfig, GraphqlLimits};
use crate::graphql::BuildError;

/// A request refused before it ran: a GraphQL error with `extensions.code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// The arguments that say how many items a list field returns.
const SIZE_ARGUMENTS: [&str; 5] = ["first", "last", "pageSize", "page_size", "limit"];

/// The list-typed fields of the introspection types.
const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "fields",
    "args",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "directives",
];

/// The limits of one endpoint, with the schema's field types.
pub struct Limits {
    config: GraphqlLimits,
    introspection: bool,
    /// Type name → field name → the field's type.
    types: HashMap<String, HashMap<String, FieldType>>,
    roots: [String; 3],
}

#[derive(Clone, Debug)]
struct FieldType {
    named: String,
    list: bool,
}

/// What a selection set adds up to.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    /// Deepest field nesting below (1 for a set of leaves).
    depth: usize,
    /// Deepest nesting of introspection list fields.
    introspection_depth: usize,
    aliases: u64,
    cost: u64,
    /// Fields directly in this set (fragments expanded), `__typename` aside.
    fields: u64,
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.depth = self.depth.max(other.depth);
        self.introspection_depth = self.introspection_depth.max(other.introspection_depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.cost = self.cost.saturating_add(other.cost);
        self.fields = self.fields.saturating_add(other.fields);
    }
}

/// Where a selection set is.
#[derive(Clone, Copy)]
struct Context<'a> {
    /// The type its fields belong to ("" when unknown: an invalid query,
    /// which validation refuses later).
    parent: &'a str,
    introspection: bool,
    /// The list size a size argument of the parent field set.
    size: Option<u64>,
}

/// One walk over a document.
struct Walk<'a> {
    limits: &'a Limits,
    doc: &'a ExecutableDocument,
    op: &'a OperationDefinition,
    variables: &'a Variables,
    memo: HashMap<(&'a str, bool, Option<u64>), Stats>,
    visiting: HashSet<&'a str>,
    introspected: bool,
}

// === impl Limits ===

impl Limits {
    pub fn new(config: &GraphqlConfig, schema: &Schema) -> Result<Limits, BuildError> {
        let sdl = async_graphql::parser::parse_schema(schema.sdl()).map_err(|e| {
            BuildError::at(
                [] as [&str; 0],
                format!("cannot read the schema's SDL: {e}"),
            )
        })?;
        let mut types = HashMap::new();
        let mut roots = ["Query", "Mutation", "Subscription"].map(str::to_owned);
        for definition in sdl.definitions {
            match definition {
                TypeSystemDefinition::Type(ty) => {
                    let fields = match ty.node.kind {
                        TypeKind::Object(o) => o.fields,
                        TypeKind::Interface(i) => i.fields,
                        _ => continue,
                    };
                    let fields: HashMap<String, FieldType> = fields
                        .into_iter()
                        .map(|f| {
                            let f = f.node;
                            (f.name.node.to_string(), field_type(&f.ty.node))
                        })
                        .collect();
                    types.insert(ty.node.name.node.to_string(), fields);
                }
                TypeSystemDefinition::Schema(s) => {
                    for (slot, name) in roots.iter_mut().zip([
                        &s.node.query,
                        &s.node.mutation,
                        &s.node.subscription,
                    ]) {
                        if let Some(name) = name {
                            *slot = name.node.to_string();
                        }
                    }
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        let limits = &config.limits;
        for key in limits.costs.keys() {
            let known = key
                .split_once('.')
                .and_then(|(ty, field)| types.get(ty)?.get(field))
                .is_some();
            if !known {
                return Err(BuildError::at(
                    ["limits", "costs"],
                    format!(
                        "`{key}` is not a field of the schema; write `Type.field`, e.g. `Query.orders`"
                    ),
                ));
            }
        }
        Ok(Limits {
            config: limits.clone(),
            introspection: config.introspection,
            types,
            roots,
        })
    }

    /// Size and tokens of the query text, before it is parsed.
    pub fn check_text(&self, query: &str) -> Result<(), Refusal> {
        let max = self.config.max_query_bytes.as_usize();
        if query.len() > max {
            return Err(Refusal {
                code: "QUERY_TOO_LARGE",
                message: format!(
                    "query size {} bytes exceeds limits.max_query_bytes ({max})",
                    query.len()
                ),
            });
        }
        let max = self.config.max_query_tokens;
        let tokens = count_tokens(query, max);
        if tokens > max {
            return Err(Refusal {
                code: "QUERY_TOO_LARGE",
                message: format!(
                    "query has more than {max} tokens, exceeding limits.max_query_tokens ({max})"
                ),
            });
        }
        Ok(())
    }

    /// The limits on the operation that would run (all of them when which
    /// one cannot be told; the executor then refuses the request anyway);
    /// its cost (the highest of those checked).
    pub fn check_document(
        &self,
        doc: &ExecutableDocument,
        operation: Option<&str>,
        variables: &Variables,
    ) -> Result<u64, Vec<Refusal>> {
        let ops: Vec<&OperationDefinition> = match (&doc.operations, operation) {
            (DocumentOperations::Single(op), _) => vec![&op.node],
            (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(&Name::new(name)) {
                Some(op) => vec![&op.node],
                None => return Ok(0),
            },
            (DocumentOperations::Multiple(ops), None) => ops.values().map(|op| &op.node).collect(),
        };
        let mut cost = 0;
        for op in ops {
            cost = cost.max(self.check_operation(doc, op, variables)?);
        }
        Ok(cost)
    }

    fn check_operation(
        &self,
        doc: &ExecutableDocument,
        op: &OperationDefinition,
        variables: &Variables,
    ) -> Result<u64, Vec<Refusal>> {
        let root = match op.ty {
            OperationType::Query => &self.roots[0],
            OperationType::Mutation => &self.roots[1],
            OperationType::Subscription => &self.roots[2],
        };
        let mut walk = Walk {
            limits: self,
            doc,
            op,
            variables,
            memo: HashMap::new(),
            visiting: HashSet::new(),
            introspected: false,
        };
        let context = Context {
            parent: root,
            introspection: false,
            size: None,
        };
        let stats = walk.selection_set(&op.selection_set.node, context);
        let c = &self.config;
        let mut refusals = Vec::new();
        let mut over = |code: &'static str, what: &str, value: u64, key: &str, max: u64| {
            if value > max {
                refusals.push(Refusal {
                    code,
                    message: format!("{what} {value} exceeds limits.{key} ({max})"),
                });
            }
        };
        over(
            "TOO_MANY_ROOT_FIELDS",
            "root field count",
            stats.fields,
            "max_root_fields",
            c.max_root_fields as u64,
        );
        over(
            "TOO_MANY_ALIASES",
            "alias count",
            stats.aliases,
            "max_aliases",
            c.max_aliases as u64,
        );
        over(
            "QUERY_TOO_DEEP",
            "query depth",
            stats.depth as u64,
            "max_depth",
            c.max_depth as u64,
        );
        over(
            "QUERY_TOO_DEEP",
            "introspection depth (nested list fields)",
            stats.introspection_depth as u64,
            "max_introspection_depth",
            c.max_introspection_depth as u64,
        );
        over(
            "QUERY_TOO_COMPLEX",
            "query complexity",
            stats.cost,
            "max_complexity",
            c.max_complexity,
        );
        if walk.introspected && !self.introspection {
            refusals.insert(
                0,
                Refusal {
                    code: "INTROSPECTION_DISABLED",
                    message: "introspection (`__schema`, `__type`) is disabled on this endpoint (graphql.introspection: false)".to_owned(),
                },
            );
        }
        if refusals.is_empty() {
            Ok(stats.cost)
        } else {
            Err(refusals)
        }
    }

    fn field(&self, parent: &str, name: &str) -> Option<&FieldType> {
        self.types.get(parent)?.get(name)
    }
}

fn field_type(ty: &async_graphql::parser::types::Type) -> FieldType {
    let mut base = &ty.base;
    let mut list = false;
    loop {
        match base {
            BaseType::Named(name) => {
                return FieldType {
                    named: name.to_string(),
                    list,
                };
            }
            BaseType::List(inner) => {
                list = true;
                base = &inner.base;
            }
        }
    }
}

// === impl Walk ===

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, cx: Context<'a>) -> Stats {
        let mut stats = Stats::default();
        for item in &set.items {
            let item = match &item.node {
                Selection::Field(field) => self.field(&field.node, cx),
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    let parent = inline
                        .type_condition
                        .as_ref()
                        .map_or(cx.parent, |t| t.node.on.node.as_str());
                    self.selection_set(&inline.selection_set.node, Context { parent, ..cx })
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), cx)
                }
            };
            stats.add(item);
        }
        stats
    }

    /// A named fragment, walked once per context however often it is spread
    /// (a "fragment bomb" stays linear).
    fn fragment(&mut self, name: &'a str, cx: Context<'a>) -> Stats {
        let key = (name, cx.introspection, cx.size);
        if let Some(stats) = self.memo.get(&key) {
            return *stats;
        }
        // An unknown or cyclic fragment: validation refuses the document.
        let Some(fragment) = self.doc.fragments.get(&Name::new(name)) else {
            return Stats::default();
        };
        if !self.visiting.insert(name) {
            return Stats::default();
        }
        let fragment = &fragment.node;
        let parent = fragment.type_condition.node.on.node.as_str();
        let stats = self.selection_set(&fragment.selection_set.node, Context { parent, ..cx });
        self.visiting.remove(name);
        self.memo.insert(key, stats);
        stats
    }

    fn field(&mut self, field: &'a Field, cx: Context<'a>) -> Stats {
        let name = field.name.node.as_str();
        let aliases = u64::from(field.alias.is_some());
        let children = &field.selection_set.node;
        if name == "__typename" {
            return Stats {
                depth: 1,
                aliases,
                ..Stats::default()
            };
        }
        if cx.introspection {
            let below = self.selection_set(
                children,
                Context {
                    parent: "",
                    introspection: true,
                    size: None,
                },
            );
            let list = usize::from(INTROSPECTION_LISTS.contains(&name));
            return Stats {
                depth: 0,
                introspection_depth: below.introspection_depth + list,
                aliases: aliases.saturating_add(below.aliases),
                cost: 0,
                fields: 1,
            };
        }
        if name == "__schema" || name == "__type" {
            self.introspected = true;
            let below = self.selection_set(
                children,
                Context {
                    parent: "",
                    introspection: true,
                    size: None,
                },
            );
            return Stats {
                depth: 1,
                introspection_depth: below.introspection_depth,
                aliases: aliases.saturating_add(below.aliases),
                cost: 0,
                fields: 1,
            };
        }
        let ty = self.limits.field(cx.parent, name);
        let own_size = self.size_argument(field);
        let (multiplier, children_size) = match ty {
            Some(t) if t.list => (
                own_size
                    .or(cx.size)
                    .unwrap_or(self.limits.config.default_list_size),
                None,
            ),
            _ => (1, own_size),
        };
        let base = self
            .limits
            .config
            .costs
            .get(&format!("{}.{name}", cx.parent))
            .copied()
            .unwrap_or(1);
        let below = if children.items.is_empty() {
            Stats::default()
        } else {
            self.selection_set(
                children,
                Context {
                    parent: ty.map_or("", |t| t.named.as_str()),
                    introspection: false,
                    size: children_size,
                },
            )
        };
        Stats {
            depth: below.depth + 1,
            introspection_depth: below.introspection_depth,
            aliases: aliases.saturating_add(below.aliases),
            cost: base.saturating_add(multiplier.saturating_mul(below.cost)),
            fields: 1,
        }
    }

    /// A variable's value: the request's, else its default.
    fn variable(&self, name: &Name) -> Option<ConstValue> {
        if let Some(value) = self.variables.get(name) {
            return Some(value.clone());
        }
        self.op
            .variable_definitions
            .iter()
            .find(|d| d.node.name.node == *name)
            .and_then(|d| d.node.default_value.as_ref())
            .map(|v| v.node.clone())
    }

    /// The value of a `first`/`pageSize`/… argument, literal or variable; a
    /// value ≤ 0 means "the server's default" (proto3 zero), so not taken.
    fn size_argument(&self, field: &Field) -> Option<u64> {
        let (_, value) = field
            .arguments
            .iter()
            .find(|(name, _)| SIZE_ARGUMENTS.contains(&name.node.as_str()))?;
        let value = value
            .node
            .clone()
            .into_const_with(|var| self.variable(&var).ok_or(()))
            .ok()?;
        let ConstValue::Number(number) = value else {
            return None;
        };
        let number = number.as_i64()?;
        u64::try_from(number).ok().filter(|n| *n > 0)
    }
}
