//! Label selectors in the Kubernetes style, parsed once into a [`Selector`] and matched
//! against an agent's labels.
//!
//! ```text
//! selector     = [ requirement *( "," requirement ) ]      (empty: every agent)
//! requirement  = "!" key                                    key absent
//!              | key                                        key present
//!              | key ( "=" | "==" ) value                   key present with this value
//!              | key "!=" value                             key absent or another value
//!              | key "in" "(" value *( "," value ) ")"     key present with one of the values
//!              | key "notin" "(" value *( "," value ) ")"  key absent or none of the values
//! key, value   = a run of characters other than whitespace and , ( ) = ! "
//!              | a double-quoted string with \" and \\ escapes (values only)
//! ```
//!
//! A comma means AND. Whitespace around tokens is ignored. Errors say where (a 1-based
//! column) and what was expected there.
//!
//! [`Selector`]'s `Display` is canonical (`=` for equality, values quoted only when they must
//! be), and parsing what it prints gives the same selector back.
//!
//! This module must never touch the store or the network: it is pure and total.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A parsed selector: every requirement must hold (comma = AND). The empty selector matches
/// every agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// The requirements, in the order written.
    pub requirements: Vec<Requirement>,
}

/// One requirement on one label key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// What must hold for it.
    pub op: Op,
}

/// The operator of a [`Requirement`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `key` : the key is present (any value).
    Exists,
    /// `!key` : the key is absent.
    NotExists,
    /// `key=value` or `key==value`: present with this value.
    Eq(String),
    /// `key!=value`: absent, or present with another value.
    NotEq(String),
    /// `key in (a,b)`: present with one of the values.
    In(Vec<String>),
    /// `key notin (a,b)`: absent, or present with none of the values.
    NotIn(Vec<String>),
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.op {
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
            Op::Eq(v) => value == Some(v),
            Op::NotEq(v) => value != Some(v),
            Op::In(vs) => value.is_some_and(|x| vs.contains(x)),
            Op::NotIn(vs) => value.is_none_or(|x| !vs.contains(x)),
        }
    }
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses a selector (see the module docs for the grammar).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        Parser::new(text).selector()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The `key=value` pairs this selector requires exactly (for narrowing a store query
    /// before matching the rest in memory).
    pub fn equalities(&self) -> Vec<(String, String)> {
        self.requirements
            .iter()
            .filter_map(|r| match &r.op {
                Op::Eq(v) => Some((r.key.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match &self.op {
            Op::Exists => write!(f, "{key}"),
            Op::NotExists => write!(f, "!{key}"),
            Op::Eq(v) => write!(f, "{key}={}", Value(v)),
            Op::NotEq(v) => write!(f, "{key}!={}", Value(v)),
            Op::In(vs) => write!(f, "{key} in ({})", ValueList(vs)),
            Op::NotIn(vs) => write!(f, "{key} notin ({})", ValueList(vs)),
        }
    }
}

/// A value, quoted when it would not read back as a bare token.
struct Value<'a>(&'a str);

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if !v.is_empty() && v.chars().all(is_token_char) {
            return f.write_str(v);
        }
        f.write_str("\"")?;
        for c in v.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

struct ValueList<'a>(&'a [String]);

impl fmt::Display for ValueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", Value(v))?;
        }
        Ok(())
    }
}

/// Characters allowed in a bare key or value.
fn is_token_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !matches!(c, ',' | '(' | ')' | '=' | '!' | '"')
}

/// Whether `key` can be written in a selector (label keys with the characters a selector
/// reserves cannot be selected on).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(is_token_char)
}

/// A selector that does not parse: where, what was expected, and what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector at column {column}: expected {expected}, found {found}")]
pub struct SelectorError {
    /// The 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What the parser expected there.
    pub expected: String,
    /// What it found (`end of input` at the end).
    pub found: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Comma,
    Open,
    Close,
    Eq,
    EqEq,
    NotEq,
    Bang,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("{w:?}"),
            Tok::Quoted(q) => format!("quoted string {q:?}"),
            Tok::Comma => "','".into(),
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
            Tok::Eq => "'='".into(),
            Tok::EqEq => "'=='".into(),
            Tok::NotEq => "'!='".into(),
            Tok::Bang => "'!'".into(),
            Tok::End => "end of input".into(),
        }
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    peeked: Option<(usize, Tok)>,
    _text: &'a str,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
            peeked: None,
            _text: text,
        }
    }

    fn error(&self, column_index: usize, expected: &str, found: &Tok) -> SelectorError {
        SelectorError {
            column: column_index + 1,
            expected: expected.to_owned(),
            found: found.describe(),
        }
    }

    /// Lexes the next token; returns its start index.
    fn lex(&mut self) -> Result<(usize, Tok), SelectorError> {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = self.chars.get(self.pos) else {
            return Ok((start, Tok::End));
        };
        let next = self.chars.get(self.pos + 1).copied();
        let tok = match c {
            ',' => {
                self.pos += 1;
                Tok::Comma
            }
            '(' => {
                self.pos += 1;
                Tok::Open
            }
            ')' => {
                self.pos += 1;
                Tok::Close
            }
            '=' if next == Some('=') => {
                self.pos += 2;
                Tok::EqEq
            }
            '=' => {
                self.pos += 1;
                Tok::Eq
            }
            '!' if next == Some('=') => {
                self.pos += 2;
                Tok::NotEq
            }
            '!' => {
                self.pos += 1;
                Tok::Bang
            }
            '"' => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.chars.get(self.pos).copied() {
                        None => {
                            return Err(SelectorError {
                                column: self.chars.len() + 1,
                                expected: "a closing '\"'".into(),
                                found: "end of input".into(),
                            });
                        }
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some('\\') => match self.chars.get(self.pos + 1).copied() {
                            Some(e @ ('"' | '\\')) => {
                                s.push(e);
                                self.pos += 2;
                            }
                            other => {
                                return Err(SelectorError {
                                    column: self.pos + 2,
                                    expected: "'\"' or '\\' after '\\' in a quoted value".into(),
                                    found: other.map_or("end of input".into(), |c| {
                                        format!("{:?}", c.to_string())
                                    }),
                                });
                            }
                        },
                        Some(ch) => {
                            s.push(ch);
                            self.pos += 1;
                        }
                    }
                }
                Tok::Quoted(s)
            }
            c if is_token_char(c) => {
                let mut s = String::new();
                while let Some(&ch) = self.chars.get(self.pos) {
                    if !is_token_char(ch) {
                        break;
                    }
                    s.push(ch);
                    self.pos += 1;
                }
                Tok::Word(s)
            }
            other => {
                return Err(SelectorError {
                    column: start + 1,
                    expected: "a label key, ',' or end of input".into(),
                    found: format!("control character {:?}", other.to_string()),
                });
            }
        };
        Ok((start, tok))
    }

    fn peek(&mut self) -> Result<&(usize, Tok), SelectorError> {
        if self.peeked.is_none() {
            let t = self.lex()?;
            self.peeked = Some(t);
        }
        Ok(self.peeked.get_or_insert((0, Tok::End)))
    }

    fn next(&mut self) -> Result<(usize, Tok), SelectorError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if self.peek()?.1 == Tok::End {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            let (at, tok) = self.next()?;
            match tok {
                Tok::End => return Ok(Selector { requirements }),
                Tok::Comma => {}
                other => return Err(self.error(at, "',' or end of input", &other)),
            }
        }
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        let (at, tok) = self.next()?;
        match tok {
            Tok::Word(w) => Ok(w),
            other => Err(self.error(at, "a label key", &other)),
        }
    }

    fn value(&mut self, after: &str) -> Result<String, SelectorError> {
        let (at, tok) = self.next()?;
        match tok {
            Tok::Word(w) | Tok::Quoted(w) => Ok(w),
            other => Err(self.error(at, &format!("a value after {after}"), &other)),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek()?.1 == Tok::Bang {
            self.next()?;
            let key = self.key()?;
            return Ok(Requirement {
                key,
                op: Op::NotExists,
            });
        }
        let key = self.key()?;
        let (at, tok) = self.peek()?.clone();
        let op = match tok {
            Tok::End | Tok::Comma => Op::Exists,
            Tok::Eq | Tok::EqEq => {
                self.next()?;
                let after = if tok == Tok::Eq { "'='" } else { "'=='" };
                Op::Eq(self.value(after)?)
            }
            Tok::NotEq => {
                self.next()?;
                Op::NotEq(self.value("'!='")?)
            }
            Tok::Word(w) if w == "in" || w == "notin" => {
                self.next()?;
                let values = self.set(&w)?;
                if w == "in" {
                    Op::In(values)
                } else {
                    Op::NotIn(values)
                }
            }
            other => {
                return Err(self.error(
                    at,
                    &format!(
                        "'=', '==', '!=', 'in', 'notin', ',' or end of input after key {key:?}"
                    ),
                    &other,
                ));
            }
        };
        Ok(Requirement { key, op })
    }

    fn set(&mut self, keyword: &str) -> Result<Vec<String>, SelectorError> {
        let (at, tok) = self.next()?;
        if tok != Tok::Open {
            return Err(self.error(at, &format!("'(' after '{keyword}'"), &tok));
        }
        let mut values = vec![self.value("'(' (a set needs at least one value)")?];
        loop {
            let (at, tok) = self.next()?;
            match tok {
                Tok::Close => return Ok(values),
                Tok::Comma => values.push(self.value("',' in a value set")?),
                other => return Err(self.error(at, "',' or ')' in a value set", &other)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_operator_parses_and_matches() {
        let l = labels(&[("service.name", "checkout"), ("env", "prod")]);
        let cases = [
            ("service.name=checkout", true),
            ("service.name==checkout", true),
            ("service.name=cart", false),
            ("service.name!=cart", true),
            ("missing!=x", true),
            ("env in (prod, staging)", true),
            ("env in (dev)", false),
            ("missing in (x)", false),
            ("env notin (dev,staging)", true),
            ("env notin (prod)", false),
            ("missing notin (x)", true),
            ("env", true),
            ("missing", false),
            ("!missing", true),
            ("!env", false),
            ("env=prod, service.name=checkout", true),
            ("env=prod,service.name=cart", false),
            ("", true),
            ("  ", true),
            (r#"service.name="checkout""#, true),
        ];
        for (text, expected) in cases {
            let s = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.matches(&l), expected, "{text}");
        }
    }

    #[test]
    fn errors_name_the_column_and_what_was_expected() {
        let e = Selector::parse("env=").unwrap_err();
        assert_eq!(e.column, 5);
        assert!(e.expected.contains("value after '='"), "{e}");
        assert_eq!(e.found, "end of input");

        let e = Selector::parse("env in prod").unwrap_err();
        assert_eq!(e.column, 8);
        assert!(e.expected.contains("'(' after 'in'"), "{e}");

        let e = Selector::parse("env in (a b)").unwrap_err();
        assert!(e.expected.contains("',' or ')'"), "{e}");
        assert_eq!(e.column, 11);

        let e = Selector::parse("a=b,,c").unwrap_err();
        assert_eq!(e.column, 5);
        assert!(e.expected.contains("label key"), "{e}");

        let e = Selector::parse("env ~ prod").unwrap_err();
        assert!(e.expected.contains("'in'"), "{e}");

        let e = Selector::parse("a=\"open").unwrap_err();
        assert!(e.expected.contains("closing"), "{e}");

        let e = Selector::parse("env in ()").unwrap_err();
        assert!(e.expected.contains("at least one value"), "{e}");

        let e = Selector::parse("a=b c").unwrap_err();
        assert!(
            e.to_string().starts_with("invalid selector at column 5"),
            "{e}"
        );
    }

    #[test]
    fn display_is_canonical() {
        let s = Selector::parse(" a == b , c notin ( x , \"y z\" ) , !d ").unwrap();
        assert_eq!(s.to_string(), r#"a=b,c notin (x,"y z"),!d"#);
        let s = Selector::parse(r#"k="" "#).unwrap();
        assert_eq!(s.to_string(), r#"k="""#);
        let s = Selector::parse(r#"k="a\"b\\c""#).unwrap();
        assert_eq!(s.requirements[0].op, Op::Eq(r#"a"b\c"#.into()));
    }

    #[test]
    fn keys_with_reserved_characters_are_not_selectable() {
        assert!(is_valid_key("service.name"));
        assert!(is_valid_key("app.kubernetes.io/name"));
        assert!(!is_valid_key("a b"));
        assert!(!is_valid_key("a=b"));
        assert!(!is_valid_key(""));
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9._/-]{0,12}"
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9._-]{1,8}",
            any::<String>().prop_map(|s| s.chars().take(10).collect()),
            Just(String::new()),
            Just("in".to_owned()),
            Just("a,b (c) = !d \"e\" \\f".to_owned()),
        ]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let op = prop_oneof![
            Just(Op::Exists),
            Just(Op::NotExists),
            value().prop_map(Op::Eq),
            value().prop_map(Op::NotEq),
            prop::collection::vec(value(), 1..4).prop_map(Op::In),
            prop::collection::vec(value(), 1..4).prop_map(Op::NotIn),
        ];
        (key(), op).prop_map(|(key, op)| Requirement { key, op })
    }

    proptest! {
        #[test]
        fn parse_of_display_is_identity(reqs in prop::collection::vec(requirement(), 0..5)) {
            let sel = Selector { requirements: reqs };
            let text = sel.to_string();
            let back = Selector::parse(&text);
            prop_assert_eq!(back, Ok(sel), "text: {}", text);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = Selector::parse(&text);
        }
    }
}
