//! Plugin `cors`: Cross-Origin Resource Sharing for browser clients, with
//! tower-http's `CorsLayer`. Preflight requests (`OPTIONS` with
//! `Access-Control-Request-Method`) are answered here, without reaching the
//! upstream; the router hands `OPTIONS` on any existing path to the route's
//! stack so this plugin sees them.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use schemars::JsonSchema;
use serde::Deserialize;
use tower::Layer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::registry::{Plugin, PluginError};
use crate::stage::HttpService;

/// Configuration of the `cors` plugin.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call, e.g. `https://app.example.com`, or `["*"]` for any
    /// (not allowed together with `allow_credentials`).
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for; `["*"]` for any. Default: GET, POST, PUT, PATCH, DELETE.
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for; `["*"]` for any. Default: content-type, authorization.
    #[serde(default = "default_headers")]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Allow cookies and HTTP authentication on cross-origin calls.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer, in seconds.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
}

/// The built plugin.
pub struct Cors {
    layer: CorsLayer,
}

fn default_methods() -> Vec<String> {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}

fn default_headers() -> Vec<String> {
    ["content-type", "authorization"].map(String::from).to_vec()
}

fn default_max_age() -> u64 {
    600
}

// === impl Cors ===

impl Plugin for Cors {
    const NAME: &'static str = "cors";
    type Config = CorsConfig;

    async fn new(config: CorsConfig) -> Result<Self, PluginError> {
        let err = |message: String| PluginError {
            plugin: Self::NAME,
            message,
        };
        let wildcard = |list: &[String]| list.iter().any(|v| v == "*");
        if config.allow_origins.is_empty() {
            return Err(err("allow_origins is empty: list origins, or \"*\"".into()));
        }
        if config.allow_credentials {
            for (field, list) in [
                ("allow_origins", &config.allow_origins),
                ("allow_methods", &config.allow_methods),
                ("allow_headers", &config.allow_headers),
                ("expose_headers", &config.expose_headers),
            ] {
                if wildcard(list) {
                    return Err(err(format!(
                        "{field} cannot be \"*\" with allow_credentials (browsers reject it)"
                    )));
                }
            }
        }
        let origins = if wildcard(&config.allow_origins) {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                parse_all(&config.allow_origins, |o| {
                    HeaderValue::from_str(o.trim_end_matches('/'))
                        .map_err(|_| format!("invalid origin {o:?}"))
                })
                .map_err(err)?,
            )
        };
        let methods = if wildcard(&config.allow_methods) {
            AllowMethods::any()
        } else {
            AllowMethods::list(
                parse_all(&config.allow_methods, |m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| format!("invalid method {m:?}"))
                })
                .map_err(err)?,
            )
        };
        let header = |h: &String| {
            HeaderName::try_from(h.as_str()).map_err(|_| format!("invalid header name {h:?}"))
        };
        let headers = if wildcard(&config.allow_headers) {
            AllowHeaders::any()
        } else {
            AllowHeaders::list(parse_all(&config.allow_headers, header).map_err(err)?)
        };
        let expose = if wildcard(&config.expose_headers) {
            ExposeHeaders::any()
        } else {
            ExposeHeaders::list(parse_all(&config.expose_headers, header).map_err(err)?)
        };
        let layer = CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(methods)
            .allow_headers(headers)
            .expose_headers(expose)
            .allow_credentials(config.allow_credentials)
            .max_age(Duration::from_secs(config.max_age_seconds));
        Ok(Cors { layer })
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        HttpService::new(self.layer.layer(inner))
    }
}

fn parse_all<T>(
    items: &[String],
    parse: impl Fn(&String) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    items.iter().map(parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{Request, Response, empty_body};
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn config(origins: &[&str], credentials: bool) -> CorsConfig {
        CorsConfig {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: default_methods(),
            allow_headers: default_headers(),
            expose_headers: vec!["x-request-id".into()],
            allow_credentials: credentials,
            max_age_seconds: 60,
        }
    }

    fn handler() -> HttpService {
        HttpService::new(tower::service_fn(|_: Request| async {
            Ok::<_, Infallible>(Response::new(empty_body()))
        }))
    }

    #[tokio::test]
    async fn answers_a_preflight_for_an_allowed_origin_without_calling_inner() {
        let svc = Cors::new(config(&["https://app.example.com"], true))
            .await
            .unwrap()
            .wrap(HttpService::new(tower::service_fn(|_: Request| async {
                panic!("preflight reached the handler")
            })));
        let req = http::Request::builder()
            .method(Method::OPTIONS)
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(empty_body())
            .unwrap();
        let res: Response = svc.oneshot(req).await.unwrap();
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(res.headers()["access-control-allow-credentials"], "true");
        assert!(
            res.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert_eq!(res.headers()["access-control-max-age"], "60");
    }

    #[tokio::test]
    async fn a_simple_request_from_an_unlisted_origin_gets_no_allow_origin() {
        let svc = Cors::new(config(&["https://app.example.com"], false))
            .await
            .unwrap()
            .wrap(handler());
        let req = http::Request::builder()
            .header("origin", "https://evil.example.net")
            .body(empty_body())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert!(res.headers().get("access-control-allow-origin").is_none());
    }

    #[tokio::test]
    async fn wildcards_with_credentials_are_refused_at_load() {
        let err = Cors::new(config(&["*"], true)).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("allow_origins cannot be \"*\" with allow_credentials"),
            "{err}"
        );
        let err = Cors::new(config(&[], false)).await.err().unwrap();
        assert!(err.to_string().contains("allow_origins is empty"), "{err}");
        let mut bad = config(&["https://a.example"], false);
        bad.allow_methods = vec!["GE T".into()];
        assert!(
            Cors::new(bad)
                .await
                .err()
                .unwrap()
                .to_string()
                .contains("invalid method")
        );
    }
}
