//! The subset of the Monitoring Query Language the emulator reads: what datasync's alarms and
//! tests use (contracts/oci-round2.md section A, "MQL subset").
//!
//! ```text
//! expr      := query (("&&" | "||") query)*
//! query     := metric "[" interval "]" filters? ("." grouping)? "." statistic predicate?
//! filters   := "{" (dim ("=" | "!=" | "=~") value ("," ...)*)? "}"
//! grouping  := "grouping()" | "groupBy(" dim ("," dim)* ")"
//! statistic := "sum()" | "mean()" | "max()" | "min()" | "count()" | "rate()"
//!            | "percentile(" p ")" | "absent(" duration? ")"
//! predicate := (">" | ">=" | "<" | "<=" | "==" | "!=") number
//! ```
//!
//! A value is quoted (`"v"`, with `\"` inside) or bare; `=~ "a|b*"` matches any of the
//! `|`-separated patterns, `*` matching any run of characters. Anything else (nested queries,
//! arithmetic, a second statistic, `in (a, b)`) is refused naming the part, which the API
//! answers as 400 `InvalidParameter`.

use std::time::Duration;

/// A parsed expression: one query, or queries joined by `&&` / `||` (left to right).
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The first query.
    pub first: Query,
    /// Each further query with the operator joining it.
    pub rest: Vec<(Join, Query)>,
}

/// How two queries join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Both hold.
    And,
    /// Either holds.
    Or,
}

/// One query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The metric's name.
    pub metric: String,
    /// The aggregation window.
    pub interval: Duration,
    /// Dimension filters, all of which must hold.
    pub filters: Vec<Filter>,
    /// How streams are combined before the statistic; `None`: each stream apart.
    pub grouping: Option<Grouping>,
    /// The statistic.
    pub statistic: Statistic,
    /// The condition a value must meet to be returned.
    pub predicate: Option<(Cmp, f64)>,
}

/// A dimension filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `dim = "v"`.
    Eq(String, String),
    /// `dim != "v"`.
    NotEq(String, String),
    /// `dim =~ "a|b*"`: any of the patterns, `*` matching any run.
    Fuzzy(String, Vec<String>),
}

impl Filter {
    /// Whether `value` (the stream's value of the filter's dimension, if any) passes.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match self {
            Filter::Eq(_, v) => value == Some(v.as_str()),
            Filter::NotEq(_, v) => value != Some(v.as_str()),
            Filter::Fuzzy(_, patterns) => {
                value.is_some_and(|s| patterns.iter().any(|p| wildcard(p, s)))
            }
        }
    }

    /// The dimension it tests.
    pub fn dimension(&self) -> &str {
        match self {
            Filter::Eq(d, _) | Filter::NotEq(d, _) | Filter::Fuzzy(d, _) => d,
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// How streams are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// All into one.
    All,
    /// One per combination of these dimensions' values.
    By(Vec<String>),
}

/// The statistic of each window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// Σ value·count.
    Sum,
    /// Σ value·count / Σ count.
    Mean,
    /// The largest value.
    Max,
    /// The smallest value.
    Min,
    /// Σ count: the observations.
    Count,
    /// Change per second between the window's first and last datapoints.
    Rate,
    /// The value below which the fraction `p` of the observations lie (0 < p < 1).
    Percentile(f64),
    /// 1 when the window has no datapoint, else 0, for at most the detection period after
    /// the last datapoint (default 2 h).
    Absent(Duration),
}

/// A predicate's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
}

impl Cmp {
    /// Whether `a <op> b`.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// Why a query was refused: what was found, where, and what the emulator takes there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query position {at}: {message}")]
pub struct MqlError {
    /// The byte offset in the query where the problem is.
    pub at: usize,
    /// What is wrong or unsupported.
    pub message: String,
}

/// The default absence detection period.
pub const DEFAULT_ABSENCE_PERIOD: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A run of letters, digits and `_ . $ - : * /` not starting with `.`.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// Punctuation or an operator.
    Sym(&'static str),
}

const SYMBOLS: [&str; 18] = [
    "&&", "||", "=~", "!=", "==", ">=", "<=", ">", "<", "=", "(", ")", "[", "]", "{", "}", ",", ".",
];

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | '-' | ':' | '*' | '/')
}

/// Splits `text` into tokens with their positions.
fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, MqlError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, e)) => s.push(e),
                        None => break,
                    },
                    Some((_, ch)) => s.push(ch),
                    None => {
                        return Err(MqlError {
                            at,
                            message: "unterminated string".into(),
                        })
                    }
                }
            }
            out.push((at, Tok::Str(s)));
        } else if word_char(c) && c != '.' {
            let mut s = String::new();
            while let Some(&(_, ch)) = chars.peek() {
                if !word_char(ch) {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            out.push((at, Tok::Word(s)));
        } else {
            let rest = &text[at..];
            let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
                return Err(MqlError {
                    at,
                    message: format!("unsupported character {c:?}"),
                });
            };
            for _ in 0..sym.chars().count() {
                chars.next();
            }
            out.push((at, Tok::Sym(sym)));
        }
    }
    Ok(out)
}

/// Parses `text`.
///
/// # Errors
/// [`MqlError`] naming the first part that is malformed or outside the subset.
pub fn parse(text: &str) -> Result<Expr, MqlError> {
    let mut p = Parser {
        toks: tokenize(text)?,
        pos: 0,
        len: text.len(),
    };
    let first = p.query()?;
    let mut rest = Vec::new();
    while let Some(sym) = p.peek_sym() {
        let join = match sym {
            "&&" => Join::And,
            "||" => Join::Or,
            _ => break,
        };
        p.pos += 1;
        rest.push((join, p.query()?));
    }
    if p.pos < p.toks.len() {
        return Err(p.error(format!(
            "unsupported: {} (one query, or queries joined by && or ||)",
            p.describe()
        )));
    }
    Ok(Expr { first, rest })
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |(at, _)| *at)
    }

    fn error(&self, message: impl Into<String>) -> MqlError {
        MqlError {
            at: self.at(),
            message: message.into(),
        }
    }

    fn describe(&self) -> String {
        match self.toks.get(self.pos) {
            Some((_, Tok::Word(w))) => format!("{w:?}"),
            Some((_, Tok::Str(s))) => format!("\"{s}\""),
            Some((_, Tok::Sym(s))) => format!("{s:?}"),
            None => "the end of the query".into(),
        }
    }

    fn peek_sym(&self) -> Option<&'static str> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Sym(s))) => Some(s),
            _ => None,
        }
    }

    fn eat(&mut self, sym: &str) -> bool {
        if self.peek_sym() == Some(sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str, what: &str) -> Result<(), MqlError> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(self.error(format!(
                "expected {sym:?} {what}, found {}",
                self.describe()
            )))
        }
    }

    fn word(&mut self, what: &str) -> Result<String, MqlError> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Word(w))) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.error(format!("expected {what}, found {}", self.describe()))),
        }
    }

    fn value(&mut self, what: &str) -> Result<String, MqlError> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Word(w) | Tok::Str(w))) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.error(format!("expected {what}, found {}", self.describe()))),
        }
    }

    /// A number, possibly written `.5` (a `.` then digits).
    fn number(&mut self, what: &str) -> Result<f64, MqlError> {
        let at = self.pos;
        let text = if self.eat(".") {
            format!(".{}", self.word(what)?)
        } else {
            self.word(what)?
        };
        text.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or(MqlError {
                at: self.toks.get(at).map_or(self.len, |(a, _)| *a),
                message: format!("expected {what}, found {text:?}"),
            })
    }

    fn query(&mut self) -> Result<Query, MqlError> {
        if self.peek_sym() == Some("(") {
            return Err(self.error("unsupported: nested queries"));
        }
        let metric = self.word("a metric name")?;
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$');
        if !metric.starts_with(|c: char| c.is_ascii_alphabetic()) || !metric.chars().all(legal) {
            return Err(self.error(format!("{metric:?} is not a metric name")));
        }
        self.expect("[", "after the metric name (an interval such as [1m])")?;
        let at = self.at();
        let interval = duration(&self.word("an interval")?)
            .filter(|d| valid_interval(*d))
            .ok_or(MqlError {
                at,
                message: "the interval must be 1m-60m, 1h-24h or 1d".into(),
            })?;
        self.expect("]", "after the interval")?;
        let filters = if self.eat("{") {
            self.filters()?
        } else {
            Vec::new()
        };
        self.expect(".", "before a statistic")?;
        let mut grouping = None;
        let name_at = self.at();
        let mut name = self.word("a grouping function or a statistic")?;
        if name == "grouping" || name == "groupBy" {
            grouping = Some(self.grouping(&name)?);
            self.expect(".", "before a statistic")?;
            name = self.word("a statistic")?;
        }
        let statistic = self.statistic(&name, name_at)?;
        if self.peek_sym() == Some(".") {
            return Err(self.error(
                "unsupported: a function after the statistic (one grouping, then one statistic)",
            ));
        }
        let predicate = self.predicate()?;
        Ok(Query {
            metric,
            interval,
            filters,
            grouping,
            statistic,
            predicate,
        })
    }

    fn filters(&mut self) -> Result<Vec<Filter>, MqlError> {
        let mut filters = Vec::new();
        if self.eat("}") {
            return Ok(filters);
        }
        loop {
            let dim = self.value("a dimension name")?;
            let op = self.peek_sym();
            let filter = match op {
                Some("=") | Some("==") => {
                    self.pos += 1;
                    Filter::Eq(dim, self.value("a dimension value")?)
                }
                Some("!=") => {
                    self.pos += 1;
                    Filter::NotEq(dim, self.value("a dimension value")?)
                }
                Some("=~") => {
                    self.pos += 1;
                    let v = self.value("a dimension pattern")?;
                    Filter::Fuzzy(dim, v.split('|').map(str::to_owned).collect())
                }
                _ => {
                    return Err(self.error(format!(
                        "expected =, != or =~ after the dimension, found {}",
                        self.describe()
                    )))
                }
            };
            filters.push(filter);
            if self.eat("}") {
                return Ok(filters);
            }
            self.expect(",", "between dimension filters")?;
        }
    }

    fn grouping(&mut self, name: &str) -> Result<Grouping, MqlError> {
        self.expect("(", "after the grouping function")?;
        if name == "grouping" {
            self.expect(")", "(grouping() takes nothing)")?;
            return Ok(Grouping::All);
        }
        let mut dims = vec![self.value("a dimension name")?];
        while self.eat(",") {
            dims.push(self.value("a dimension name")?);
        }
        self.expect(")", "after groupBy's dimensions")?;
        Ok(Grouping::By(dims))
    }

    fn statistic(&mut self, name: &str, at: usize) -> Result<Statistic, MqlError> {
        self.expect("(", "after the statistic")?;
        let stat = match name {
            "sum" => Statistic::Sum,
            "mean" | "avg" => Statistic::Mean,
            "max" => Statistic::Max,
            "min" => Statistic::Min,
            "count" => Statistic::Count,
            "rate" => Statistic::Rate,
            "percentile" => {
                let p = self.number("a fraction between 0 and 1")?;
                if !(p > 0.0 && p < 1.0) {
                    return Err(self.error("the percentile is a fraction: 0 < p < 1 (e.g. 0.99)"));
                }
                Statistic::Percentile(p)
            }
            "absent" => {
                let period = if self.peek_sym() == Some(")") {
                    DEFAULT_ABSENCE_PERIOD
                } else {
                    let at = self.at();
                    duration(&self.word("an absence detection period")?)
                        .filter(|d| {
                            *d >= Duration::from_secs(60) && *d <= Duration::from_secs(72 * 3600)
                        })
                        .ok_or(MqlError {
                            at,
                            message: "the absence detection period must be 1m to 3d".into(),
                        })?
                };
                Statistic::Absent(period)
            }
            other => {
                return Err(MqlError {
                    at,
                    message: format!(
                        "unsupported statistic {other:?} (sum, mean, max, min, count, rate, percentile, absent)"
                    ),
                })
            }
        };
        self.expect(")", "after the statistic's argument")?;
        Ok(stat)
    }

    fn predicate(&mut self) -> Result<Option<(Cmp, f64)>, MqlError> {
        let cmp = match self.peek_sym() {
            Some(">") => Cmp::Gt,
            Some(">=") => Cmp::Ge,
            Some("<") => Cmp::Lt,
            Some("<=") => Cmp::Le,
            Some("==") => Cmp::Eq,
            Some("!=") => Cmp::Ne,
            _ => {
                if let Some((_, Tok::Word(w))) = self.toks.get(self.pos) {
                    if w == "in" || w == "not" {
                        return Err(self.error("unsupported: range predicates (in, not in)"));
                    }
                }
                return Ok(None);
            }
        };
        self.pos += 1;
        Ok(Some((cmp, self.number("a number to compare with")?)))
    }
}

/// `5m`, `2h`, `1d` as a duration.
pub(crate) fn duration(text: &str) -> Option<Duration> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = text[..unit_at].parse().ok()?;
    let secs = match &text[unit_at..] {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

/// Intervals MQL takes: 1m-60m, 1h-24h, 1d.
fn valid_interval(d: Duration) -> bool {
    let s = d.as_secs();
    (60..=86_400).contains(&s) && s % 60 == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_alarm_queries_parse() {
        let e = parse(r#"DeliveryLatency[5m]{function = "process"}.groupBy(targetHost).percentile(0.99) > 3000"#)
            .unwrap();
        let q = &e.first;
        assert_eq!(q.metric, "DeliveryLatency");
        assert_eq!(q.interval, Duration::from_secs(300));
        assert_eq!(
            q.filters,
            vec![Filter::Eq("function".into(), "process".into())]
        );
        assert_eq!(q.grouping, Some(Grouping::By(vec!["targetHost".into()])));
        assert_eq!(q.statistic, Statistic::Percentile(0.99));
        assert_eq!(q.predicate, Some((Cmp::Gt, 3000.0)));

        let e = parse("MessagesDelivered[1m].sum()").unwrap();
        assert_eq!(e.first.statistic, Statistic::Sum);
        assert!(e.first.grouping.is_none() && e.first.filters.is_empty());

        let e = parse("MessagesAccepted[10m].grouping().sum() > 0 && MessagesDelivered[10m].grouping().absent()")
            .unwrap();
        assert_eq!(e.rest.len(), 1);
        assert_eq!(e.rest[0].0, Join::And);
        assert_eq!(
            e.rest[0].1.statistic,
            Statistic::Absent(DEFAULT_ABSENCE_PERIOD)
        );
        assert_eq!(e.first.grouping, Some(Grouping::All));

        let e = parse(r#"datasync.errors[5m]{tenant =~ "acme|glo*", zone != a:b-1}.max() <= -2.5"#)
            .unwrap();
        assert_eq!(e.first.metric, "datasync.errors");
        assert_eq!(
            e.first.filters,
            vec![
                Filter::Fuzzy("tenant".into(), vec!["acme".into(), "glo*".into()]),
                Filter::NotEq("zone".into(), "a:b-1".into())
            ]
        );
        assert_eq!(e.first.predicate, Some((Cmp::Le, -2.5)));
        assert_eq!(
            parse("X[1m].percentile(.5)").unwrap().first.statistic,
            Statistic::Percentile(0.5)
        );
        assert_eq!(
            parse("X[1h].absent(20h)").unwrap().first.statistic,
            Statistic::Absent(Duration::from_secs(20 * 3600))
        );
        assert_eq!(
            parse(r#"X[1m]{k = "with \"quotes\" and spaces"}.count()"#)
                .unwrap()
                .first
                .filters,
            vec![Filter::Eq("k".into(), "with \"quotes\" and spaces".into())]
        );
    }

    #[test]
    fn what_is_outside_the_subset_is_named() {
        for (query, part) in [
            ("X[1m].mean().grouping()", "after the statistic"),
            ("X[1m].median()", "unsupported statistic \"median\""),
            ("X[1m].mean() in (1, 2)", "range predicates"),
            ("100 - X[1m].mean()", "not a metric name"),
            ("(X[1m].max() > 1).grouping().sum()", "nested queries"),
            ("X[90s].sum()", "interval"),
            ("X[2d].sum()", "interval"),
            ("X.sum()", "expected \"[\""),
            ("X[1m].percentile(99)", "fraction"),
            ("X[1m].sum() > ", "a number"),
            ("X[1m].sum() + 1", "unsupported character"),
            ("X[1m]{a ~ b}.sum()", "unsupported character"),
            ("X[1m]{a b}.sum()", "expected =, != or =~"),
            ("X[1m].sum() X[1m].sum()", "unsupported: \"X\""),
            ("X[1m]{a = \"b}.sum()", "unterminated string"),
            ("X[1m].absent(5d)", "absence detection period"),
        ] {
            let err = parse(query).unwrap_err();
            assert!(err.message.contains(part), "{query}: {err}");
        }
    }

    #[test]
    fn wildcards_match_runs() {
        assert!(wildcard("instance-2023-*", "instance-2023-07"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a*c*e", "abcde"));
        assert!(!wildcard("a*c", "ab"));
        assert!(!wildcard("abc", "abcd"));
        assert!(wildcard("*.example", "api.example"));
        assert!(!wildcard("a*a", "a"));
    }
}
