//! Request-field paths (`user.id`) resolved once against a message descriptor,
//! and setting the field they name from one textual value: a path variable or a
//! query parameter. The text → value rules are in the `text` submodule's docs.

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

mod text;

/// Longest part of a client-supplied value echoed in an error: errors become
/// 400 response bodies, which must stay small whatever the client sent.
const MAX_ECHOED_CHARS: usize = 64;

/// A dotted request-field path resolved against a message descriptor ONCE at
/// config load (e.g. `user.id`), so the request path does no look-ups by name.
///
/// Invariant: `fields` is non-empty, `fields[0]` belongs to the root message and
/// every field but the last is a singular (non-repeated, non-map) message field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    fields: Vec<FieldDescriptor>,
}

/// Why a dotted field path does not name a field of a message. Segments taken
/// from the input are cut to a bounded length: query keys come from clients.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    #[error("field path \"{path}\" is empty or has an empty segment")]
    EmptySegment { path: String },
    #[error("message \"{message}\" has no field \"{field}\"")]
    UnknownField { message: String, field: String },
    #[error("cannot select \"{next}\" inside field \"{field}\": it is not a message")]
    NotAMessage { field: String, next: String },
    #[error("cannot select \"{next}\" inside field \"{field}\": it is a repeated or map field")]
    NotSingular { field: String, next: String },
}

/// Why a value could not be set at a field path. `field` is always the dotted
/// proto path (`user.name`), whatever spelling the client used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid value \"{value}\" for field \"{field}\": expected {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: String,
    },
    #[error("field \"{field}\" is a message; set its fields with {field}.sub=...")]
    MessageField { field: String },
    /// `what`: "a map", "a repeated message field", "of type google.protobuf.Struct"…
    #[error("field \"{field}\" is {what}, which cannot be set from a single value")]
    NotSettable { field: String, what: String },
    #[error("field \"{field}\" is in oneof \"{oneof}\", whose field \"{other}\" is already set")]
    OneofConflict {
        field: String,
        oneof: String,
        other: String,
    },
    #[error("value of the wrong type for field \"{field}\"")]
    WrongType { field: String },
    #[error("field path \"{field}\" belongs to message \"{expected}\", not \"{actual}\"")]
    WrongMessage {
        field: String,
        expected: String,
        actual: String,
    },
}

// === impl FieldPath ===

impl FieldPath {
    /// Accepts proto field names (snake_case) — as in HttpRule templates and `body:`.
    pub fn resolve(desc: &MessageDescriptor, dotted: &str) -> Result<FieldPath, FieldPathError> {
        Self::resolve_with(desc, dotted, false)
    }

    /// Like [`FieldPath::resolve`], but each segment may also be the field's
    /// json_name (`pageSize`), as query parameter keys may.
    pub fn resolve_query_key(
        desc: &MessageDescriptor,
        dotted: &str,
    ) -> Result<FieldPath, FieldPathError> {
        Self::resolve_with(desc, dotted, true)
    }

    pub fn leaf(&self) -> &FieldDescriptor {
        // The invariant guarantees a last element; `resolve` never builds an empty path.
        &self.fields[self.fields.len() - 1]
    }

    pub fn fields(&self) -> &[FieldDescriptor] {
        &self.fields
    }

    /// The message the path starts from.
    pub fn root(&self) -> &MessageDescriptor {
        self.fields[0].parent_message()
    }

    /// The path with proto field names, e.g. `user.display_name`.
    pub fn to_dotted(&self) -> String {
        dotted(&self.fields)
    }

    /// True if `prefix` names this field or one of the messages that contain it.
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.fields.starts_with(&prefix.fields)
    }

    /// Set the leaf from one textual value (path variable or query parameter),
    /// already percent-decoded. For repeated leaves, appends. On error `msg` is
    /// left unchanged.
    pub fn set_from_str(&self, msg: &mut DynamicMessage, value: &str) -> Result<(), ValueError> {
        let leaf = self.leaf();
        if leaf.is_map() {
            return Err(self.not_settable());
        }
        // Parse before touching `msg`, so a bad value creates no empty parents.
        let value = self.parse(value)?;
        let slot = self.get_or_create_mut(msg)?;
        if !leaf.is_list() {
            *slot = value;
            return Ok(());
        }
        match slot.as_list_mut() {
            Some(list) => {
                list.push(value);
                Ok(())
            }
            None => Err(ValueError::WrongType {
                field: self.to_dotted(),
            }),
        }
    }

    /// Replace the leaf with `value`, checking its type against the field
    /// (a whole list for repeated fields). For `body: "field"`.
    pub fn set_value(&self, msg: &mut DynamicMessage, value: Value) -> Result<(), ValueError> {
        if !value_fits(&value, self.leaf()) {
            return Err(ValueError::WrongType {
                field: self.to_dotted(),
            });
        }
        *self.get_or_create_mut(msg)? = value;
        Ok(())
    }

    /// A mutable reference to the leaf's value, creating the intermediate
    /// messages (and the leaf, with its default) if unset. Refuses to switch a
    /// oneof to another member: prost-reflect would silently clear the one set.
    pub fn get_or_create_mut<'a>(
        &self,
        msg: &'a mut DynamicMessage,
    ) -> Result<&'a mut Value, ValueError> {
        self.check_root(msg)?;
        let (parents, leaf) = self.fields.split_at(self.fields.len() - 1);
        let mut current = msg;
        for (depth, field) in parents.iter().enumerate() {
            self.check_oneof(current, depth)?;
            current = match current.get_field_mut(field).as_message_mut() {
                Some(child) => child,
                None => {
                    return Err(ValueError::WrongType {
                        field: dotted(&self.fields[..=depth]),
                    });
                }
            };
        }
        self.check_oneof(current, parents.len())?;
        Ok(current.get_field_mut(&leaf[0]))
    }

    fn resolve_with(
        desc: &MessageDescriptor,
        dotted_path: &str,
        json_names: bool,
    ) -> Result<FieldPath, FieldPathError> {
        let mut fields: Vec<FieldDescriptor> = Vec::new();
        for segment in dotted_path.split('.') {
            if segment.is_empty() {
                return Err(FieldPathError::EmptySegment {
                    path: echo(dotted_path),
                });
            }
            let message = match fields.last() {
                None => desc.clone(),
                Some(parent) => child_message(&fields, parent, segment)?,
            };
            let field = message
                .get_field_by_name(segment)
                .or_else(|| {
                    json_names
                        .then(|| message.get_field_by_json_name(segment))
                        .flatten()
                })
                .ok_or_else(|| FieldPathError::UnknownField {
                    message: message.full_name().to_owned(),
                    field: echo(segment),
                })?;
            fields.push(field);
        }
        Ok(FieldPath { fields })
    }

    fn check_root(&self, msg: &DynamicMessage) -> Result<(), ValueError> {
        let actual = msg.descriptor();
        if &actual == self.root() {
            return Ok(());
        }
        Err(ValueError::WrongMessage {
            field: self.to_dotted(),
            expected: self.root().full_name().to_owned(),
            actual: actual.full_name().to_owned(),
        })
    }

    /// `msg` holds `fields[depth]`: fail if another member of its oneof is set.
    fn check_oneof(&self, msg: &DynamicMessage, depth: usize) -> Result<(), ValueError> {
        let field = &self.fields[depth];
        let Some(oneof) = field.containing_oneof() else {
            return Ok(());
        };
        match oneof
            .fields()
            .find(|other| other != field && msg.has_field(other))
        {
            None => Ok(()),
            Some(other) => Err(ValueError::OneofConflict {
                field: dotted(&self.fields[..=depth]),
                oneof: oneof.name().to_owned(),
                other: other.name().to_owned(),
            }),
        }
    }

    /// Parse `text` as one element of the leaf (one list item for repeated leaves).
    fn parse(&self, text: &str) -> Result<Value, ValueError> {
        match text::parse_item(&self.leaf().kind(), text) {
            None => Err(self.not_settable()),
            Some(parsed) => parsed.map_err(|expected| ValueError::Invalid {
                field: self.to_dotted(),
                value: echo(text),
                expected: expected.into_owned(),
            }),
        }
    }

    /// The error for a leaf that has no one-string form.
    fn not_settable(&self) -> ValueError {
        let leaf = self.leaf();
        let field = self.to_dotted();
        let what = match leaf.kind() {
            _ if leaf.is_map() => "a map".to_owned(),
            _ if leaf.is_list() => "a repeated message field".to_owned(),
            // Naming a sub-field is the way for user messages, not for WKTs
            // such as Struct whose JSON form is not their field structure.
            Kind::Message(message) if message.full_name().starts_with("google.protobuf.") => {
                format!("of type {}", message.full_name())
            }
            _ => return ValueError::MessageField { field },
        };
        ValueError::NotSettable { field, what }
    }
}

// === private helpers ===

fn dotted(fields: &[FieldDescriptor]) -> String {
    let names: Vec<&str> = fields.iter().map(FieldDescriptor::name).collect();
    names.join(".")
}

/// Stricter than prost-reflect's `is_valid_for_field`, which accepts a single
/// item for a repeated field and a message of any type for a message field.
fn value_fits(value: &Value, field: &FieldDescriptor) -> bool {
    let kind = field.kind();
    match value {
        Value::List(items) => field.is_list() && items.iter().all(|item| item_fits(item, &kind)),
        Value::Map(_) => field.is_map() && value.is_valid_for_field(field),
        item => !field.is_list() && !field.is_map() && item_fits(item, &kind),
    }
}

fn item_fits(item: &Value, kind: &Kind) -> bool {
    match (item, kind) {
        (Value::Message(message), Kind::Message(desc)) => &message.descriptor() == desc,
        _ => item.is_valid(kind),
    }
}

/// The message type of `parent` (the last of `fields`), which `next` selects into.
fn child_message(
    fields: &[FieldDescriptor],
    parent: &FieldDescriptor,
    next: &str,
) -> Result<MessageDescriptor, FieldPathError> {
    if parent.is_list() || parent.is_map() {
        return Err(FieldPathError::NotSingular {
            field: dotted(fields),
            next: echo(next),
        });
    }
    match parent.kind() {
        Kind::Message(message) => Ok(message),
        _ => Err(FieldPathError::NotAMessage {
            field: dotted(fields),
            next: echo(next),
        }),
    }
}

/// The client's text, cut to a bounded length for error messages (shared with
/// `query`).
pub(super) fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHOED_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests;
