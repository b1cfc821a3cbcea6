//! Redis glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, and `\` escapes.
//!
//! Matching walks the pattern once with a single backtrack point for the last `*`, so a hostile
//! pattern such as `*a*a*a*a*b` costs at most pattern × subject steps, never exponential time.

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(u8),
    AnyOne,
    AnyRun,
    Class { negated: bool, items: Vec<ClassItem> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ClassItem {
    Byte(u8),
    Range(u8, u8),
}

/// A compiled glob pattern.
#[derive(Clone, Debug)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    pub fn new(pattern: &[u8]) -> Glob {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'*' => {
                    // Consecutive stars are one star.
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::AnyOne);
                    i += 1;
                }
                b'[' => {
                    i += 1;
                    let negated = pattern.get(i) == Some(&b'^');
                    if negated {
                        i += 1;
                    }
                    let mut items = Vec::new();
                    // An unterminated class ends with the pattern, as in Redis.
                    while i < pattern.len() && pattern[i] != b']' {
                        if pattern[i] == b'\\' && i + 1 < pattern.len() {
                            items.push(ClassItem::Byte(pattern[i + 1]));
                            i += 2;
                        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
                            let (a, b) = (pattern[i], pattern[i + 2]);
                            items.push(ClassItem::Range(a.min(b), a.max(b)));
                            i += 3;
                        } else {
                            items.push(ClassItem::Byte(pattern[i]));
                            i += 1;
                        }
                    }
                    i += 1; // the closing bracket
                    tokens.push(Token::Class { negated, items });
                }
                b'\\' if i + 1 < pattern.len() => {
                    tokens.push(Token::Literal(pattern[i + 1]));
                    i += 2;
                }
                b => {
                    tokens.push(Token::Literal(b));
                    i += 1;
                }
            }
        }
        Glob { tokens }
    }

    /// Whether the pattern is `*` (matches everything).
    pub fn matches_all(&self) -> bool {
        self.tokens == [Token::AnyRun]
    }

    /// The literal bytes every match starts with (empty if the pattern starts with a wildcard).
    pub fn literal_prefix(&self) -> Vec<u8> {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(b) => Some(*b),
                _ => None,
            })
            .collect()
    }

    pub fn matches(&self, subject: &[u8]) -> bool {
        let (mut t, mut s) = (0usize, 0usize);
        // Where to resume if the current attempt fails: after the last star, one byte further.
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if t < self.tokens.len() {
                let token = &self.tokens[t];
                if *token == Token::AnyRun {
                    backtrack = Some((t + 1, s));
                    t += 1;
                    continue;
                }
                if s < subject.len() && token_matches(token, subject[s]) {
                    t += 1;
                    s += 1;
                    continue;
                }
            } else if s == subject.len() {
                return true;
            }
            match backtrack {
                Some((star_next, star_s)) if star_s < subject.len() => {
                    backtrack = Some((star_next, star_s + 1));
                    t = star_next;
                    s = star_s + 1;
                }
                _ => return false,
            }
        }
    }
}

fn token_matches(token: &Token, byte: u8) -> bool {
    match token {
        Token::Literal(b) => *b == byte,
        Token::AnyOne => true,
        Token::AnyRun => true,
        Token::Class { negated, items } => {
            let hit = items.iter().any(|item| match *item {
                ClassItem::Byte(b) => b == byte,
                ClassItem::Range(lo, hi) => (lo..=hi).contains(&byte),
            });
            hit != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, subject: &str) -> bool {
        Glob::new(pattern.as_bytes()).matches(subject.as_bytes())
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("user:*:name", "user:42:name"));
        assert!(!m("user:*:name", "user:42:age"));
        assert!(m("*a", "aaa"));
        assert!(!m("a*b", "acbd"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("ab\\", "ab\\"));
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let pattern = "*a".repeat(50) + "b";
        let subject = "a".repeat(5000);
        assert!(!m(&pattern, &subject));
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        assert_eq!(Glob::new(b"user:*").literal_prefix(), b"user:");
        assert_eq!(Glob::new(b"a\\*b*").literal_prefix(), b"a*b");
        assert!(Glob::new(b"*x").literal_prefix().is_empty());
        assert!(Glob::new(b"*").matches_all());
        assert!(Glob::new(b"**").matches_all());
    }
}
