//! `google.api.http` (HttpRule) path templates: parsing and single-template matching.
//!
//! ```text
//! Template  = "/" Segments [ Verb ] ;
//! Segments  = Segment { "/" Segment } ;
//! Segment   = "*" | "**" | LITERAL | Variable ;
//! Variable  = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb      = ":" LITERAL ;
//! ```
//!
//! Choices where HttpRule leaves room:
//! * `LITERAL` is one or more of `A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) + , ; @` or `%XX`, stored
//!   percent-decoded. A raw `:` is reserved for the verb and `=`, `*`, `{`, `}` would make the
//!   grammar ambiguous; write them as `%3A` etc. if a literal really needs them.
//! * The bare template `/` is accepted and matches only the root path.
//! * IDENT is `[A-Za-z_][A-Za-z0-9_]*`. Binding the same field twice, or a field and one of its
//!   sub-fields (`{a}` and `{a.b}`), is rejected.
//!
//! Request matching (shared with [`crate::routing::path_router`]):
//! * The raw, still percent-encoded path is split on `/` before any decoding, so `%2F` never
//!   separates segments. `/` is the only path with zero segments.
//! * An empty segment (`//`, or a trailing `/`) matches nothing — not a literal, `*` nor `**`.
//!   So `/v1/users/` matches neither `/v1/users` nor `/v1/users/{id}`; no normalisation.
//! * Literals and verbs compare against the percent-decoded request text.
//! * Only a template with a verb looks for one: the text after the last `:` of the last segment
//!   (raw, so `%3A` is never a separator). Without a template verb, `:` is ordinary data.
//! * Values: a single-segment variable is fully percent-decoded; a multi-segment one (more than
//!   one segment, or `**`) is decoded except `%2F`/`%2f`, which stay `%2F` (RFC 6570 reserved
//!   expansion, as HttpRule specifies), and its segments are joined with `/`.
//! * Malformed `%` escapes anywhere in the path, or a value that is not UTF-8 once decoded, give
//!   a [`PathError`] (a 400), never a silent non-match.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use self::parser::Parser;

mod parser;

/// A parsed HttpRule path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
    variables: Vec<TemplateVariable>,
    verb: Option<String>,
}

/// One segment of a template once variables are flattened away.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Percent-decoded literal text.
    Literal(String),
    /// `*`: exactly one non-empty segment.
    Wildcard,
    /// `**`: zero or more non-empty segments; always the template's last segment.
    MultiWildcard,
}

/// A `{field.path=...}` binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVariable {
    pub field_path: Vec<String>,
    name: String,
    segments: Range<usize>,
    multi_segment: bool,
    open_ended: bool,
}

/// Why a template was rejected; `Display` names the template and the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    template: String,
    position: usize,
    reason: TemplateErrorReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateErrorReason {
    MissingLeadingSlash,
    EmptySegment,
    UnexpectedChar(char),
    UnexpectedEnd,
    UnmatchedCloseBrace,
    UnclosedVariable,
    NestedVariable,
    InvalidFieldPath,
    DuplicateVariable(String),
    OverlappingVariables(String, String),
    MultiWildcardNotLast,
    EmptyVerb,
    InvalidPercentEncoding,
}

/// A request path that cannot be matched at all; distinct from "no route" so callers answer 400.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// A `%` not followed by two hex digits, at this byte offset of the path.
    InvalidPercentEncoding { position: usize },
    /// The captured value of this variable (dotted field path) is not UTF-8 once decoded.
    InvalidUtf8 { variable: String },
}

/// A request path whose escapes were validated, without its leading `/`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestPath<'a> {
    body: &'a str,
}

/// Escapes literal text in [`PathTemplate::shape`] so it cannot be mistaken for `*`, `/` or `:`.
const SHAPE_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'*')
    .add(b'{')
    .add(b'}');

// === impl PathTemplate ===

impl PathTemplate {
    pub fn parse(template: &str) -> Result<PathTemplate, TemplateError> {
        Parser::new(template).run()
    }

    pub fn variables(&self) -> &[TemplateVariable] {
        &self.variables
    }

    /// The custom verb, percent-decoded.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Two templates with the same shape match exactly the same requests: variable names and
    /// boundaries are erased (`/v1/{name=shelves/*}` and `/v1/shelves/{id}` both give
    /// `/v1/shelves/*`), literals are canonically escaped and the verb is kept.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(text) => out.extend(utf8_percent_encode(text, SHAPE_ESCAPE)),
                Segment::Wildcard => out.push('*'),
                Segment::MultiWildcard => out.push_str("**"),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.extend(utf8_percent_encode(verb, SHAPE_ESCAPE));
        }
        out
    }

    /// Match one path (no query). `Ok(None)` = no match; values are in `variables()` order.
    pub fn matches(&self, path: &str) -> Result<Option<Vec<String>>, PathError> {
        let Some(request) = RequestPath::parse(path)? else {
            return Ok(None);
        };
        let body = match &self.verb {
            None => request.body(),
            Some(verb) => match request.split_verb() {
                Some((body, raw_verb)) if decoded_eq(raw_verb, verb) => body,
                _ => return Ok(None),
            },
        };
        if !self.matches_body(body) {
            return Ok(None);
        }
        self.captures(body).map(Some)
    }

    /// Whether the segments (verb already stripped, no leading `/`) fit this template.
    pub(crate) fn matches_body(&self, body: &str) -> bool {
        let mut rest = first_rest(body);
        for segment in &self.segments {
            if *segment == Segment::MultiWildcard {
                return all_non_empty(rest);
            }
            let Some(current) = rest else {
                return false;
            };
            let (raw, tail) = next_segment(current);
            let fits = match segment {
                Segment::Literal(text) => decoded_eq(raw, text),
                _ => !raw.is_empty(),
            };
            if !fits {
                return false;
            }
            rest = tail;
        }
        rest.is_none()
    }

    /// Decoded variable values for a body already known to match.
    pub(crate) fn captures(&self, body: &str) -> Result<Vec<String>, PathError> {
        self.variables
            .iter()
            .map(|var| {
                let end = (!var.open_ended).then_some(var.segments.end);
                let raw = segment_span(body, var.segments.start, end);
                let decoded = if var.multi_segment {
                    decode_reserved(raw)
                } else {
                    percent_decode_str(raw)
                        .decode_utf8()
                        .map(Cow::into_owned)
                        .ok()
                };
                decoded.ok_or_else(|| PathError::InvalidUtf8 {
                    variable: var.name.clone(),
                })
            })
            .collect()
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for PathTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathTemplate::parse(s)
    }
}

// === impl TemplateVariable ===

impl TemplateVariable {
    /// The dotted field path, e.g. `user.id`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Indices into [`PathTemplate::segments`] covered by this variable.
    pub fn segments(&self) -> Range<usize> {
        self.segments.clone()
    }

    /// Multi-segment values keep `%2F` escaped; single-segment ones are fully decoded.
    pub fn is_multi_segment(&self) -> bool {
        self.multi_segment
    }
}

// === impl TemplateError ===

impl TemplateError {
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Byte offset into the template.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn reason(&self) -> &TemplateErrorReason {
        &self.reason
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid path template `{}` at byte {}: {}",
            self.template, self.position, self.reason
        )
    }
}

impl std::error::Error for TemplateError {}

impl fmt::Display for TemplateErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingLeadingSlash => f.write_str("a template must start with '/'"),
            Self::EmptySegment => f.write_str("empty segment"),
            Self::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            Self::UnexpectedEnd => f.write_str("unexpected end of template"),
            Self::UnmatchedCloseBrace => f.write_str("'}' without a matching '{'"),
            Self::UnclosedVariable => f.write_str("'{' is never closed"),
            Self::NestedVariable => f.write_str("variables cannot be nested"),
            Self::InvalidFieldPath => {
                f.write_str("expected a field name ([A-Za-z_][A-Za-z0-9_]*, joined by '.')")
            }
            Self::DuplicateVariable(name) => write!(f, "field `{name}` is bound twice"),
            Self::OverlappingVariables(a, b) => {
                write!(f, "fields `{a}` and `{b}` overlap (one contains the other)")
            }
            Self::MultiWildcardNotLast => f.write_str("'**' must be the last segment"),
            Self::EmptyVerb => f.write_str("empty verb after ':'"),
            Self::InvalidPercentEncoding => {
                f.write_str("invalid percent-encoding (need %XX decoding to UTF-8)")
            }
        }
    }
}

// === impl PathError ===

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPercentEncoding { position } => {
                write!(
                    f,
                    "invalid percent-encoding at byte {position} of the request path"
                )
            }
            Self::InvalidUtf8 { variable } => {
                write!(
                    f,
                    "path variable `{variable}` is not valid UTF-8 once percent-decoded"
                )
            }
        }
    }
}

impl std::error::Error for PathError {}

// === impl RequestPath ===

impl<'a> RequestPath<'a> {
    /// `Ok(None)` when the path does not start with `/` (e.g. `*`): it matches no template.
    pub(crate) fn parse(path: &'a str) -> Result<Option<Self>, PathError> {
        let Some(body) = path.strip_prefix('/') else {
            return Ok(None);
        };
        let bytes = path.as_bytes();
        if let Some(position) = (0..bytes.len()).find(|&i| bytes[i] == b'%' && !is_escape(bytes, i))
        {
            return Err(PathError::InvalidPercentEncoding { position });
        }
        Ok(Some(Self { body }))
    }

    /// The whole path after the leading `/`, for templates without a verb.
    pub(crate) fn body(&self) -> &'a str {
        self.body
    }

    /// `(segments, raw verb)` split at the last `:` of the last segment, if that leaves the
    /// segment non-empty (`/v1/:verb` has an empty segment, which matches nothing).
    pub(crate) fn split_verb(&self) -> Option<(&'a str, &'a str)> {
        let last_start = self.body.rfind('/').map_or(0, |i| i + 1);
        let colon = last_start + self.body[last_start..].rfind(':')?;
        (colon > last_start).then(|| (&self.body[..colon], &self.body[colon + 1..]))
    }
}

// === private helpers (crate-visible for the router) ===

/// Remaining segments of a body; `None` once none are left (the root path has none).
pub(crate) fn first_rest(body: &str) -> Option<&str> {
    (!body.is_empty()).then_some(body)
}

/// Splits off the first segment; the tail is `None` when it was the last one.
pub(crate) fn next_segment(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((segment, tail)) => (segment, Some(tail)),
        None => (rest, None),
    }
}

/// `**` may take the remaining segments only if none of them is empty.
pub(crate) fn all_non_empty(rest: Option<&str>) -> bool {
    rest.is_none_or(|rest| !rest.split('/').any(str::is_empty))
}

/// Compares raw request text with decoded template text without allocating.
pub(crate) fn decoded_eq(raw: &str, decoded: &str) -> bool {
    if raw.contains('%') {
        percent_decode_str(raw).eq(decoded.bytes())
    } else {
        raw == decoded
    }
}

fn is_escape(bytes: &[u8], at: usize) -> bool {
    bytes.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
        && bytes.get(at + 2).is_some_and(u8::is_ascii_hexdigit)
}

/// Raw text of segments `first..end` (`None` = to the end), without the separating slashes
/// around it; empty when `**` matched nothing.
fn segment_span(body: &str, first: usize, end: Option<usize>) -> &str {
    let mut from = (first == 0).then_some(0);
    let mut to = body.len();
    let mut index = 0;
    for (at, _) in body.match_indices('/') {
        index += 1;
        if index == first {
            from = Some(at + 1);
        }
        if Some(index) == end {
            to = at;
            break;
        }
    }
    from.map_or("", |from| &body[from..to])
}

/// Percent-decodes everything except `%2F`, which stays (upper-cased) so segment boundaries
/// inside a multi-segment value remain distinguishable from escaped slashes.
fn decode_reserved(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&c| (c as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                let value = (high * 16 + low) as u8;
                if value == b'/' {
                    out.extend_from_slice(b"%2F");
                } else {
                    out.push(value);
                }
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
