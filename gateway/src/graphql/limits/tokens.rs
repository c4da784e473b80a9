//! A cheap GraphQL token count, checked before a query is parsed.

/// The GraphQL tokens of `text` (punctuators, names, numbers, strings;
/// whitespace, commas and comments are not tokens), counting stops past
/// `max`. Not a validating lexer: the parser reports malformed text.
pub fn count_tokens(text: &str, max: usize) -> usize {
    let bytes = text.as_bytes();
    let (mut i, mut count) = (0, 0);
    while i < bytes.len() && count <= max {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            // The byte-order mark is ignored; anything else is one token
            // (a punctuator, or an invalid character the parser refuses).
            0xEF if bytes[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => {
                i += 3;
                continue;
            }
            _ => i += 1,
        }
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::count_tokens;

    #[test]
    fn tokens_are_counted_like_a_graphql_lexer() {
        assert_eq!(count_tokens("{ a }", 100), 3);
        assert_eq!(
            count_tokens("query Q($n: Int = -1.5e3) { a(n: $n) }", 100),
            19
        );
        assert_eq!(count_tokens("{ a(s: \"x, y } \\\" z\") ...F }", 100), 10);
        assert_eq!(count_tokens("# comment { { {\n{ a, b }", 100), 4);
        assert_eq!(count_tokens("{ a(s: \"\"\" { } \\\"\"\" \"\"\") }", 100), 8);
        assert_eq!(count_tokens("{ a b c d e f }", 3), 4, "stops past max");
    }
}
