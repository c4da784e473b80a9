//! Output types: one object per message reachable from a method's reply,
//! GraphQL enums for proto enums, a union per `oneof`, and the proto
//! comments as descriptions (docs/graphql.md, "Types").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_graphql::dynamic::{Enum, EnumItem, Field, Object, Type, TypeRef, Union};
use prost_reflect::{
    DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor,
};

use super::naming::{Names, lower_camel};
use super::output::{self, Out, OutField};
use super::scalars::{self, Wkt};

/// What a field holds, for the mapping.
pub enum Shape {
    Scalar(&'static str),
    Enum(EnumDescriptor),
    Wkt(Wkt),
    Object(MessageDescriptor),
    /// A map: its entry message (`key`, `value`).
    Map(MessageDescriptor),
}

/// The messages, enums and scalars one side (output or input) of the schema
/// reaches.
#[derive(Default)]
pub struct Reach {
    pub messages: BTreeMap<String, MessageDescriptor>,
    pub enums: BTreeMap<String, EnumDescriptor>,
    pub scalars: BTreeSet<&'static str>,
    /// Request messages taken as flattened arguments: named (for their
    /// oneofs' input objects) but not emitted as input objects.
    pub flattened: BTreeMap<String, MessageDescriptor>,
}

/// Leading proto comments by (file, source path).
pub struct Comments(HashMap<(String, Vec<i32>), String>);

/// The element shape of `field` (for lists and maps: of one element).
pub fn shape(field: &FieldDescriptor) -> Shape {
    if field.is_map()
        && let Kind::Message(entry) = field.kind()
    {
        return Shape::Map(entry);
    }
    match field.kind() {
        Kind::Message(m) => Wkt::of(&m).map_or(Shape::Object(m), Shape::Wkt),
        Kind::Enum(e) => Shape::Enum(e),
        kind => Shape::Scalar(scalars::of_kind(&kind).unwrap_or("String")),
    }
}

/// The oneof `field` belongs to, unless it is a proto3 `optional`.
pub fn real_oneof(field: &FieldDescriptor) -> Option<OneofDescriptor> {
    field.containing_oneof().filter(|o| !o.is_synthetic())
}

/// The field name of a oneof: its lowerCamelCase name, with `Oneof` appended
/// when a field already has that name.
pub fn oneof_field_name(message: &MessageDescriptor, oneof: &OneofDescriptor) -> String {
    let name = lower_camel(oneof.name());
    if message.fields().any(|f| f.json_name() == name) {
        format!("{name}Oneof")
    } else {
        name
    }
}

// === impl Reach ===

impl Reach {
    /// Adds `desc` (unless it maps to a scalar) and everything its fields reach.
    pub fn visit(&mut self, desc: &MessageDescriptor) {
        if let Some(wkt) = Wkt::of(desc) {
            self.scalars.insert(wkt.scalar());
            return;
        }
        if self
            .messages
            .insert(desc.full_name().to_owned(), desc.clone())
            .is_none()
        {
            self.visit_fields(desc);
        }
    }

    /// Adds a request message whose fields are arguments: what they reach.
    pub fn visit_flattened(&mut self, desc: &MessageDescriptor) {
        if Wkt::of(desc).is_none() {
            self.flattened
                .insert(desc.full_name().to_owned(), desc.clone());
            self.visit_fields(desc);
        }
    }

    /// Adds what the fields of `desc` reach, not `desc` itself.
    fn visit_fields(&mut self, desc: &MessageDescriptor) {
        for field in desc.fields() {
            match shape(&field) {
                Shape::Scalar(s) => {
                    self.scalars.insert(s);
                }
                Shape::Enum(e) => {
                    self.enums.insert(e.full_name().to_owned(), e);
                }
                Shape::Wkt(w) => {
                    self.scalars.insert(w.scalar());
                }
                Shape::Object(m) | Shape::Map(m) => self.visit(&m),
            }
        }
    }
}

// === impl Comments ===

impl Comments {
    pub fn new(pool: &DescriptorPool) -> Comments {
        let mut out = HashMap::new();
        for file in pool.files() {
            let proto = file.file_descriptor_proto();
            let Some(info) = &proto.source_code_info else {
                continue;
            };
            for location in &info.location {
                let text = location.leading_comments().trim();
                if !text.is_empty() {
                    out.insert((file.name().to_owned(), location.path.clone()), clean(text));
                }
            }
        }
        Comments(out)
    }

    /// The comment at `path` in `file`.
    pub fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.0
            .get(&(file.to_owned(), path.to_vec()))
            .map(String::as_str)
    }

    pub fn message(&self, m: &MessageDescriptor) -> Option<&str> {
        self.get(m.parent_file().name(), m.path())
    }

    pub fn field(&self, f: &FieldDescriptor) -> Option<&str> {
        self.get(f.parent_file().name(), f.path())
    }
}

/// A comment's lines without their common leading space.
fn clean(text: &str) -> String {
    text.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `T!` when `non_null`.
pub fn non_null(ty: TypeRef, non_null: bool) -> TypeRef {
    if non_null {
        TypeRef::NonNull(Box::new(ty))
    } else {
        ty
    }
}

/// The output type of one element of `field` and how it is converted.
fn element(names: &Names, field: &FieldDescriptor) -> (TypeRef, Out) {
    match shape(field) {
        Shape::Scalar(s) => (TypeRef::named(s), Out::Scalar),
        Shape::Enum(e) => (TypeRef::named(names.of(e.full_name())), Out::Enum(e)),
        Shape::Wkt(w) => (w.type_ref(), Out::Wkt(w)),
        Shape::Object(m) => (TypeRef::named(names.of(m.full_name())), Out::Object),
        Shape::Map(entry) => (
            TypeRef::named(names.of(entry.full_name())),
            Out::Entry(entry),
        ),
    }
}

/// The output field for `field`: `[T!]!` for lists and maps, `T` for fields
/// with presence (messages, `optional`, oneof members), `T!` otherwise.
fn output_field(
    names: &Names,
    comments: &Comments,
    field: &FieldDescriptor,
    force_non_null: bool,
) -> Field {
    let (item, out) = element(names, field);
    let ty = if field.is_list() || field.is_map() {
        TypeRef::NonNull(Box::new(TypeRef::List(Box::new(non_null(item, true)))))
    } else {
        non_null(item, force_non_null || !field.supports_presence())
    };
    let plan = Arc::new(OutField {
        field: field.clone(),
        out,
    });
    let field_def = Field::new(field.json_name(), ty, move |ctx| {
        output::resolve_field(&plan, ctx)
    });
    match comments.field(field) {
        Some(text) => field_def.description(text),
        None => field_def,
    }
}

/// The object for `message`, plus a union and its member objects per oneof.
pub fn object(names: &Names, comments: &Comments, message: &MessageDescriptor) -> Vec<Type> {
    let name = names.of(message.full_name());
    let mut object = Object::new(&name);
    if let Some(text) = comments.message(message) {
        object = object.description(text);
    }
    for field in message.fields() {
        object = object.field(output_field(names, comments, &field, false));
    }
    if message.fields().len() == 0 {
        object = object.field(super::empty_field());
    }
    let mut out = Vec::new();
    for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
        let union_name = names.join(&name, oneof.name());
        let mut union = Union::new(&union_name);
        let mut members = Vec::new();
        for field in oneof.fields() {
            let member = names.join(&union_name, field.name());
            union = union.possible_type(&member);
            out.push(Type::Object(
                Object::new(&member).field(output_field(names, comments, &field, true)),
            ));
            members.push((field, member));
        }
        let members = Arc::new(members);
        let field_name = oneof_field_name(message, &oneof);
        object = object.field(
            Field::new(field_name, TypeRef::named(&union_name), move |ctx| {
                output::resolve_oneof(&members, ctx)
            })
            .description(format!(
                "The member of oneof `{}` that is set, if any.",
                oneof.name()
            )),
        );
        out.push(Type::Union(union));
    }
    out.push(Type::Object(object));
    out
}

/// A GraphQL enum for a proto enum: the proto value names (aliases and the
/// names `true`, `false`, `null`, which GraphQL reserves, left out).
pub fn enumeration(names: &Names, comments: &Comments, desc: &EnumDescriptor) -> Type {
    let mut out = Enum::new(names.of(desc.full_name()));
    if let Some(text) = comments.get(desc.parent_file().name(), desc.path()) {
        out = out.description(text);
    }
    let mut seen = BTreeSet::new();
    for value in desc.values() {
        let name = value.name();
        if matches!(name, "true" | "false" | "null") || !seen.insert(name.to_owned()) {
            continue;
        }
        let mut item = EnumItem::new(name);
        if let Some(text) = comments.get(value.parent_file().name(), value.path()) {
            item = item.description(text);
        }
        out = out.item(item);
    }
    Type::Enum(out)
}
