//! Plugin `headers`: set, add or remove request headers before the route's
//! next stage and response headers on the way back.
//!
//! Request edits happen before the request goes on (so they can feed the
//! route's header forwarding to the upstream); response edits apply to every
//! answer that passes back through this stage, errors included.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{Plugin, PluginError};
use crate::stage::{BoxFuture, HttpService, Request, Response};

/// Configuration of the `headers` plugin.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// Edits to the request.
    #[serde(default)]
    pub request: HeaderEdits,
    /// Edits to the response.
    #[serde(default)]
    pub response: HeaderEdits,
}

/// One direction's edits, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    /// Header names to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Headers to set, replacing any value already there.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers to append, keeping values already there.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

/// The built plugin.
pub struct Headers {
    request: Compiled,
    response: Compiled,
}

#[derive(Clone, Debug, Default)]
struct Compiled {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

// === impl Headers ===

impl Plugin for Headers {
    const NAME: &'static str = "headers";
    type Config = HeadersConfig;

    async fn new(config: HeadersConfig) -> Result<Self, PluginError> {
        let err = |message: String| PluginError {
            plugin: Self::NAME,
            message,
        };
        Ok(Headers {
            request: Compiled::new(&config.request, "request").map_err(err)?,
            response: Compiled::new(&config.response, "response").map_err(err)?,
        })
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        let (request, response) = (self.request.clone(), self.response.clone());
        HttpService::new(tower::service_fn(move |mut req: Request| -> BoxFuture<_> {
            request.apply(req.headers_mut());
            let response = response.clone();
            let mut inner = inner.clone();
            Box::pin(async move {
                // `ready` then `call`, not `oneshot` (rust-lang/rust#102211).
                tower::ServiceExt::ready(&mut inner).await?;
                let mut res: Response = tower::Service::call(&mut inner, req).await?;
                response.apply(res.headers_mut());
                Ok(res)
            })
        }))
    }
}

// === impl Compiled ===

impl Compiled {
    fn new(edits: &HeaderEdits, side: &str) -> Result<Compiled, String> {
        let name = |n: &String| {
            HeaderName::try_from(n.as_str())
                .map_err(|_| format!("{side}: invalid header name {n:?}"))
        };
        let pair = |(n, v): (&String, &String)| {
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("{side}: invalid value for header {n:?}"))?;
            Ok::<_, String>((name(n)?, value))
        };
        Ok(Compiled {
            remove: edits.remove.iter().map(name).collect::<Result<_, _>>()?,
            set: edits.set.iter().map(pair).collect::<Result<_, _>>()?,
            add: edits.add.iter().map(pair).collect::<Result<_, _>>()?,
        })
    }

    fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::empty_body;
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn echo() -> HttpService {
        HttpService::new(tower::service_fn(|req: Request| async move {
            let mut res = Response::new(empty_body());
            for (name, value) in req.headers() {
                res.headers_mut().append(
                    HeaderName::try_from(format!("seen-{name}")).unwrap(),
                    value.clone(),
                );
            }
            res.headers_mut()
                .insert("server", HeaderValue::from_static("upstream/1.0"));
            Ok::<_, Infallible>(res)
        }))
    }

    fn edits(remove: &[&str], set: &[(&str, &str)], add: &[(&str, &str)]) -> HeaderEdits {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        HeaderEdits {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            set: map(set),
            add: map(add),
        }
    }

    #[tokio::test]
    async fn edits_requests_and_responses() {
        let plugin = Headers::new(HeadersConfig {
            request: edits(&["x-internal"], &[("x-env", "prod")], &[("x-tag", "b")]),
            response: edits(&["server"], &[("cache-control", "no-store")], &[]),
        })
        .await
        .unwrap();
        let req = http::Request::builder()
            .header("x-internal", "secret")
            .header("x-env", "dev")
            .header("x-tag", "a")
            .body(empty_body())
            .unwrap();
        let res = plugin.wrap(echo()).oneshot(req).await.unwrap();
        let h = res.headers();
        assert!(
            h.get("seen-x-internal").is_none(),
            "removed before the next stage"
        );
        assert_eq!(h["seen-x-env"], "prod");
        let tags: Vec<_> = h.get_all("seen-x-tag").iter().collect();
        assert_eq!(tags, ["a", "b"]);
        assert!(h.get("server").is_none());
        assert_eq!(h["cache-control"], "no-store");
    }

    #[tokio::test]
    async fn invalid_names_and_values_are_refused_at_load() {
        let bad_name = HeadersConfig {
            request: edits(&["bad name"], &[], &[]),
            ..Default::default()
        };
        let err = Headers::new(bad_name).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("request: invalid header name \"bad name\""),
            "{err}"
        );
        let bad_value = HeadersConfig {
            response: edits(&[], &[("x-a", "line\nbreak")], &[]),
            ..Default::default()
        };
        let err = Headers::new(bad_value).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("response: invalid value for header \"x-a\""),
            "{err}"
        );
    }
}
