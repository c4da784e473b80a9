//! Reading `google.api.http` annotations from method descriptors.

use http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

/// One HTTP binding of a method, as written in its annotation (or implied for
/// an unannotated method exposed at `POST /pkg.Service/Method`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub method: Method,
    pub template: String,
    /// `""` (no body), `"*"`, or a request field name.
    pub body: String,
    /// `""` (the whole response) or a response field name.
    pub response_body: String,
}

/// An annotation that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{rpc}: {message}")]
pub struct RuleError {
    pub rpc: String,
    pub message: String,
}

/// The bindings of `method`: the primary rule then its `additional_bindings`.
/// An empty list means the method has no annotation.
pub fn rules_of(
    pool: &DescriptorPool,
    method: &MethodDescriptor,
) -> Result<Vec<RuleSpec>, RuleError> {
    let Some(ext) = pool.get_extension_by_name("google.api.http") else {
        return Ok(Vec::new());
    };
    let options = method.options();
    if !options.has_extension(&ext) {
        return Ok(Vec::new());
    }
    let value = options.get_extension(&ext);
    let Some(rule) = value.as_message() else {
        return Ok(Vec::new());
    };
    let err = |message: String| RuleError {
        rpc: method.full_name().to_owned(),
        message,
    };
    let mut out = vec![spec_of(rule).map_err(err)?];
    if let Some(Value::List(extra)) = rule.get_field_by_name("additional_bindings").as_deref() {
        for nested in extra.iter().filter_map(Value::as_message) {
            if nested
                .get_field_by_name("additional_bindings")
                .is_some_and(|v| v.as_list().is_some_and(|l| !l.is_empty()))
            {
                return Err(err(
                    "additional_bindings must not nest further additional_bindings".into(),
                ));
            }
            out.push(spec_of(nested).map_err(err)?);
        }
    }
    Ok(out)
}

/// The binding implied for an unannotated method: `POST /pkg.Service/Method`, body `*`.
pub fn default_rule(method: &MethodDescriptor) -> RuleSpec {
    RuleSpec {
        method: Method::POST,
        template: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        body: "*".into(),
        response_body: String::new(),
    }
}

fn spec_of(rule: &DynamicMessage) -> Result<RuleSpec, String> {
    let text = |name: &str| -> String {
        rule.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut found = None;
    for (field, method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        if rule.has_field_by_name(field) {
            found = Some((method, text(field)));
        }
    }
    if rule.has_field_by_name("custom") {
        let custom = rule.get_field_by_name("custom");
        let custom = custom.as_deref().and_then(Value::as_message);
        let kind = custom
            .and_then(|c| c.get_field_by_name("kind"))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let path = custom
            .and_then(|c| c.get_field_by_name("path"))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let method = Method::from_bytes(kind.as_bytes())
            .map_err(|_| format!("custom HTTP method {kind:?} is not a valid method"))?;
        found = Some((method, path));
    }
    let (method, template) = found.ok_or("the HttpRule sets no pattern (get, post, …)")?;
    Ok(RuleSpec {
        method,
        template,
        body: text("body"),
        response_body: text("response_body"),
    })
}
