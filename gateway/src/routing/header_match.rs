//! Route conditions on request headers (`routes[].match_headers`).
//!
//! Every condition of a route must hold for the route to match. Conditions
//! choose among the routes that bind the **same method and path template**
//! (on the same host): a canary route with `match_headers: [{name: x-canary,
//! exact: "1"}]` next to the plain route for the same paths. Routes with
//! conditions are tried first, in config order, then the route without any;
//! when none matches, the request gets 404. Conditions never make a request
//! fall back to another, less specific template: routing picks the template
//! first (see `path_router`), then the route.
//!
//! A header sent several times (or as a comma-separated list) matches when any
//! one of its field lines does; values are compared byte for byte (header
//! *names* are case-insensitive, values are not).

use http::{HeaderMap, HeaderName};

use crate::config::HeaderMatch;

/// One compiled condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatcher {
    name: HeaderName,
    rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Present(bool),
}

// === impl HeaderMatcher ===

impl HeaderMatcher {
    /// Compiles one `match_headers` entry; the error says what is wrong with it.
    pub fn compile(config: &HeaderMatch) -> Result<HeaderMatcher, String> {
        let name = HeaderName::try_from(config.name.as_str())
            .map_err(|_| format!("{:?} is not a valid header name", config.name))?;
        let rule = Rule::compile(config, "header")?;
        Ok(HeaderMatcher { name, rule })
    }

    /// Whether the request's headers satisfy this condition.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        let values = headers
            .get_all(&self.name)
            .iter()
            .flat_map(|v| split_list(v.as_bytes()));
        self.rule.holds(headers.contains_key(&self.name), values)
    }
}

// === impl Rule ===

impl Rule {
    /// The one rule of a condition on a header or cookie (`what`).
    fn compile(config: &HeaderMatch, what: &str) -> Result<Rule, String> {
        let name = &config.name;
        match (&config.exact, &config.prefix, config.present) {
            (Some(value), None, None) => Ok(Rule::Exact(value.as_bytes().into())),
            (None, Some(prefix), None) if !prefix.is_empty() => {
                Ok(Rule::Prefix(prefix.as_bytes().into()))
            }
            (None, Some(_), None) => {
                Err("`prefix` is empty and would match any value: use `present: true`".into())
            }
            (None, None, Some(present)) => Ok(Rule::Present(present)),
            (None, None, None) => Err(format!(
                "{what} {name} has no condition: set one of `exact`, `prefix` or `present`"
            )),
            _ => Err(format!(
                "{what} {name} has several conditions: set only one of `exact`, `prefix` or `present`"
            )),
        }
    }

    /// Whether the values found (none: absent) meet the rule.
    fn holds<'v>(&self, present: bool, mut values: impl Iterator<Item = &'v [u8]>) -> bool {
        match self {
            Rule::Present(want) => present == *want,
            Rule::Exact(want) => values.any(|v| v == &want[..]),
            Rule::Prefix(want) => values.any(|v| v.starts_with(want)),
        }
    }
}

/// One compiled condition on a request cookie (`Cookie: name=value`):
/// every `Cookie` field line is read, each `name=value` pair compared as
/// sent (byte for byte, no unquoting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieMatcher {
    name: Box<[u8]>,
    rule: Rule,
}

impl CookieMatcher {
    /// Compiles one cookie condition (`name` is the cookie's).
    pub fn compile(config: &HeaderMatch) -> Result<CookieMatcher, String> {
        let valid = !config.name.is_empty()
            && config
                .name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !valid {
            return Err(format!("{:?} is not a valid cookie name", config.name));
        }
        let rule = Rule::compile(config, "cookie")?;
        Ok(CookieMatcher {
            name: config.name.as_bytes().into(),
            rule,
        })
    }

    /// Whether the request's cookies satisfy this condition.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = cookies(headers, &self.name).peekable();
        let present = values.peek().is_some();
        self.rule.holds(present, values)
    }
}

/// The values of the cookie `name` in the request's `Cookie` field lines.
pub fn cookies<'h>(headers: &'h HeaderMap, name: &'h [u8]) -> impl Iterator<Item = &'h [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// Whether every condition holds (an empty list always does).
pub fn all_match(matchers: &[HeaderMatcher], headers: &HeaderMap) -> bool {
    matchers.iter().all(|m| m.matches(headers))
}

/// The elements of one field line: `a, b` is `a` and `b` (RFC 9110 list
/// syntax), and a value without commas is itself.
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|part| part.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(
        name: &str,
        exact: Option<&str>,
        prefix: Option<&str>,
        present: Option<bool>,
    ) -> HeaderMatch {
        HeaderMatch {
            name: name.into(),
            exact: exact.map(Into::into),
            prefix: prefix.map(Into::into),
            present,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::try_from(*name).unwrap(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn exact_matches_any_field_line_or_list_element_byte_for_byte() {
        let m = HeaderMatcher::compile(&cond("X-Canary", Some("1"), None, None)).unwrap();
        assert!(m.matches(&headers(&[("x-canary", "1")])));
        assert!(m.matches(&headers(&[("x-canary", "0"), ("x-canary", "1")])));
        assert!(m.matches(&headers(&[("x-canary", "0, 1")])));
        assert!(!m.matches(&headers(&[("x-canary", "10")])));
        assert!(!m.matches(&headers(&[])));
        let case = HeaderMatcher::compile(&cond("x-env", Some("Beta"), None, None)).unwrap();
        assert!(!case.matches(&headers(&[("x-env", "beta")])));
    }

    #[test]
    fn prefix_and_presence() {
        let prefix =
            HeaderMatcher::compile(&cond("user-agent", None, Some("mobile/"), None)).unwrap();
        assert!(prefix.matches(&headers(&[("user-agent", "mobile/2.1")])));
        assert!(!prefix.matches(&headers(&[("user-agent", "desktop mobile/2.1")])));
        let present = HeaderMatcher::compile(&cond("x-debug", None, None, Some(true))).unwrap();
        let absent = HeaderMatcher::compile(&cond("x-debug", None, None, Some(false))).unwrap();
        let with = headers(&[("x-debug", "")]);
        assert!(present.matches(&with) && !absent.matches(&with));
        assert!(!present.matches(&headers(&[])) && absent.matches(&headers(&[])));
    }

    #[test]
    fn cookie_conditions_read_every_cookie_line_and_pair() {
        let beta = CookieMatcher::compile(&cond("beta", Some("1"), None, None)).unwrap();
        assert!(beta.matches(&headers(&[("cookie", "beta=1")])));
        assert!(beta.matches(&headers(&[("cookie", "a=2; beta=1; c=3")])));
        assert!(beta.matches(&headers(&[("cookie", "a=2"), ("cookie", "beta=1")])));
        assert!(!beta.matches(&headers(&[("cookie", "beta=10; xbeta=1")])));
        assert!(!beta.matches(&headers(&[("x-beta", "1")])));
        let present = CookieMatcher::compile(&cond("uid", None, None, Some(true))).unwrap();
        assert!(present.matches(&headers(&[("cookie", "uid=")])));
        assert!(!present.matches(&headers(&[("cookie", "uidx=1")])));
        let prefix = CookieMatcher::compile(&cond("plan", None, Some("pro-"), None)).unwrap();
        assert!(prefix.matches(&headers(&[("cookie", "plan=pro-2")])));
        assert!(CookieMatcher::compile(&cond("a=b", Some("1"), None, None)).is_err());
        assert!(CookieMatcher::compile(&cond("", Some("1"), None, None)).is_err());
    }

    #[test]
    fn a_condition_needs_exactly_one_rule_and_a_valid_name() {
        for (bad, says) in [
            (cond("x", None, None, None), "no condition"),
            (cond("x", Some("1"), Some("1"), None), "several conditions"),
            (
                cond("bad header", Some("1"), None, None),
                "not a valid header name",
            ),
            (cond("x", None, Some(""), None), "`prefix` is empty"),
        ] {
            let err = HeaderMatcher::compile(&bad).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
