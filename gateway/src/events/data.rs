//! An event's `data`: which message of the call (the request, the response,
//! one of their message fields, or none), in which encoding.

use std::borrow::Cow;

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage};

use super::Occurrence;
use crate::config::events::DataFormat;

/// A compiled `data:` selection.
#[derive(Clone, Debug)]
pub struct DataSpec {
    root: Root,
    /// Singular message fields from the root to the selected message.
    path: Vec<FieldDescriptor>,
    pub format: DataFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    Request,
    Response,
    None,
}

/// The data of one event.
pub enum Data<'a> {
    /// A message, encoded per the spec's format.
    Message(Cow<'a, DynamicMessage>, DataFormat),
    /// Already-rendered JSON (a failed call's status, an inbound
    /// webhook's body).
    Json(Cow<'a, [u8]>),
    /// A message already rendered as JSON with the route's options (the
    /// REST answer, reused rather than rendered again), and its type.
    Rendered {
        json: &'a [u8],
        message: MessageDescriptor,
    },
    /// No data.
    None,
}

// === impl DataSpec ===

impl DataSpec {
    /// Compiles `text` (`response`, `request`, `response.<field>`…, `none`)
    /// for a method taking `input` and returning `output`.
    pub fn compile(
        text: &str,
        format: DataFormat,
        input: &MessageDescriptor,
        output: &MessageDescriptor,
    ) -> Result<DataSpec, String> {
        let (root, path) = match text.split_once('.') {
            Some((root, path)) => (root, Some(path)),
            None => (text, None),
        };
        let (root, message) = match root {
            "request" => (Root::Request, input),
            "response" => (Root::Response, output),
            "none" if path.is_none() => (Root::None, input),
            _ => {
                return Err(format!(
                    "{text:?}: expected `response`, `request`, `response.<field>`, `request.<field>` or `none`"
                ));
            }
        };
        let path = match path {
            Some(path) => message_path(message, path).map_err(|e| format!("{text:?}: {e}"))?,
            None => Vec::new(),
        };
        Ok(DataSpec { root, path, format })
    }

    /// The data for one call.
    pub fn select<'a>(&self, call: &Occurrence<'a>) -> Data<'a> {
        let message = match (self.root, call.outcome) {
            (Root::None, _) => return Data::None,
            (Root::Request, _) => call.request,
            (Root::Response, Ok(response)) => {
                // The whole reply as JSON: the client's rendering serves.
                if self.path.is_empty()
                    && matches!(self.format, DataFormat::Json)
                    && let Some(json) = call.response_json
                {
                    return Data::Rendered {
                        json,
                        message: response.descriptor(),
                    };
                }
                response
            }
            (Root::Response, Err(error)) => return Data::Json(Cow::Owned(error.body_json())),
        };
        let mut current = Cow::Borrowed(message);
        for field in &self.path {
            let next = match current.get_field(field).as_message() {
                Some(next) => next.clone(),
                None => return Data::None,
            };
            current = Cow::Owned(next);
        }
        Data::Message(current, self.format)
    }
}

/// `a.b` as singular message fields.
fn message_path(message: &MessageDescriptor, path: &str) -> Result<Vec<FieldDescriptor>, String> {
    let mut current = message.clone();
    let mut fields = Vec::new();
    for name in path.split('.') {
        let field = current
            .get_field_by_name(name)
            .ok_or_else(|| format!("{} has no field `{name}`", current.full_name()))?;
        match field.kind() {
            Kind::Message(next) if !field.is_list() && !field.is_map() => current = next,
            _ => {
                return Err(format!(
                    "`{name}` is not a singular message field; data must be a message"
                ));
            }
        }
        fields.push(field);
    }
    Ok(fields)
}
