//! Persisted queries (`graphql.persisted_queries`): Apollo's Automatic
//! Persisted Queries protocol (`extensions.persistedQuery: {version: 1,
//! sha256Hash}`) with a bounded in-memory cache, or a safelist of
//! registered operations loaded from a file with the config.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::BuildError;
use super::limits::Refusal;
use super::lru::Lru;
use crate::config::graphql::{PersistedQueries, PersistedQueryMode};

/// The persisted-query side of an endpoint.
pub struct Persisted {
    mode: PersistedQueryMode,
    apq: Mutex<Lru<Arc<str>>>,
    /// Safelist: id (as written) and sha256 of each registered text → text.
    safelist: HashMap<String, Arc<str>>,
}

/// What a request's `query` and `extensions` come to.
pub struct Resolved {
    pub query: String,
    /// APQ: a hash and query to remember once the query passed the limits.
    pub register: Option<String>,
}

// === impl Persisted ===

impl Persisted {
    /// Loads the safelist file (relative to `base_dir`) in mode `safelist`.
    pub fn new(config: &PersistedQueries, base_dir: &Path) -> Result<Persisted, BuildError> {
        let key = ["persisted_queries", "file"];
        let mut safelist = HashMap::new();
        match (config.mode, &config.file) {
            (PersistedQueryMode::Safelist, None) => {
                return Err(BuildError::at(
                    key,
                    "mode `safelist` needs a `file` of registered operations",
                ));
            }
            (PersistedQueryMode::Safelist, Some(file)) => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    BuildError::at(key, format!("cannot read `{}`: {e}", path.display()))
                })?;
                for (id, body) in parse_safelist(&text)
                    .map_err(|e| BuildError::at(key, format!("`{}`: {e}", path.display())))?
                {
                    let body: Arc<str> = body.into();
                    safelist.insert(sha256_hex(&body), body.clone());
                    if let Some(id) = id {
                        safelist.insert(id.to_ascii_lowercase(), body);
                    }
                }
            }
            (_, Some(_)) => {
                return Err(BuildError::at(
                    key,
                    "`file` is only read with `mode: safelist`",
                ));
            }
            (_, None) => {}
        }
        if config.mode == PersistedQueryMode::Apq && config.max_entries == 0 {
            return Err(BuildError::at(
                ["persisted_queries", "max_entries"],
                "must be at least 1 with `mode: apq` (or set `mode: off`)",
            ));
        }
        Ok(Persisted {
            mode: config.mode,
            apq: Mutex::new(Lru::new(config.max_entries)),
            safelist,
        })
    }

    /// The query to run for a request's `query` and `extensions`.
    pub fn resolve(
        &self,
        query: Option<String>,
        extensions: Option<&serde_json::Value>,
    ) -> Result<Resolved, Refusal> {
        let query = query.filter(|q| !q.trim().is_empty());
        let hash = match extensions.and_then(|e| e.get("persistedQuery")) {
            None | Some(serde_json::Value::Null) => None,
            Some(ext) => Some(persisted_hash(ext, self.mode)?),
        };
        match self.mode {
            PersistedQueryMode::Off | PersistedQueryMode::Apq => match (hash, query) {
                (None, Some(query)) => Ok(Resolved {
                    query,
                    register: None,
                }),
                (None, None) => Err(bad("`query` is required")),
                (Some(hash), Some(query)) => {
                    if sha256_hex(&query) != hash {
                        return Err(Refusal {
                            code: "PERSISTED_QUERY_HASH_MISMATCH",
                            message: "provided sha256Hash does not match the query".to_owned(),
                        });
                    }
                    Ok(Resolved {
                        query,
                        register: Some(hash),
                    })
                }
                (Some(hash), None) => match self.apq.lock().expect("apq cache").get(&hash) {
                    Some(query) => Ok(Resolved {
                        query: query.to_string(),
                        register: None,
                    }),
                    None => Err(Refusal {
                        code: "PERSISTED_QUERY_NOT_FOUND",
                        message: "PersistedQueryNotFound".to_owned(),
                    }),
                },
            },
            PersistedQueryMode::Safelist => {
                let registered = match (&hash, &query) {
                    (_, Some(query)) => self
                        .safelist
                        .get(&sha256_hex(query))
                        .filter(|text| text.as_ref() == query.as_str()),
                    (Some(hash), None) => self.safelist.get(hash),
                    (None, None) => return Err(bad("`query` is required")),
                };
                match registered {
                    Some(text) => Ok(Resolved {
                        query: text.to_string(),
                        register: None,
                    }),
                    None => Err(Refusal {
                        code: "PERSISTED_QUERY_NOT_IN_SAFELIST",
                        message: "this operation is not in the safelist (graphql.persisted_queries.file); only registered operations run".to_owned(),
                    }),
                }
            }
        }
    }

    /// APQ: remembers `query` under `hash` (already checked to match).
    pub fn register(&self, hash: String, query: &str) {
        self.apq
            .lock()
            .expect("apq cache")
            .insert(hash, query.into());
    }
}

fn bad(message: &str) -> Refusal {
    Refusal {
        code: "BAD_REQUEST",
        message: message.to_owned(),
    }
}

/// `{version: 1, sha256Hash: "<hex>"}` → the hash in lower case.
fn persisted_hash(ext: &serde_json::Value, mode: PersistedQueryMode) -> Result<String, Refusal> {
    if mode == PersistedQueryMode::Off {
        return Err(Refusal {
            code: "PERSISTED_QUERY_NOT_SUPPORTED",
            message: "PersistedQueryNotSupported".to_owned(),
        });
    }
    let version = ext.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(1) {
        return Err(Refusal {
            code: "PERSISTED_QUERY_NOT_SUPPORTED",
            message: format!(
                "persisted query version {} is not supported (only 1)",
                ext.get("version").unwrap_or(&serde_json::Value::Null)
            ),
        });
    }
    match ext.get("sha256Hash").and_then(serde_json::Value::as_str) {
        Some(hash) if !hash.is_empty() => Ok(hash.to_ascii_lowercase()),
        _ => Err(bad(
            "`extensions.persistedQuery.sha256Hash` must be a string",
        )),
    }
}

/// The sha256 of `text` in lower-case hex, as APQ clients compute it.
pub fn sha256_hex(text: &str) -> String {
    switchyard_plugins::hex::encode(&Sha256::digest(text.as_bytes()))
}

/// A safelist file: `{"<id>": "<query>"}`, `["<query>", …]`, or an Apollo
/// persisted query manifest `{"operations": [{"id", "body"}, …]}`.
fn parse_safelist(text: &str) -> Result<Vec<(Option<String>, String)>, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let shape = || {
        "expected {\"<sha256>\": \"<query>\"}, [\"<query>\"] or {\"operations\": [{\"id\", \"body\"}]}"
            .to_owned()
    };
    let mut out = Vec::new();
    match json {
        serde_json::Value::Object(map) if map.contains_key("operations") => {
            let ops = map["operations"].as_array().ok_or_else(shape)?;
            for (i, op) in ops.iter().enumerate() {
                let body = op["body"]
                    .as_str()
                    .ok_or_else(|| format!("operations[{i}] has no `body` string"))?;
                out.push((op["id"].as_str().map(str::to_owned), body.to_owned()));
            }
        }
        serde_json::Value::Object(map) => {
            for (id, body) in map {
                let body = body
                    .as_str()
                    .ok_or_else(|| format!("the value of {id:?} is not a query string"))?;
                out.push((Some(id), body.to_owned()));
            }
        }
        serde_json::Value::Array(items) => {
            for (i, body) in items.iter().enumerate() {
                let body = body
                    .as_str()
                    .ok_or_else(|| format!("item {i} is not a query string"))?;
                out.push((None, body.to_owned()));
            }
        }
        _ => return Err(shape()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{parse_safelist, sha256_hex};

    #[test]
    fn safelist_files_come_in_three_shapes() {
        let map = parse_safelist(r#"{"abc": "{ a }"}"#).unwrap();
        assert_eq!(map, vec![(Some("abc".to_owned()), "{ a }".to_owned())]);
        let list = parse_safelist(r#"["{ a }", "{ b }"]"#).unwrap();
        assert_eq!(
            list,
            vec![(None, "{ a }".to_owned()), (None, "{ b }".to_owned())]
        );
        let manifest = parse_safelist(
            r#"{"format": "apollo-persisted-query-manifest", "version": 1,
                "operations": [{"id": "h", "name": "A", "type": "query", "body": "{ a }"}]}"#,
        )
        .unwrap();
        assert_eq!(manifest, vec![(Some("h".to_owned()), "{ a }".to_owned())]);
        assert!(parse_safelist(r#"{"x": 1}"#).unwrap_err().contains("\"x\""));
        assert!(parse_safelist("3").is_err());
    }

    #[test]
    fn hashes_are_lower_case_hex() {
        assert_eq!(
            sha256_hex("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }
}
