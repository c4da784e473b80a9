//! FieldMask push-down: a root field's request gets a `read_mask` (any of
//! `graphql.field_masks`) listing the reply fields the query selects, so the
//! upstream can skip work for the rest (AIP-157).
//!
//! Paths are proto field names. A selected singular message field with a
//! sub-selection becomes `parent.child` paths; lists, maps, well-known types
//! and scalars are named whole. A joined field names its key field (the join
//! needs it), a oneof's union field names every member, and `__typename`
//! names nothing. When nothing but `__typename` is selected the mask stays
//! empty, which means "everything". A mask set by the query's arguments is
//! left alone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_graphql::SelectionField;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use super::scalars::Wkt;
use super::types::oneof_field_name;

/// Deepest nesting followed into sub-selections.
const MAX_DEPTH: usize = 16;

/// The join fields of each message: (message full name, GraphQL field) →
/// the key's proto field name.
pub type JoinKeys = Arc<HashMap<(String, String), String>>;

/// How one method's read mask is filled.
pub struct MaskPlan {
    field: FieldDescriptor,
    joins: JoinKeys,
}

// === impl MaskPlan ===

impl MaskPlan {
    /// The plan for `input`'s first field among `names` that is a FieldMask.
    pub fn find(input: &MessageDescriptor, names: &[String], joins: &JoinKeys) -> Option<MaskPlan> {
        names.iter().find_map(|name| {
            let field = input.get_field_by_name(name)?;
            match field.kind() {
                Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask" => {
                    Some(MaskPlan {
                        field,
                        joins: joins.clone(),
                    })
                }
                _ => None,
            }
        })
    }

    /// Sets the mask on `request` from `selection` (of a reply of type
    /// `output`), unless the request already has one.
    pub fn apply<'a>(
        &self,
        request: &mut DynamicMessage,
        output: &MessageDescriptor,
        selection: impl Iterator<Item = SelectionField<'a>>,
    ) {
        if request.has_field(&self.field) || Wkt::of(output).is_some() {
            return;
        }
        let mut paths = BTreeSet::new();
        self.collect(output, selection, "", 0, &mut paths);
        if paths.is_empty() {
            return;
        }
        let Kind::Message(mask_type) = self.field.kind() else {
            return;
        };
        let mut mask = DynamicMessage::new(mask_type);
        let list = paths.into_iter().map(Value::String).collect();
        if mask
            .try_set_field_by_name("paths", Value::List(list))
            .is_ok()
        {
            let _ = request.try_set_field(&self.field, Value::Message(mask));
        }
    }

    fn collect<'a>(
        &self,
        message: &MessageDescriptor,
        selection: impl Iterator<Item = SelectionField<'a>>,
        prefix: &str,
        depth: usize,
        paths: &mut BTreeSet<String>,
    ) {
        for selected in selection {
            let name = selected.name();
            if name.starts_with("__") {
                continue;
            }
            if let Some(field) = message.fields().find(|f| f.json_name() == name) {
                let path = format!("{prefix}{}", field.name());
                match field.kind() {
                    Kind::Message(child)
                        if !field.is_list()
                            && !field.is_map()
                            && Wkt::of(&child).is_none()
                            && depth < MAX_DEPTH
                            && selected.selection_set().next().is_some() =>
                    {
                        let before = paths.len();
                        let nested = format!("{path}.");
                        self.collect(&child, selected.selection_set(), &nested, depth + 1, paths);
                        if paths.len() == before {
                            paths.insert(path);
                        }
                    }
                    _ => {
                        paths.insert(path);
                    }
                }
            } else if let Some(key) = self
                .joins
                .get(&(message.full_name().to_owned(), name.to_owned()))
            {
                paths.insert(format!("{prefix}{key}"));
            } else if let Some(oneof) = message
                .oneofs()
                .find(|o| !o.is_synthetic() && oneof_field_name(message, o) == name)
            {
                for member in oneof.fields() {
                    paths.insert(format!("{prefix}{}", member.name()));
                }
            }
        }
    }
}
