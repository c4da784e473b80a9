//! Offset pagination shared by `ListUsers` and `ListOrders`.

use tonic::Status;

use crate::errors::bad_field;

/// Page size used when the request leaves `page_size` at 0.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 10;
/// Larger requested sizes are clamped to this (AIP-158: coerce, don't reject).
pub(crate) const MAX_PAGE_SIZE: usize = 100;

/// The slice of a listing one request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Page {
    /// Resolves `page_size`/`page_token` against a listing of `total` items.
    ///
    /// The token is the decimal offset of the next item. Clients must treat it as opaque; it is
    /// only plain text so the demo stays easy to poke at with curl.
    pub(crate) fn resolve(page_size: i32, page_token: &str, total: usize) -> Result<Self, Status> {
        let size = match usize::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
            Err(_) => return Err(bad_field("page_size", "must not be negative")),
        };
        let start = if page_token.is_empty() {
            0
        } else {
            page_token
                .parse::<usize>()
                .map_err(|_| bad_field("page_token", "is not a token this server issued"))?
        };
        let start = start.min(total);
        Ok(Self {
            start,
            end: start.saturating_add(size).min(total),
        })
    }

    /// The token for the page after this one, or empty when this is the last page.
    pub(crate) fn next_token(&self, total: usize) -> String {
        if self.end < total {
            self.end.to_string()
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_clamps() {
        assert_eq!(
            Page::resolve(0, "", 25).ok(),
            Some(Page { start: 0, end: 10 })
        );
        assert_eq!(
            Page::resolve(1000, "", 250).ok(),
            Some(Page { start: 0, end: 100 })
        );
        assert_eq!(
            Page::resolve(10, "20", 25).ok(),
            Some(Page { start: 20, end: 25 })
        );
        assert_eq!(Page { start: 20, end: 25 }.next_token(25), "");
        assert_eq!(Page { start: 0, end: 10 }.next_token(25), "10");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Page::resolve(-1, "", 5).is_err());
        assert!(Page::resolve(5, "abc", 5).is_err());
    }
}
