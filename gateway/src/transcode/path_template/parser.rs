//! Recursive-descent parser for the template grammar in the parent module's docs.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::{
    PathTemplate, Segment, TemplateError, TemplateErrorReason, TemplateVariable, is_escape,
};

pub(super) struct Parser<'a> {
    src: &'a str,
    pos: usize,
    segments: Vec<Segment>,
    variables: Vec<TemplateVariable>,
    /// Byte offset of a `**` already parsed; any later segment is an error pointing at it.
    multi_at: Option<usize>,
}

// === impl Parser ===

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            segments: Vec::new(),
            variables: Vec::new(),
            multi_at: None,
        }
    }

    pub(super) fn run(mut self) -> Result<PathTemplate, TemplateError> {
        if !self.src.starts_with('/') {
            return Err(self.error(0, TemplateErrorReason::MissingLeadingSlash));
        }
        self.pos = 1;
        if self.src != "/" {
            self.segments(false)?;
        }
        let verb = if self.peek() == Some(b':') {
            self.pos += 1;
            if self.peek().is_none() {
                return Err(self.error(self.pos, TemplateErrorReason::EmptyVerb));
            }
            Some(self.literal()?)
        } else {
            None
        };
        if self.peek().is_some() {
            return Err(self.unexpected());
        }
        Ok(PathTemplate {
            text: self.src.to_owned(),
            segments: self.segments,
            variables: self.variables,
            verb,
        })
    }

    fn segments(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        loop {
            self.segment(in_variable)?;
            if self.peek() != Some(b'/') {
                return Ok(());
            }
            self.pos += 1;
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        if let Some(at) = self.multi_at {
            return Err(self.error(at, TemplateErrorReason::MultiWildcardNotLast));
        }
        match self.peek() {
            None | Some(b'/' | b':') => {
                Err(self.error(self.pos, TemplateErrorReason::EmptySegment))
            }
            Some(b'}') if in_variable => {
                Err(self.error(self.pos, TemplateErrorReason::EmptySegment))
            }
            Some(b'{') if in_variable => {
                Err(self.error(self.pos, TemplateErrorReason::NestedVariable))
            }
            Some(b'{') => self.variable(),
            Some(b'*') if self.src[self.pos..].starts_with("**") => {
                self.multi_at = Some(self.pos);
                self.pos += 2;
                self.segments.push(Segment::MultiWildcard);
                Ok(())
            }
            Some(b'*') => {
                self.pos += 1;
                self.segments.push(Segment::Wildcard);
                Ok(())
            }
            Some(_) => {
                let literal = self.literal()?;
                self.segments.push(Segment::Literal(literal));
                Ok(())
            }
        }
    }

    fn variable(&mut self) -> Result<(), TemplateError> {
        let open = self.pos;
        self.pos += 1;
        let field_path = self.field_path()?;
        let first = self.segments.len();
        if self.peek() == Some(b'=') {
            self.pos += 1;
            self.segments(true)?;
        } else {
            self.segments.push(Segment::Wildcard);
        }
        match self.peek() {
            Some(b'}') => self.pos += 1,
            None => return Err(self.error(open, TemplateErrorReason::UnclosedVariable)),
            Some(_) => return Err(self.unexpected()),
        }
        let segments = first..self.segments.len();
        let open_ended = self.segments.last() == Some(&Segment::MultiWildcard);
        let variable = TemplateVariable {
            name: field_path.join("."),
            field_path,
            multi_segment: open_ended || segments.len() > 1,
            open_ended,
            segments,
        };
        self.check_overlap(open, &variable)?;
        self.variables.push(variable);
        Ok(())
    }

    /// One request value cannot fill both a field and one of its sub-fields.
    fn check_overlap(&self, open: usize, new: &TemplateVariable) -> Result<(), TemplateError> {
        for old in &self.variables {
            let (a, b) = (&old.field_path, &new.field_path);
            let reason = if a == b {
                TemplateErrorReason::DuplicateVariable(new.name.clone())
            } else if a.starts_with(b) || b.starts_with(a) {
                TemplateErrorReason::OverlappingVariables(old.name.clone(), new.name.clone())
            } else {
                continue;
            };
            return Err(self.error(open, reason));
        }
        Ok(())
    }

    fn field_path(&mut self) -> Result<Vec<String>, TemplateError> {
        let bytes = self.src.as_bytes();
        let mut parts = Vec::new();
        loop {
            let start = self.pos;
            if !bytes
                .get(start)
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_')
            {
                return Err(self.error(start, TemplateErrorReason::InvalidFieldPath));
            }
            while bytes
                .get(self.pos)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
            {
                self.pos += 1;
            }
            parts.push(self.src[start..self.pos].to_owned());
            if self.peek() != Some(b'.') {
                return Ok(parts);
            }
            self.pos += 1;
        }
    }

    /// A non-empty run of literal characters, returned percent-decoded.
    fn literal(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        while let Some(&c) = bytes.get(self.pos) {
            if c == b'%' {
                if !is_escape(bytes, self.pos) {
                    let reason = TemplateErrorReason::InvalidPercentEncoding;
                    return Err(self.error(self.pos, reason));
                }
                self.pos += 3;
            } else if c.is_ascii_alphanumeric() || b"-._~!$&'()+,;@".contains(&c) {
                self.pos += 1;
            } else {
                break;
            }
        }
        if self.pos == start {
            return Err(self.unexpected());
        }
        percent_decode_str(&self.src[start..self.pos])
            .decode_utf8()
            .map(Cow::into_owned)
            .map_err(|_| self.error(start, TemplateErrorReason::InvalidPercentEncoding))
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn unexpected(&self) -> TemplateError {
        let reason = match self.src[self.pos..].chars().next() {
            None => TemplateErrorReason::UnexpectedEnd,
            Some('}') => TemplateErrorReason::UnmatchedCloseBrace,
            Some(c) => TemplateErrorReason::UnexpectedChar(c),
        };
        self.error(self.pos, reason)
    }

    fn error(&self, position: usize, reason: TemplateErrorReason) -> TemplateError {
        TemplateError {
            template: self.src.to_owned(),
            position,
            reason,
        }
    }
}
