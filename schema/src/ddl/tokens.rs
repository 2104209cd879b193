//! Statements as tokens: sqlparser's tokenizer knows comments, quoted identifiers and
//! strings, so nothing here splits SQL on white space.

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The significant tokens of `sql`: comments and white space dropped, MariaDB/MySQL
/// executable comments (`/*! … */`, `/*!50100 … */`, `/*M!100301 … */`) expanded, since
/// the server runs what they hold.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let sql = strip_mysql_only_hints(sql);
    let tokens = Tokenizer::new(&MySqlDialect {}, &sql)
        .tokenize()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(tokens.len());
    for token in tokens {
        match token {
            // sqlparser expands `/*! … */` itself; MariaDB's own `/*M! … */` is left to us.
            Token::Whitespace(Whitespace::MultiLineComment(text)) => {
                if let Some(body) = text.strip_prefix("M!") {
                    out.extend(tokenize(
                        body.trim_start_matches(|c: char| c.is_ascii_digit()),
                    )?);
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The index past the quoted string or identifier that opens at `bytes[i]` (a `'`, `"`
/// or `` ` ``), as the server's lexer reads it: a doubled quote stands for itself, and a
/// backslash escapes the next byte in a string (not in a `` ` `` identifier).
pub fn past_quoted(bytes: &[u8], mut i: usize) -> usize {
    let q = bytes[i];
    i += 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && q != b'`' {
            i += 2;
        } else if bytes[i] == q {
            i += 1;
            if bytes.get(i) != Some(&q) {
                break;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    i
}

/// Removes executable comments MariaDB does not run: MySQL 5.7+ versions `/*!50700 … */` to
/// `/*!99999 … */`. sqlparser's MySQL tokenizer runs every version. This pass walks the
/// text as the server's lexer does (quotes, identifiers, comments), so it never looks
/// inside a string.
fn strip_mysql_only_hints(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains("/*!") {
        return sql.into();
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' | b'`' => i = past_quoted(bytes, i),
            b'#' => i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b'-' if sql[i..].starts_with("-- ") => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n)
            }
            b'/' if sql[i..].starts_with("/*") => {
                let end = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                let digits: String = sql[i..end]
                    .strip_prefix("/*!")
                    .unwrap_or("")
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if digits.len() == 5 && digits.as_str() >= "50700" {
                    out.push_str(&sql[last..i]);
                    out.push(' ');
                    last = end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last..]);
    out.into()
}

/// The SQL mode a statement was written in, as far as it changes how it reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqlMode {
    /// `ANSI_QUOTES`: `"x"` is an identifier, not a string.
    pub ansi_quotes: bool,
    /// `NO_BACKSLASH_ESCAPES`: `\` in a string is itself.
    pub no_backslash_escapes: bool,
}

/// `sql` rewritten to read the same in the default mode (the one the tokenizer knows):
/// under `ANSI_QUOTES`, `"x"` becomes `` `x` ``; under `NO_BACKSLASH_ESCAPES`, a
/// backslash in a string is doubled. Walks the text as the server's lexer does.
pub(crate) fn normalize(sql: &str, mode: SqlMode) -> std::borrow::Cow<'_, str> {
    if mode == SqlMode::default() || !(sql.contains('"') || sql.contains('\\')) {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                let identifier = c == '`' || (c == '"' && mode.ansi_quotes);
                out.push(if identifier { '`' } else { c });
                while let Some(d) = chars.next() {
                    if d == '\\' && !identifier && !mode.no_backslash_escapes {
                        out.push(d);
                        if let Some(e) = chars.next() {
                            out.push(e);
                        }
                    } else if d == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                            // A doubled quote: the character itself.
                            match (identifier, c) {
                                (true, '`') => out.push_str("``"),
                                (true, _) => out.push(c),
                                (false, _) => {
                                    out.push(c);
                                    out.push(c);
                                }
                            }
                        } else {
                            out.push(if identifier { '`' } else { c });
                            break;
                        }
                    } else if d == '`' && identifier && c != '`' {
                        out.push_str("``");
                    } else if d == '\\' && !identifier {
                        // NO_BACKSLASH_ESCAPES: the backslash is a character.
                        out.push_str("\\\\");
                    } else {
                        out.push(d);
                    }
                }
            }
            '#' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                out.push(chars.next().expect("peeked"));
                // An executable comment holds SQL: only a plain one is skipped whole.
                if !matches!(chars.peek(), Some('!' | 'M')) {
                    let mut last = ' ';
                    for d in chars.by_ref() {
                        out.push(d);
                        if last == '*' && d == '/' {
                            break;
                        }
                        last = d;
                    }
                }
            }
            other => out.push(other),
        }
    }
    out.into()
}

/// Tokens back to SQL text, one space between tokens.
pub(crate) fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match t {
            // Display does not double a quote inside a quoted identifier.
            Token::Word(w) if w.quote_style.is_some() => {
                let q = w.quote_style.unwrap_or('`');
                out.push(q);
                out.push_str(&w.value.replace(q, &format!("{q}{q}")));
                out.push(q);
            }
            // Nor a quote or backslash inside a string (MySQL's tokenizer unescaped both).
            Token::SingleQuotedString(v) | Token::DoubleQuotedString(v) => {
                out.push('\'');
                out.push_str(&v.replace('\\', "\\\\").replace('\'', "''"));
                out.push('\'');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

/// Whether `token` is the unquoted word `word` (case-insensitive).
pub(crate) fn is_word(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Whether `tokens` start with the unquoted words `words`.
pub(crate) fn starts_with(tokens: &[Token], words: &[&str]) -> bool {
    tokens.len() >= words.len()
        && words
            .iter()
            .enumerate()
            .all(|(i, w)| is_word(tokens.get(i), w))
}

/// Whether `words` (such as `IF EXISTS`) come at `*i`; if so `*i` moves past them.
pub(crate) fn skip_words(tokens: &[Token], i: &mut usize, words: &[&str]) -> bool {
    let found = starts_with(tokens.get(*i..).unwrap_or_default(), words);
    if found {
        *i += words.len();
    }
    found
}

/// Splits at commas outside parentheses.
pub(crate) fn split_top_level(tokens: &[Token]) -> Vec<&[Token]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
}

/// The index of the `)` closing the `(` at `open`.
pub(crate) fn closing_paren(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// An identifier token's name (quoted or not), for names that sqlparser may not parse.
pub(crate) fn ident(token: Option<&Token>) -> Option<String> {
    match token {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_go_and_executable_comments_stay() {
        let t = tokenize(
            "/* lead */ CREATE TABLE t (a INT) -- trailing\n /*!50100 PARTITION BY HASH (a) */",
        )
        .unwrap();
        assert_eq!(
            render(&t),
            "CREATE TABLE t ( a INT ) PARTITION BY HASH ( a )"
        );
        let t = tokenize("ALTER TABLE t /*M!100301 ADD COLUMN b INT */").unwrap();
        assert_eq!(render(&t), "ALTER TABLE t ADD COLUMN b INT");
        let t = tokenize("CREATE TABLE t (a INT /*!80023 INVISIBLE */)").unwrap();
        assert_eq!(
            render(&t),
            "CREATE TABLE t ( a INT )",
            "MySQL 8 comments are not MariaDB's"
        );
        let t = tokenize("# hash comment\nDROP TABLE `we``ird`, 'x''y', 'a\\\\b'").unwrap();
        assert_eq!(render(&t), r"DROP TABLE `we``ird` , 'x''y' , 'a\\b'");
        assert_eq!(
            render(&tokenize(&render(&t)).unwrap()),
            render(&t),
            "rendering round-trips"
        );
    }

    #[test]
    fn sql_modes_read_as_the_default_one() {
        let ansi = SqlMode {
            ansi_quotes: true,
            no_backslash_escapes: false,
        };
        assert_eq!(
            normalize(
                r#"CREATE TABLE "d"."t" ("a`b" INT DEFAULT 'x"y', "c""d" INT)"#,
                ansi
            ),
            r#"CREATE TABLE `d`.`t` (`a``b` INT DEFAULT 'x"y', `c"d` INT)"#
        );
        let raw = SqlMode {
            ansi_quotes: false,
            no_backslash_escapes: true,
        };
        let t = tokenize(&normalize(
            r"ALTER TABLE t ADD c VARCHAR(9) DEFAULT 'a\b\'",
            raw,
        ))
        .unwrap();
        assert!(
            t.iter()
                .any(|tok| matches!(tok, Token::SingleQuotedString(v) if v == r"a\b\")),
            "{t:?}"
        );
        // The default mode leaves the text alone.
        assert_eq!(normalize(r#""a\"b""#, SqlMode::default()), r#""a\"b""#);
        assert_eq!(
            normalize(r#"SELECT "x", 'c' /* "d" */ -- "e""#, ansi),
            r#"SELECT `x`, 'c' /* "d" */ -- "e""#
        );
    }

    #[test]
    fn top_level_commas_only() {
        let t = tokenize("ADD c DECIMAL(10,2), DROP d, ADD INDEX i (a, b)").unwrap();
        let parts: Vec<String> = split_top_level(&t).iter().map(|p| render(p)).collect();
        assert_eq!(
            parts,
            [
                "ADD c DECIMAL ( 10 , 2 )",
                "DROP d",
                "ADD INDEX i ( a , b )"
            ]
        );
    }
}
