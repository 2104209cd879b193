//! Row filters (`[[syncer.row-filter]]`): a condition on a table's row, evaluated on the
//! decoded row image, deciding which rows this direction replicates.
//!
//! The condition language is a small subset of SQL's: column names (bare or in
//! backquotes), literals (numbers, `'strings'`, `NULL`, `TRUE`, `FALSE`), comparisons
//! (`=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`), `IS [NOT] NULL`, `[NOT] IN (…)`, `AND`, `OR`,
//! `NOT` and parentheses. As in SQL, a comparison with NULL is unknown, and a row whose
//! condition is not true is not replicated. Unlike a server with a case-insensitive
//! collation, strings compare byte by byte (`'EU'` is not `'eu'`); numbers compare as
//! numbers, as SQL compares them: integers and decimals exactly (a BIGINT near 2^63
//! against a literal, a DECIMAL(30,10) against `0.0000000001`), a FLOAT or DOUBLE column,
//! a literal with an exponent or a string against a number as doubles; a date or time
//! compares as its text (`'2026-12-05 10:00:00'`); an ENUM as
//! its member's name.
//!
//! An UPDATE whose old row passes and new row does not is applied as a DELETE of the old
//! row; one whose new row passes only, as an INSERT of the new row (the row moved into or
//! out of what this direction replicates).

use std::cmp::Ordering;

use schema::{Table, Value};

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column(String),
    Literal(Lit),
    Compare(Box<Expr>, Op, Box<Expr>),
    IsNull(Box<Expr>, bool),
    In(Box<Expr>, Vec<Expr>, bool),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    /// An integer or decimal literal (no exponent): compared exactly.
    Exact(Exact),
    /// A literal with an exponent: a double.
    Number(f64),
    Text(String),
}

/// An integer or decimal number, exactly: its sign, its integer digits without leading
/// zeros, its fraction digits without trailing zeros (zero is positive, no digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exact {
    negative: bool,
    int: String,
    frac: String,
}

impl Exact {
    /// `-12.340`, `5`, `.5`, `007.`: `None` for anything else.
    fn parse(text: &str) -> Option<Exact> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Exact {
            negative,
            int,
            frac,
        })
    }

    fn integer(n: i128) -> Exact {
        Exact {
            negative: n < 0,
            int: if n == 0 {
                String::new()
            } else {
                n.unsigned_abs().to_string()
            },
            frac: String::new(),
        }
    }

    fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    fn to_f64(&self) -> f64 {
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}0{}.{}0", self.int, self.frac)
            .parse()
            .expect("digits make a number")
    }
}

impl Ord for Exact {
    fn cmp(&self, other: &Exact) -> Ordering {
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac));
        match (self.negative, other.negative) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

impl PartialOrd for Exact {
    fn partial_cmp(&self, other: &Exact) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(String),
    Text(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1
            }
            ')' => {
                out.push(Token::RParen);
                i += 1
            }
            ',' => {
                out.push(Token::Comma);
                i += 1
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("a string not closed (at {})", i)),
                        Some(&q) if q == quote && chars.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some('\\') if chars.get(i + 1).is_some() => {
                            s.push(chars[i + 1]);
                            i += 2
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1
                        }
                    }
                }
                out.push(Token::Text(s));
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&ch| ch == '`')
                    .ok_or("a `name` not closed")?;
                out.push(Token::Ident(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '=' => {
                out.push(Token::Op("="));
                i += 1
            }
            '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "!=" => "!=",
                    "<>" => "<>",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ if c == '<' => "<",
                    _ if c == '>' => ">",
                    _ => return Err(format!("unexpected {c:?}")),
                };
                i += op.len();
                out.push(Token::Op(op));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
                || c == '.' =>
            {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.' || *d == 'e' || *d == 'E')
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                if Exact::parse(&text).is_none() && text.parse::<f64>().is_err() {
                    return Err(format!("{text:?} is not a number"));
                }
                out.push(Token::Number(text));
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '$' || *d == '.')
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), String> {
        if self.peek() == Some(&token) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {what}, found {}", self.shown()))
        }
    }

    fn shown(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(t) => format!("{t:?}"),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Token::LParen) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::RParen, "`)`")?;
            return Ok(inner);
        }
        let left = self.operand()?;
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err(format!("expected NULL after IS, found {}", self.shown()));
            }
            return Ok(Expr::IsNull(Box::new(left), negated));
        }
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            self.expect(Token::LParen, "`(` after IN")?;
            let mut list = vec![self.operand()?];
            while self.peek() == Some(&Token::Comma) {
                self.at += 1;
                list.push(self.operand()?);
            }
            self.expect(Token::RParen, "`)` closing IN")?;
            return Ok(Expr::In(Box::new(left), list, negated));
        }
        if negated {
            return Err(format!("expected IN after NOT, found {}", self.shown()));
        }
        let op = match self.peek() {
            Some(Token::Op(op)) => *op,
            _ => return Err(format!("expected a comparison, found {}", self.shown())),
        };
        self.at += 1;
        let op = match op {
            "=" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            _ => Op::Ge,
        };
        Ok(Expr::Compare(Box::new(left), op, Box::new(self.operand()?)))
    }

    fn operand(&mut self) -> Result<Expr, String> {
        let token = self.peek().cloned();
        self.at += 1;
        match token {
            Some(Token::Number(text)) => Ok(Expr::Literal(match Exact::parse(&text) {
                Some(exact) => Lit::Exact(exact),
                None => Lit::Number(text.parse().expect("checked as it was read")),
            })),
            Some(Token::Text(s)) => Ok(Expr::Literal(Lit::Text(s))),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("NULL") => Ok(Expr::Literal(Lit::Null)),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("TRUE") => {
                Ok(Expr::Literal(Lit::Exact(Exact::integer(1))))
            }
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("FALSE") => {
                Ok(Expr::Literal(Lit::Exact(Exact::integer(0))))
            }
            Some(Token::Ident(w)) => Ok(Expr::Column(w)),
            _ => {
                self.at -= 1;
                Err(format!(
                    "expected a column or a value, found {}",
                    self.shown()
                ))
            }
        }
    }
}

impl Expr {
    /// Parses a condition; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut p = Parser {
            tokens: tokens(text)?,
            at: 0,
        };
        let e = p.or()?;
        if p.at < p.tokens.len() {
            return Err(format!("unexpected {} after the condition", p.shown()));
        }
        Ok(e)
    }

    /// The columns it names.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Column(c) = e {
                out.push(c.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Compare(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::IsNull(a, _) | Expr::Not(a) => a.walk(f),
            Expr::In(a, list, _) => {
                a.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Column(_) | Expr::Literal(_) => {}
        }
    }

    /// Whether the condition is true for `row` of `table` (unknown is not true).
    pub fn matches(&self, table: &Table, row: &[Option<Value>]) -> Result<bool, String> {
        Ok(self.truth(table, row)? == Some(true))
    }

    /// SQL's three-valued truth (`None`: unknown).
    fn truth(&self, table: &Table, row: &[Option<Value>]) -> Result<Option<bool>, String> {
        Ok(match self {
            Expr::And(a, b) => match (a.truth(table, row)?, b.truth(table, row)?) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.truth(table, row)?, b.truth(table, row)?) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.truth(table, row)?.map(|t| !t),
            Expr::IsNull(a, negated) => Some(a.value(table, row)?.is_none() != *negated),
            Expr::Compare(a, op, b) => {
                let (x, y) = (a.value(table, row)?, b.value(table, row)?);
                match (x, y) {
                    (Some(x), Some(y)) => Some(match compare(&x, &y) {
                        Some(o) => match op {
                            Op::Eq => o == Ordering::Equal,
                            Op::Ne => o != Ordering::Equal,
                            Op::Lt => o == Ordering::Less,
                            Op::Le => o != Ordering::Greater,
                            Op::Gt => o == Ordering::Greater,
                            Op::Ge => o != Ordering::Less,
                        },
                        None => false,
                    }),
                    _ => None,
                }
            }
            Expr::In(a, list, negated) => {
                let Some(x) = a.value(table, row)? else {
                    return Ok(None);
                };
                let mut unknown = false;
                let mut found = false;
                for e in list {
                    match e.value(table, row)? {
                        Some(y) if compare(&x, &y) == Some(Ordering::Equal) => found = true,
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                match (found, unknown) {
                    (true, _) => Some(!negated),
                    (false, true) => None,
                    (false, false) => Some(*negated),
                }
            }
            Expr::Column(_) | Expr::Literal(_) => {
                // A bare value: true when it is a non-zero number.
                self.value(table, row)?.map(|v| match v {
                    Scalar::Exact(n) => !n.is_zero(),
                    Scalar::Number(n) => n != 0.0,
                    Scalar::Text(_) => false,
                })
            }
        })
    }

    fn value(&self, table: &Table, row: &[Option<Value>]) -> Result<Option<Scalar>, String> {
        match self {
            Expr::Literal(Lit::Null) => Ok(None),
            Expr::Literal(Lit::Exact(n)) => Ok(Some(Scalar::Exact(n.clone()))),
            Expr::Literal(Lit::Number(n)) => Ok(Some(Scalar::Number(*n))),
            Expr::Literal(Lit::Text(s)) => Ok(Some(Scalar::Text(s.as_bytes().to_vec()))),
            Expr::Column(name) => {
                let at = table
                    .columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| format!("{}: no column {name}", table.qualified()))?;
                match row.get(at).and_then(|v| v.as_ref()) {
                    Some(v) => scalar(v).map_err(|kind| {
                        format!(
                            "{}.{name}: a row filter cannot compare {kind} values",
                            table.qualified()
                        )
                    }),
                    None => Ok(None),
                }
            }
            other => Err(format!("{other:?} is not a value")),
        }
    }
}

/// A value as a condition compares it.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    /// An integer or decimal.
    Exact(Exact),
    /// A FLOAT or DOUBLE.
    Number(f64),
    Text(Vec<u8>),
}

/// `v` as a condition compares it (`None`: NULL, or a DECIMAL that is no number); an
/// error names a kind of value with no text to compare.
fn scalar(v: &Value) -> Result<Option<Scalar>, &'static str> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Int(i) => Scalar::Exact(Exact::integer(i128::from(*i))),
        Value::UInt(u) => Scalar::Exact(Exact::integer(i128::from(*u))),
        Value::Float(f) => Scalar::Number(f64::from(*f)),
        Value::Double(d) => Scalar::Number(*d),
        Value::Decimal(d) => match Exact::parse(d) {
            Some(n) => Scalar::Exact(n),
            None => return Ok(None),
        },
        Value::Year(y) => Scalar::Exact(Exact::integer(i128::from(*y))),
        Value::Bit { value, .. } => Scalar::Exact(Exact::integer(i128::from(*value))),
        Value::Text(b) | Value::Bytes(b) => Scalar::Text(b.to_vec()),
        Value::Enum { name, .. } => Scalar::Text(name.clone().unwrap_or_default().into_bytes()),
        Value::Set { names, .. } => Scalar::Text(names.join(",").into_bytes()),
        Value::Date { year, month, day } => {
            Scalar::Text(format!("{year:04}-{month:02}-{day:02}").into_bytes())
        }
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => Scalar::Text(
            if *micros == 0 {
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
            } else {
                format!(
                    "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}"
                )
            }
            .into_bytes(),
        ),
        // A TIMESTAMP as its UTC date and time (the drainer's sessions run in UTC).
        Value::Timestamp { seconds, micros } => {
            let (year, month, day, hour, minute, second) =
                crate::apply::values::utc(i64::from(*seconds));
            return scalar(&Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros: *micros,
            });
        }
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => {
            let sign = if *negative { "-" } else { "" };
            let fraction = match micros {
                0 => String::new(),
                m => format!(".{m:06}"),
            };
            Scalar::Text(
                format!("{sign}{hours:02}:{minutes:02}:{seconds:02}{fraction}").into_bytes(),
            )
        }
        Value::Uuid(_) => return Err("UUID"),
        Value::Inet4(_) | Value::Inet6(_) => return Err("INET4/INET6"),
        Value::MysqlJson(_) => return Err("MySQL JSON"),
    }))
}

fn compare(a: &Scalar, b: &Scalar) -> Option<Ordering> {
    // Anything else against a number: both as doubles, as SQL does (a string as the
    // number it reads as).
    let double = |s: &Scalar| match s {
        Scalar::Exact(n) => Some(n.to_f64()),
        Scalar::Number(n) => Some(*n),
        Scalar::Text(t) => std::str::from_utf8(t).ok()?.trim().parse::<f64>().ok(),
    };
    match (a, b) {
        (Scalar::Exact(x), Scalar::Exact(y)) => Some(x.cmp(y)),
        (Scalar::Text(x), Scalar::Text(y)) => Some(x.cmp(y)),
        _ => double(a)?.partial_cmp(&double(b)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut catalog = schema::Catalog::new();
        catalog
            .apply(
                "app",
                "CREATE TABLE app.o (id INT PRIMARY KEY, region VARCHAR(8), amount DECIMAL(10,2), \
                 at DATETIME, kind ENUM('a','b'))",
            )
            .unwrap();
        catalog.table("app", "o").unwrap().clone()
    }

    fn row(region: Option<&str>, amount: &str) -> Vec<Option<Value>> {
        vec![
            Some(Value::Int(1)),
            region.map(|r| Value::Text(r.as_bytes().to_vec().into())),
            Some(Value::Decimal(amount.into())),
            Some(Value::DateTime {
                year: 2026,
                month: 12,
                day: 5,
                hour: 10,
                minute: 0,
                second: 0,
                micros: 0,
            }),
            Some(Value::Enum {
                index: 2,
                name: Some("b".into()),
            }),
        ]
    }

    fn check(condition: &str, r: &[Option<Value>]) -> bool {
        Expr::parse(condition)
            .unwrap()
            .matches(&table(), r)
            .unwrap()
    }

    #[test]
    fn conditions_evaluate_as_sql_does() {
        let eu = row(Some("eu"), "12.50");
        let none = row(None, "3");
        assert!(check("region = 'eu'", &eu));
        assert!(!check("region = 'EU'", &eu), "strings compare byte by byte");
        assert!(check("region = 'eu' AND amount > 10", &eu));
        assert!(!check("region = 'eu' AND amount > 20", &eu));
        assert!(check("region IN ('us', 'eu')", &eu));
        assert!(check("region NOT IN ('us')", &eu));
        assert!(check("NOT (region <> 'eu')", &eu));
        assert!(check("`region` = \"eu\" OR region IS NULL", &none));
        assert!(!check("region = 'eu'", &none), "NULL compares as unknown");
        assert!(!check("NOT region = 'eu'", &none), "NOT unknown is unknown");
        assert!(check("region IS NULL", &none));
        assert!(check(
            "at >= '2026-12-01' AND at < '2027-01-01 00:00:00'",
            &eu
        ));
        assert!(check("kind = 'b'", &eu));
        assert!(check("amount = 12.5", &eu));
        assert_eq!(
            Expr::parse("region = 'eu' AND amount > 1")
                .unwrap()
                .columns(),
            ["region", "amount"]
        );
    }

    #[test]
    fn integers_and_decimals_compare_exactly() {
        // 2^53 + 1 and its neighbours are one double: compared as doubles they are equal.
        let id = |v: Value| {
            let mut r = row(Some("eu"), "0.00000000000000000001");
            r[0] = Some(v);
            r
        };
        let big = id(Value::Int(9_007_199_254_740_993));
        assert!(check("id = 9007199254740993", &big));
        assert!(!check("id = 9007199254740992", &big));
        assert!(check("id > 9007199254740992", &big));
        assert!(!check("id IN (9007199254740992, 9007199254740994)", &big));
        let top = id(Value::UInt(u64::MAX));
        assert!(check("id = 18446744073709551615", &top));
        assert!(check("id > 18446744073709551614", &top));
        assert!(check("id > -9223372036854775808", &top));
        let low = id(Value::Int(i64::MIN));
        assert!(check("id < -9223372036854775807", &low));
        assert!(check("id = -9223372036854775808.000", &low));
        // Decimals: their digits, not a double's.
        let tiny = id(Value::Int(0));
        assert!(check("amount > 0", &tiny));
        assert!(check("amount = .00000000000000000001", &tiny));
        assert!(check("amount < 0.0000000000000000000100000001", &tiny));
        let negative = row(Some("eu"), "-12.340");
        assert!(check("amount = -12.34", &negative));
        assert!(check("amount < -12.3399999999999999999", &negative));
        assert!(check("amount > -12.3400000000000000001", &negative));
        assert!(check("amount < 0 AND amount > -13", &negative));
        assert!(
            check("amount = '-12.34'", &negative),
            "a string as a number"
        );
        assert!(check("amount < 1e3", &negative), "an exponent: doubles");
        assert!(check("id = TRUE", &id(Value::Int(1))));
        assert!(Expr::parse("amount > 1.2.3").is_err());
        assert!(Expr::parse("amount > -").is_err());
    }

    #[test]
    fn times_and_timestamps_compare_as_their_text() {
        let time = Value::Time {
            negative: true,
            hours: 30,
            minutes: 1,
            seconds: 2,
            micros: 0,
        };
        assert_eq!(scalar(&time), Ok(Some(Scalar::Text(b"-30:01:02".to_vec()))));
        // 2026-12-01 10:00:00.5 UTC.
        let ts = Value::Timestamp {
            seconds: 1_796_119_200,
            micros: 500_000,
        };
        assert_eq!(
            scalar(&ts),
            Ok(Some(Scalar::Text(b"2026-12-01 10:00:00.500000".to_vec())))
        );
        assert_eq!(scalar(&Value::Uuid([0; 16])), Err("UUID"));
    }

    #[test]
    fn bad_conditions_say_where() {
        assert_eq!(
            Expr::parse("region = ").unwrap_err(),
            "expected a column or a value, found the end"
        );
        assert!(Expr::parse("region == 'eu'").is_err());
        assert!(Expr::parse("region = 'eu")
            .unwrap_err()
            .contains("not closed"));
        assert!(Expr::parse("(region = 'eu'").unwrap_err().contains("`)`"));
        assert!(Expr::parse("region LIKE 'e%'")
            .unwrap_err()
            .contains("expected a comparison"));
        let unknown = Expr::parse("nope = 1")
            .unwrap()
            .matches(&table(), &row(None, "1"));
        assert_eq!(unknown.unwrap_err(), "app.o: no column nope");
    }
}
