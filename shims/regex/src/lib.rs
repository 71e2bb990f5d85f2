//! The part of the `regex` API that ruma-common uses (`escape`, `bytes::Regex::new` and
//! `is_match`), on regex-lite. regex-lite matches code point by code point with ASCII-only
//! `\w`/`\b` and accepts `(?-u:...)` as a no-op: the semantics of the word-boundary pattern
//! ruma builds (`(?-u:^|\W|\b)...(?-u:\b|\W|$)`). Anything else fails to compile here, which
//! is the point: a new use of regex in a dependency shows up as a build error, not as a
//! silent change of behaviour.

pub use regex_lite::{escape, Error};

pub mod bytes {
    /// A compiled pattern, matched against UTF-8 haystacks (ruma only passes `&str` bytes).
    #[derive(Clone, Debug)]
    pub struct Regex(regex_lite::Regex);

    impl Regex {
        pub fn new(re: &str) -> Result<Regex, crate::Error> {
            regex_lite::Regex::new(re).map(Regex)
        }

        /// Whether the pattern matches anywhere in `haystack`; never for bytes that are not
        /// UTF-8 (they cannot come from a `&str`).
        pub fn is_match(&self, haystack: &[u8]) -> bool {
            std::str::from_utf8(haystack).is_ok_and(|s| self.0.is_match(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bytes::Regex;

    /// The pattern shape of ruma-common's `matches_word` (push rules, `content.body` globs).
    fn word(pattern_regex: &str, hay: &str) -> bool {
        Regex::new(&format!(r"(?-u:^|\W|\b){pattern_regex}(?-u:\b|\W|$)")).unwrap().is_match(hay.as_bytes())
    }

    #[test]
    fn ruma_word_patterns() {
        assert!(word(&format!("{}.{{1,}}", super::escape("foo")), "a foobar b"));
        assert!(!word(&format!("{}.{{1,}}", super::escape("foo")), "a foo"));
        assert!(word(&format!("{}.{{1}}", super::escape("fo")), "x foo y"));
        assert!(!word(&format!("{}.{{1}}", super::escape("fo")), "xfoo y"));
        assert!(word(&format!(".{{0,}}{}", super::escape("a.b")), "see xa.b!"));
        assert!(!word(&format!(".{{0,}}{}", super::escape("a.b")), "see xaxb!"));
        assert!(word(&format!("{}.{{0,}}", super::escape("⚡️")), "conduit ⚡️"));
    }
}
