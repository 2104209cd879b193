//! Key definitions, in CREATE TABLE bodies and ALTER TABLE ADD specs.

use sqlparser::tokenizer::Token;

use super::tokens::{closing_paren, ident, is_word, render};

/// What kind of key a definition makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Primary,
    Unique,
    /// INDEX, KEY, FULLTEXT, SPATIAL: no uniqueness.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyDef {
    pub kind: KeyKind,
    /// As written; `None` lets the server name it (after its first column).
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub if_not_exists: bool,
}

/// Whether `tokens` start a key or constraint definition rather than a column.
pub(crate) fn is_key_definition(tokens: &[Token]) -> bool {
    [
        "PRIMARY",
        "UNIQUE",
        "KEY",
        "INDEX",
        "CONSTRAINT",
        "FULLTEXT",
        "SPATIAL",
        "FOREIGN",
        "CHECK",
    ]
    .iter()
    .any(|w| is_word(tokens.first(), w))
        // PERIOD is no reserved word: `period INT` is a column.
        || (is_word(tokens.first(), "PERIOD") && is_word(tokens.get(1), "FOR"))
}

/// Parses a key definition; `Ok(None)` for constraints that are no key (FOREIGN KEY,
/// CHECK, PERIOD FOR).
pub(crate) fn parse_key(tokens: &[Token]) -> Result<Option<KeyDef>, String> {
    let mut i = 0;
    let at = |i: usize| tokens.get(i);
    let mut symbol = None;
    if is_word(at(i), "CONSTRAINT") {
        i += 1;
        // The constraint's own name, unless the next word already says what it is.
        if !["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"]
            .iter()
            .any(|w| is_word(at(i), w))
        {
            symbol = ident(at(i));
            i += 1;
        }
    }
    if ["FOREIGN", "CHECK", "PERIOD"]
        .iter()
        .any(|w| is_word(at(i), w))
    {
        return Ok(None);
    }
    let kind = if is_word(at(i), "PRIMARY") {
        if !is_word(at(i + 1), "KEY") {
            return Err(format!("expected PRIMARY KEY in `{}`", render(tokens)));
        }
        i += 2;
        KeyKind::Primary
    } else if is_word(at(i), "UNIQUE") {
        i += 1;
        if is_word(at(i), "INDEX") || is_word(at(i), "KEY") {
            i += 1;
        }
        KeyKind::Unique
    } else {
        if is_word(at(i), "FULLTEXT") || is_word(at(i), "SPATIAL") {
            i += 1;
        }
        if is_word(at(i), "INDEX") || is_word(at(i), "KEY") {
            i += 1;
        }
        KeyKind::Plain
    };
    let mut if_not_exists = false;
    if is_word(at(i), "IF") && is_word(at(i + 1), "NOT") && is_word(at(i + 2), "EXISTS") {
        if_not_exists = true;
        i += 3;
    }
    let mut name = None;
    if !matches!(at(i), Some(Token::LParen)) && !is_word(at(i), "USING") {
        name = Some(
            ident(at(i)).ok_or_else(|| format!("expected a key name in `{}`", render(tokens)))?,
        );
        i += 1;
    }
    if is_word(at(i), "USING") {
        i += 2;
    }
    if !matches!(at(i), Some(Token::LParen)) {
        return Err(format!(
            "expected the key's column list in `{}`",
            render(tokens)
        ));
    }
    let close = closing_paren(tokens, i)
        .ok_or_else(|| format!("unbalanced parentheses in `{}`", render(tokens)))?;
    let columns = key_columns(&tokens[i + 1..close])?;
    Ok(Some(KeyDef {
        kind,
        // CONSTRAINT uq UNIQUE (email) names the key `uq`.
        name: if kind == KeyKind::Primary {
            Some("PRIMARY".into())
        } else {
            name.or(symbol)
        },
        columns,
        if_not_exists,
    }))
}

/// A foreign key: InnoDB gives it an index of its own unless one starts with its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignKey {
    /// The index's name: the constraint's, else the one written after FOREIGN KEY
    /// (`None`: the server names it after its first column).
    pub name: Option<String>,
    pub columns: Vec<String>,
}

/// `[CONSTRAINT [symbol]] FOREIGN KEY [index_name] (cols) REFERENCES …`; `Ok(None)` for any
/// other definition.
pub(crate) fn parse_foreign_key(tokens: &[Token]) -> Result<Option<ForeignKey>, String> {
    let mut i = 0;
    let mut name = None;
    if is_word(tokens.first(), "CONSTRAINT") {
        i = 1;
        if !is_word(tokens.get(i), "FOREIGN") {
            name = ident(tokens.get(i));
            i += 1;
        }
    }
    if !(is_word(tokens.get(i), "FOREIGN") && is_word(tokens.get(i + 1), "KEY")) {
        return Ok(None);
    }
    i += 2;
    if is_word(tokens.get(i), "IF") {
        i += 3; // IF NOT EXISTS
    }
    if !matches!(tokens.get(i), Some(Token::LParen)) {
        let index_name = ident(tokens.get(i));
        name = name.or(index_name);
        i += 1;
    }
    let close = closing_paren(tokens, i).ok_or_else(|| {
        format!(
            "FOREIGN KEY without its column list in `{}`",
            render(tokens)
        )
    })?;
    Ok(Some(ForeignKey {
        name,
        columns: key_columns(&tokens[i + 1..close])?,
    }))
}

/// `a, b(10), c DESC` → `[a, b, c]`.
fn key_columns(tokens: &[Token]) -> Result<Vec<String>, String> {
    super::tokens::split_top_level(tokens)
        .into_iter()
        .map(|part| match part.first() {
            Some(Token::Word(w)) => Ok(w.value.clone()),
            _ => Err(format!(
                "key part `{}` is not a column (functional key parts are not tracked)",
                render(part)
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tokens::tokenize;
    use super::*;

    fn key(sql: &str) -> Option<KeyDef> {
        parse_key(&tokenize(sql).unwrap()).unwrap()
    }

    #[test]
    fn key_forms() {
        let k = key("PRIMARY KEY (`id`)").unwrap();
        assert_eq!(
            (k.kind, k.name.as_deref(), k.columns.as_slice()),
            (KeyKind::Primary, Some("PRIMARY"), &["id".to_string()][..])
        );
        let k = key("UNIQUE KEY `uk` (`c`,`vc`(10))").unwrap();
        assert_eq!((k.kind, k.name.as_deref()), (KeyKind::Unique, Some("uk")));
        assert_eq!(k.columns, ["c", "vc"]);
        let k = key("CONSTRAINT c1 UNIQUE INDEX IF NOT EXISTS u2 USING BTREE (a DESC)").unwrap();
        assert_eq!(
            (k.kind, k.name.as_deref(), k.if_not_exists),
            (KeyKind::Unique, Some("u2"), true)
        );
        let k = key("KEY (a, b)").unwrap();
        assert_eq!((k.kind, k.name, k.columns.len()), (KeyKind::Plain, None, 2));
        let k = key("FULLTEXT KEY ft (body)").unwrap();
        assert_eq!(k.kind, KeyKind::Plain);
        assert_eq!(key("CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id)"), None);
        assert_eq!(key("CONSTRAINT `ck` CHECK (a > 0)"), None);
        assert!(parse_key(&tokenize("INDEX i ((a + b))").unwrap()).is_err());
    }

    #[test]
    fn foreign_keys_name_their_index() {
        let fk = |sql: &str| parse_foreign_key(&tokenize(sql).unwrap()).unwrap();
        let k = fk("CONSTRAINT fk1 FOREIGN KEY ix (a, b) REFERENCES p (x, y)").unwrap();
        assert_eq!((k.name.as_deref(), k.columns.len()), (Some("fk1"), 2));
        assert_eq!(
            fk("FOREIGN KEY ix (a) REFERENCES p (x)")
                .unwrap()
                .name
                .as_deref(),
            Some("ix")
        );
        assert_eq!(fk("FOREIGN KEY (a) REFERENCES p (x)").unwrap().name, None);
        assert_eq!(
            fk("CONSTRAINT FOREIGN KEY (a) REFERENCES p (x)")
                .unwrap()
                .name,
            None
        );
        assert_eq!(fk("CONSTRAINT c CHECK (a > 0)"), None);
    }
}
