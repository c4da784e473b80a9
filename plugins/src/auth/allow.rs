//! `allow` rules: who may call a route once authenticated (else **403**).
//!
//! Every rule that is set must pass:
//!
//! - `consumers`: the consumer named by the authenticating method is one of
//!   those listed.
//! - `scopes`: the token carries **all** the listed scopes. A token's scopes
//!   are those of its `scope` claim (a space-separated string, RFC 8693
//!   §4.2) and of its `scp` claim (the same, or an array of strings, as
//!   some identity providers issue it), taken together.
//! - `claims`: for each listed claim, the token has it and its value is one
//!   of the listed values. Strings compare as they are; numbers and booleans
//!   as their JSON text (`3`, `true`; so `3` and `3.0` differ, and the
//!   config value `3` also matches the string claim `"3"`); an array claim
//!   passes when any of its elements does. Only top-level claims are looked
//!   at: `realm.role` names a claim called `realm.role`, not `role` inside
//!   `realm`.
//!
//! Scopes and claims come from a JSON Web Token only: an identity from
//! another method (`api_key`, `hmac`, `mtls`) has none, so a `scopes` or
//! `claims` rule refuses it. In `first_match` mode the identity is the first
//! method's that authenticated the request, even when a later method's token
//! would have passed; in `all` mode the claims are the first `jwt` method's.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::Identity;

/// Rules an authenticated identity must pass, else 403. Every rule that is
/// set must pass; `scopes` and `claims` refuse identities without a JSON
/// Web Token (API keys, HMAC signatures, client certificates).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowRules {
    /// Only these consumers (as named by the authenticating method, e.g. an
    /// API key's `consumer`) may call the route.
    #[serde(default)]
    pub consumers: Option<Vec<String>>,
    /// The token must carry **all** these scopes, e.g. `[orders:read,
    /// orders:write]`. A token's scopes are those of its `scope` and `scp`
    /// claims together, each a space-separated string or an array of strings.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Top-level claim name → accepted values: the token must have every
    /// listed claim, each equal to one of its values (strings as they are,
    /// numbers and booleans as their JSON text; an array claim passes when
    /// any element does), e.g. `{ tenant: [acme, globex], email_verified:
    /// [true] }`. Dotted names are not paths into nested objects.
    #[serde(default)]
    pub claims: Option<BTreeMap<String, Vec<ClaimValue>>>,
}

/// A claim value to accept: a string, a number or a boolean, held as the
/// text it is compared as (a number or boolean as its JSON text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimValue(pub String);

/// The built rules.
#[derive(Debug, Default)]
pub(super) struct Allow {
    consumers: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    claims: Vec<(String, Vec<String>)>,
}

// === impl ClaimValue ===

impl<'de> Deserialize<'de> for ClaimValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ClaimValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim value: a string, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClaimValue, E> {
                Ok(ClaimValue(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ClaimValue, E> {
                Ok(ClaimValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ClaimValue, E> {
                Ok(ClaimValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ClaimValue, E> {
                Ok(ClaimValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ClaimValue, E> {
                // The text serde_json gives the same number in a token.
                serde_json::Number::from_f64(v)
                    .map(|n| ClaimValue(n.to_string()))
                    .ok_or_else(|| E::custom("a claim value cannot be NaN or infinite"))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ClaimValue {
    fn schema_name() -> Cow<'static, str> {
        "ClaimValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A claim value: a string (compared as it is), a number or a boolean (compared as its JSON text).",
            "type": ["string", "number", "boolean"]
        })
    }
}

// === impl Allow ===

impl Allow {
    /// Validates the rules: each one set must be able to refuse someone and
    /// to admit someone.
    pub(super) fn new(rules: AllowRules) -> Result<Allow, String> {
        let AllowRules {
            consumers,
            scopes,
            claims,
        } = rules;
        if consumers.is_none() && scopes.is_none() && claims.is_none() {
            return Err(
                "`allow` sets no rule: list `consumers`, `scopes` or `claims`, or remove `allow`"
                    .into(),
            );
        }
        if consumers.as_ref().is_some_and(Vec::is_empty) {
            return Err(
                "`allow.consumers` is empty: no caller could pass; remove the route instead".into(),
            );
        }
        if let Some(scopes) = &scopes {
            if scopes.is_empty() {
                return Err(
                    "`allow.scopes` is empty: it would require nothing; list at least one scope, or remove it"
                        .into(),
                );
            }
            for (i, scope) in scopes.iter().enumerate() {
                if scope.is_empty() || scope.chars().any(char::is_whitespace) {
                    return Err(format!(
                        "`allow.scopes[{i}]`: {scope:?} is not one scope (scopes are non-empty and hold no spaces): list each scope separately"
                    ));
                }
            }
        }
        let claims = match claims {
            None => Vec::new(),
            Some(claims) if claims.is_empty() => {
                return Err(
                    "`allow.claims` is empty: it would require nothing; list at least one claim, or remove it"
                        .into(),
                );
            }
            Some(claims) => {
                let mut out = Vec::with_capacity(claims.len());
                for (name, values) in claims {
                    if name.is_empty() {
                        return Err("`allow.claims`: a claim name is empty".into());
                    }
                    if values.is_empty() {
                        return Err(format!(
                            "`allow.claims.{name}` is empty: no token could pass; list the accepted values"
                        ));
                    }
                    out.push((name, values.into_iter().map(|v| v.0).collect()));
                }
                out
            }
        };
        Ok(Allow {
            consumers,
            scopes,
            claims,
        })
    }

    /// Whether `identity` passes every rule.
    pub(super) fn allows(&self, identity: &Identity) -> bool {
        if let Some(consumers) = &self.consumers
            && !consumers.contains(&identity.consumer)
        {
            return false;
        }
        if self.scopes.is_none() && self.claims.is_empty() {
            return true;
        }
        let Some(claims) = identity.claims.as_deref() else {
            return false; // not a token: no scopes, no claims
        };
        if let Some(required) = &self.scopes {
            let granted = scopes(claims);
            if !required.iter().all(|s| granted.contains(&s.as_str())) {
                return false;
            }
        }
        self.claims.iter().all(|(name, accepted)| {
            claims
                .get(name)
                .is_some_and(|value| claim_matches(value, accepted))
        })
    }
}

/// The scopes a token grants: those of its `scope` and `scp` claims, each
/// a space-separated string or an array of strings. Anything else in them
/// (numbers, objects) grants nothing.
fn scopes(claims: &Map<String, Value>) -> Vec<&str> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_ascii_whitespace()),
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

/// Whether a claim's value is one of `accepted` (an array: any element).
fn claim_matches(value: &Value, accepted: &[String]) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| scalar_matches(item, accepted)),
        other => scalar_matches(other, accepted),
    }
}

/// Strings as they are, numbers and booleans as their JSON text; `null`,
/// objects and nested arrays never match.
fn scalar_matches(value: &Value, accepted: &[String]) -> bool {
    match value {
        Value::String(s) => accepted.iter().any(|a| a == s),
        Value::Number(n) => {
            let text = n.to_string();
            accepted.contains(&text)
        }
        Value::Bool(b) => accepted
            .iter()
            .any(|a| a == if *b { "true" } else { "false" }),
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}
