//! The Logging query language, the subset the emulator serves (contracts/oci-round2.md
//! section B):
//!
//! ```text
//! search "<scope>" [, "<scope>"]*  [| where <field> = '<value>' [and <field> = '<value>']*]*
//!                                  [| sort by datetime [asc|desc]]
//! ```
//!
//! A scope is `<compartment>`, `<compartment>/<log group>`, `<compartment>/<log group>/<log>`
//! (names or OCIDs) or a log's OCID. A field is a dotted path of identifiers
//! (`[A-Za-z_][A-Za-z0-9_]*`) or double-quoted names (`""` escapes a quote), starting at the
//! log entry (`data.message`, `type`, `subject`). A value is single-quoted (`''` escapes a
//! quote); `*` in it matches any run of characters (`'*sync_failed*'`). Anything else is
//! refused with a [`QueryError`] naming what is not supported.

use std::fmt;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The scopes searched, as written.
    pub scopes: Vec<String>,
    /// Conditions every result meets.
    pub conditions: Vec<Condition>,
    /// The order asked for (`None`: oldest first, as the emulator answers).
    pub descending: Option<bool>,
}

/// `field = 'value'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The path, one element per name (`["data", "message"]`).
    pub field: Vec<String>,
    /// The value to match.
    pub pattern: Pattern,
}

/// A value as matched: whole, or with `*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// The whole value.
    Exact(String),
    /// Parts separated by `*` (a leading or trailing empty part means the value may start or
    /// end with anything).
    Wildcard(Vec<String>),
}

impl Pattern {
    fn from_literal(text: String) -> Self {
        if text.contains('*') {
            Pattern::Wildcard(text.split('*').map(str::to_owned).collect())
        } else {
            Pattern::Exact(text)
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(v) => v == value,
            Pattern::Wildcard(parts) => wildcard_match(parts, value),
        }
    }

    /// The text a value must contain, when the pattern is `*text*` with no other wildcard.
    pub fn contained(&self) -> Option<&str> {
        match self {
            Pattern::Wildcard(parts)
                if parts.len() == 3 && parts[0].is_empty() && parts[2].is_empty() =>
            {
                Some(&parts[1])
            }
            _ => None,
        }
    }
}

fn wildcard_match(parts: &[String], value: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return value.is_empty();
    };
    if parts.len() == 1 {
        return value == first;
    }
    let Some(mut rest) = value.strip_prefix(first.as_str()) else {
        return false;
    };
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle.as_str()) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last.as_str())
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

/// A token of the language.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Literal(String),
    Pipe,
    Comma,
    Dot,
    Equals,
    /// Any other character (named in the error of whatever does not expect it).
    Other(char),
}

fn quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    quote: char,
) -> Result<String, QueryError> {
    let mut out = String::new();
    loop {
        match chars.next() {
            None => return err(format!("unterminated {quote}-quoted text")),
            Some(c) if c == quote => {
                if chars.peek() == Some(&quote) {
                    chars.next();
                    out.push(quote);
                } else {
                    return Ok(out);
                }
            }
            Some(c) => out.push(c),
        }
    }
}

fn tokens(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' | '\'' => {
                chars.next();
                let s = quoted(&mut chars, c)?;
                out.push(if c == '"' {
                    Token::Quoted(s)
                } else {
                    Token::Literal(s)
                });
            }
            '|' | ',' | '.' | '=' => {
                chars.next();
                out.push(match c {
                    '|' => Token::Pipe,
                    ',' => Token::Comma,
                    '.' => Token::Dot,
                    _ => Token::Equals,
                });
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if !(c.is_ascii_alphanumeric() || c == '_') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
            other => {
                chars.next();
                out.push(Token::Other(other));
            }
        }
    }
    Ok(out)
}

/// Reads tokens in order.
struct Parser {
    tokens: std::vec::IntoIter<Token>,
    peeked: Option<Token>,
}

impl Parser {
    fn peek(&mut self) -> Option<&Token> {
        if self.peeked.is_none() {
            self.peeked = self.tokens.next();
        }
        self.peeked.as_ref()
    }

    fn next(&mut self) -> Option<Token> {
        self.peeked.take().or_else(|| self.tokens.next())
    }

    fn word(&mut self, expected: &str) -> Result<(), QueryError> {
        match self.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(expected) => Ok(()),
            other => err(format!(
                "expected `{expected}`, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn at_word(&mut self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn field(&mut self) -> Result<Vec<String>, QueryError> {
        let mut path = Vec::new();
        loop {
            match self.next() {
                Some(Token::Word(w)) if w.starts_with(|c: char| !c.is_ascii_digit()) => {
                    path.push(w)
                }
                Some(Token::Quoted(q)) => path.push(q),
                other => {
                    return err(format!(
                        "expected a field name, found {}",
                        describe(other.as_ref())
                    ))
                }
            }
            if self.peek() != Some(&Token::Dot) {
                return Ok(path);
            }
            self.next();
        }
    }

    fn condition(&mut self) -> Result<Condition, QueryError> {
        let field = self.field()?;
        match self.next() {
            Some(Token::Equals) => {}
            other => {
                return err(format!(
                    "only `field = 'value'` conditions are supported, found {}",
                    describe(other.as_ref())
                ))
            }
        }
        match self.next() {
            Some(Token::Literal(v)) => Ok(Condition {
                field,
                pattern: Pattern::from_literal(v),
            }),
            other => err(format!(
                "expected a single-quoted value, found {}",
                describe(other.as_ref())
            )),
        }
    }
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "the end of the query".into(),
        Some(Token::Word(w)) => format!("`{w}`"),
        Some(Token::Quoted(q)) => format!("\"{q}\""),
        Some(Token::Literal(l)) => format!("'{l}'"),
        Some(Token::Pipe) => "`|`".into(),
        Some(Token::Comma) => "`,`".into(),
        Some(Token::Dot) => "`.`".into(),
        Some(Token::Equals) => "`=`".into(),
        Some(Token::Other(c)) => format!("`{c}`"),
    }
}

/// Parses `text`.
///
/// # Errors
/// [`QueryError`] naming the first thing that is not in the supported subset.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    let mut p = Parser {
        tokens: tokens(text)?.into_iter(),
        peeked: None,
    };
    p.word("search")?;
    let mut scopes = Vec::new();
    loop {
        match p.next() {
            Some(Token::Quoted(s)) if !s.is_empty() => scopes.push(s),
            other => {
                return err(format!(
                    "expected a double-quoted scope after `search`, found {}",
                    describe(other.as_ref())
                ))
            }
        }
        if p.peek() != Some(&Token::Comma) {
            break;
        }
        p.next();
    }
    let mut query = Query {
        scopes,
        conditions: Vec::new(),
        descending: None,
    };
    while let Some(t) = p.next() {
        if t != Token::Pipe {
            return err(format!("expected `|`, found {}", describe(Some(&t))));
        }
        if p.at_word("where") {
            p.next();
            query.conditions.push(p.condition()?);
            while p.at_word("and") {
                p.next();
                query.conditions.push(p.condition()?);
            }
        } else if p.at_word("sort") {
            p.next();
            p.word("by")?;
            p.word("datetime")?;
            query.descending = Some(if p.at_word("desc") {
                p.next();
                true
            } else {
                if p.at_word("asc") {
                    p.next();
                }
                false
            });
        } else {
            let found = describe(p.peek());
            return err(format!(
                "unsupported query command {found}: the emulator supports `where` (with `and`) and `sort by datetime`"
            ));
        }
        if let Some(t) = p.peek() {
            if *t != Token::Pipe {
                let found = describe(Some(t));
                return err(format!("unsupported {found} in the query (`or`, functions and operators other than `=` are not supported)"));
            }
        }
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_queries_datasync_trace_sends_parse() {
        let q = parse(
            r#"search "ocid1.compartment.oc1..x/datasync-logs/datasync-functions-invoke" | where data.message = '*"id":"0190-ab"*' | sort by datetime asc"#,
        )
        .unwrap();
        assert_eq!(
            q.scopes,
            ["ocid1.compartment.oc1..x/datasync-logs/datasync-functions-invoke"]
        );
        assert_eq!(q.conditions[0].field, ["data", "message"]);
        assert_eq!(
            q.conditions[0].pattern.contained(),
            Some(r#""id":"0190-ab""#)
        );
        assert_eq!(q.descending, Some(false));
        let q = parse(
            r#"search "c1", "ocid1.log.x" | where type = 'a' and data."first name" = 'it''s' | sort by datetime desc"#,
        )
        .unwrap();
        assert_eq!(q.scopes.len(), 2);
        assert_eq!(q.conditions[1].field, ["data", "first name"]);
        assert_eq!(q.conditions[1].pattern, Pattern::Exact("it's".into()));
        assert_eq!(q.descending, Some(true));
        assert_eq!(parse(r#"SEARCH "c""#).unwrap().descending, None);
    }

    #[test]
    fn what_is_not_supported_is_named() {
        for (q, names) in [
            (r#"where a = 'b'"#, "`search`"),
            (r#"search c"#, "double-quoted scope"),
            (r#"search "c" | where a = 'b' or c = 'd'"#, "`or`"),
            (r#"search "c" | where a != 'b'"#, "found `!`"),
            (r#"search "c" | summarize count()"#, "`summarize`"),
            (r#"search "c" | sort by time"#, "`datetime`"),
            (r#"search "c" | where a = 'b"#, "unterminated"),
            (r#"search "c" | where a = 3"#, "single-quoted value"),
            (r#"search "c" | limit 5"#, "`limit`"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.0.contains(names), "{q}: {e}");
        }
    }

    #[test]
    fn wildcards_match_as_globs() {
        let p = Pattern::from_literal("*abc*".into());
        assert!(p.matches("xxabcxx"));
        assert!(p.matches("abc"));
        assert!(!p.matches("ab"));
        let p = Pattern::from_literal("a*c".into());
        assert!(p.matches("abbc"));
        assert!(p.matches("ac"));
        assert!(!p.matches("abcd"));
        let p = Pattern::from_literal("a*b*a".into());
        assert!(p.matches("aba"));
        assert!(!Pattern::from_literal("a*a".into()).matches("a"));
        assert!(p.matches("abba"));
        assert!(!p.matches("ab"));
        assert!(Pattern::from_literal("*".into()).matches(""));
        assert!(Pattern::from_literal("x".into()).matches("x"));
    }
}
