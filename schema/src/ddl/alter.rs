//! ALTER TABLE, as MariaDB applies it: every spec names columns as they were before the
//! statement (so `CHANGE a b …, CHANGE b a …` swaps two columns), positions (`FIRST`,
//! `AFTER x`) are resolved against the new names once all columns are changed, keys are
//! added last, and existing key parts follow their columns' renames.

use sqlparser::tokenizer::Token;

use super::keys::{is_key_definition, parse_foreign_key, parse_key, ForeignKey, KeyDef};
use super::tokens::{closing_paren, ident, is_word, render, split_top_level, starts_with};
use super::{
    add_foreign_key_index, add_key, charset_options, parse_column, remove_key, version, Ctx,
    DdlError,
};
use crate::model::{Column, ColumnType, LobSize, Table, Versioning};

/// Where a column goes.
enum Place {
    First,
    After(String),
}

/// An ALTER TABLE being applied to a copy of the table.
struct Alter<'a> {
    ctx: &'a Ctx<'a>,
    table: Table,
    /// Each column with the name it had before the statement (`None`: added by it).
    cols: Vec<(Option<String>, Column)>,
    /// Columns to move once every column is changed, in spec order (by new name).
    moves: Vec<(String, Place)>,
    new_keys: Vec<KeyDef>,
    /// Foreign keys added: InnoDB indexes them unless a key starts with their columns.
    foreign_keys: Vec<ForeignKey>,
    /// `ADD SYSTEM VERSIONING` (true) or `DROP SYSTEM VERSIONING` (false).
    versioning: Option<bool>,
    rename_to: Option<(String, String)>,
}

/// Applies the specs `t` (after the table name) to `table`; returns the new table and the
/// new name of a `RENAME TO`.
pub(super) fn alter(
    ctx: &Ctx,
    table: Table,
    t: &[Token],
) -> Result<(Table, Option<(String, String)>), DdlError> {
    let cols = table
        .columns
        .iter()
        .map(|c| (Some(c.name.clone()), c.clone()))
        .collect();
    let mut a = Alter {
        ctx,
        table,
        cols,
        moves: Vec::new(),
        new_keys: Vec::new(),
        foreign_keys: Vec::new(),
        versioning: None,
        rename_to: None,
    };
    for spec in split_top_level(t) {
        if spec.is_empty() {
            continue;
        }
        if is_partition_operation(spec) {
            // A partition operation comes last, and its own list has commas.
            break;
        }
        a.spec(spec)?;
    }
    a.finish()
}

/// `DROP PARTITION p1, p2`, `REORGANIZE PARTITION … INTO (…)`, `PARTITION BY …`, …: they
/// change no column.
fn is_partition_operation(spec: &[Token]) -> bool {
    let partition =
        |i: usize| is_word(spec.get(i), "PARTITION") || is_word(spec.get(i), "PARTITIONING");
    partition(0)
        || (partition(1)
            && [
                "ADD",
                "DROP",
                "TRUNCATE",
                "ANALYZE",
                "CHECK",
                "OPTIMIZE",
                "REBUILD",
                "REPAIR",
                "REORGANIZE",
                "COALESCE",
                "EXCHANGE",
                "REMOVE",
                "DISCARD",
                "IMPORT",
                "CONVERT",
            ]
            .iter()
            .any(|w| is_word(spec.first(), w)))
}

impl Alter<'_> {
    fn err(&self, reason: impl Into<String>) -> DdlError {
        self.ctx.err(reason)
    }

    /// The column that had `name` before the statement.
    fn old(&self, name: &str) -> Option<usize> {
        self.cols
            .iter()
            .position(|(old, _)| old.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(name)))
    }

    /// The column named `name` now.
    fn current(&self, name: &str) -> Option<usize> {
        self.cols
            .iter()
            .position(|(_, c)| c.name.eq_ignore_ascii_case(name))
    }

    fn missing(&self, name: &str) -> DdlError {
        self.err(format!("no column `{name}` in {}", self.table.qualified()))
    }

    fn spec(&mut self, spec: &[Token]) -> Result<(), DdlError> {
        let w = |i: usize| match spec.get(i) {
            Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        };
        let mut i = 1;
        let skip = |i: &mut usize, words: &[&str]| -> bool {
            let hit = starts_with(&spec[*i..], words);
            if hit {
                *i += words.len();
            }
            hit
        };
        match w(0).as_str() {
            "ADD" => {
                if starts_with(&spec[1..], &["SYSTEM", "VERSIONING"]) {
                    self.versioning = Some(true);
                    return Ok(());
                }
                if is_key_definition(&spec[1..]) {
                    match parse_key(&spec[1..]).map_err(|e| self.err(e))? {
                        Some(k) => self.new_keys.push(k),
                        // A foreign key indexes its columns; CHECK and PERIOD FOR
                        // SYSTEM_TIME change no key.
                        None => self
                            .foreign_keys
                            .extend(parse_foreign_key(&spec[1..]).map_err(|e| self.err(e))?),
                    }
                    return Ok(());
                }
                skip(&mut i, &["COLUMN"]);
                let if_not_exists = skip(&mut i, &["IF", "NOT", "EXISTS"]);
                if matches!(spec.get(i), Some(Token::LParen)) {
                    let close =
                        closing_paren(spec, i).ok_or_else(|| self.err("unbalanced parentheses"))?;
                    for part in split_top_level(&spec[i + 1..close]) {
                        self.add(part, None, if_not_exists)?;
                    }
                } else {
                    let (def, place) = place_clause(&spec[i..]);
                    self.add(def, place, if_not_exists)?;
                }
            }
            "DROP" => match w(1).as_str() {
                "PRIMARY" => self.table.primary_key = None,
                "INDEX" | "KEY" => {
                    i = 2;
                    skip(&mut i, &["IF", "EXISTS"]);
                    let name =
                        ident(spec.get(i)).ok_or_else(|| self.err("expected an index name"))?;
                    // The server had it (the statement ran): one the model lacks is a
                    // plain index it never needed.
                    remove_key(&mut self.table, &name);
                }
                "CONSTRAINT" => {
                    // A UNIQUE constraint is a unique key; CHECK and FOREIGN KEY are not keys.
                    i = 2;
                    skip(&mut i, &["IF", "EXISTS"]);
                    if let Some(name) = ident(spec.get(i)) {
                        remove_key(&mut self.table, &name);
                    }
                }
                // The index a foreign key made stays until dropped by name.
                "FOREIGN" | "CHECK" | "PERIOD" => {}
                "SYSTEM" => self.versioning = Some(false),
                _ => {
                    skip(&mut i, &["COLUMN"]);
                    let if_exists = skip(&mut i, &["IF", "EXISTS"]);
                    let name =
                        ident(spec.get(i)).ok_or_else(|| self.err("expected a column name"))?;
                    match self.old(&name) {
                        Some(at) => {
                            self.cols.remove(at);
                        }
                        None if if_exists => {}
                        None => return Err(self.missing(&name)),
                    }
                }
            },
            "MODIFY" | "CHANGE" => {
                let change = w(0) == "CHANGE";
                skip(&mut i, &["COLUMN"]);
                let if_exists = skip(&mut i, &["IF", "EXISTS"]);
                let target =
                    ident(spec.get(i)).ok_or_else(|| self.err("expected a column name"))?;
                if change {
                    i += 1;
                }
                let Some(at) = self.old(&target) else {
                    return if if_exists {
                        Ok(())
                    } else {
                        Err(self.missing(&target))
                    };
                };
                let (def, place) = place_clause(&spec[i..]);
                let (column, inline, versioned) = parse_column(self.ctx, def)?;
                if versioned {
                    self.versioning = Some(true);
                }
                if let Some(place) = place {
                    self.moves.push((column.name.clone(), place));
                }
                self.cols[at].1 = column;
                self.new_keys.extend(inline);
            }
            "RENAME" => match w(1).as_str() {
                "COLUMN" => {
                    let from =
                        ident(spec.get(2)).ok_or_else(|| self.err("expected a column name"))?;
                    let to = ident(spec.get(4))
                        .filter(|_| is_word(spec.get(3), "TO"))
                        .ok_or_else(|| self.err("expected RENAME COLUMN a TO b"))?;
                    let at = self.old(&from).ok_or_else(|| self.missing(&from))?;
                    self.cols[at].1.name = to;
                }
                "INDEX" | "KEY" => {
                    let from =
                        ident(spec.get(2)).ok_or_else(|| self.err("expected an index name"))?;
                    let to = ident(spec.get(4))
                        .filter(|_| is_word(spec.get(3), "TO"))
                        .ok_or_else(|| self.err("expected RENAME INDEX a TO b"))?;
                    // One the model lacks is a plain index it never needed.
                    if let Some(index) = self
                        .table
                        .unique_keys
                        .iter_mut()
                        .chain(&mut self.table.indexes)
                        .find(|k| k.name.eq_ignore_ascii_case(&from))
                    {
                        index.name = to;
                    }
                }
                _ => {
                    let at = if is_word(spec.get(1), "TO") || is_word(spec.get(1), "AS") {
                        2
                    } else {
                        1
                    };
                    let (to, _) = self.ctx.table_name(spec, at)?;
                    self.rename_to = Some(to);
                }
            },
            "ALTER" => {
                if matches!(w(1).as_str(), "INDEX" | "KEY" | "CHECK" | "CONSTRAINT") {
                    // ALTER INDEX i [NOT] IGNORED (MariaDB 10.6), ALTER CHECK … [NOT]
                    // ENFORCED (MySQL): no change to the model.
                    return Ok(());
                }
                skip(&mut i, &["COLUMN"]);
                let name = ident(spec.get(i)).ok_or_else(|| self.err("expected a column name"))?;
                let at = self
                    .old(&name)
                    .or_else(|| self.current(&name))
                    .ok_or_else(|| self.missing(&name))?;
                let rest = &spec[i + 1..];
                let column = &mut self.cols[at].1;
                if starts_with(rest, &["SET", "DEFAULT"]) {
                    column.default = Some(render(&rest[2..]));
                } else if starts_with(rest, &["DROP", "DEFAULT"]) {
                    column.default = None;
                } else if starts_with(rest, &["SET", "INVISIBLE"]) {
                    column.invisible = true;
                } else if starts_with(rest, &["SET", "VISIBLE"]) {
                    column.invisible = false;
                } else {
                    return Err(self.err(format!("unknown ALTER COLUMN form `{}`", render(spec))));
                }
            }
            "CONVERT" => {
                let (charset, collation) = charset_options(&spec[1..]);
                let charset = charset
                    .ok_or_else(|| self.err("CONVERT TO CHARACTER SET without a charset"))?;
                for (_, c) in &mut self.cols {
                    convert(c, &charset, collation.as_deref());
                }
                self.table.charset = Some(charset);
                self.table.collation = collation;
            }
            "WITH" | "WITHOUT" if w(1) == "SYSTEM" => self.versioning = Some(w(0) == "WITH"),
            // Table options, space-separated in one spec: only a charset matters here.
            "DEFAULT"
            | "CHARACTER"
            | "CHARSET"
            | "COLLATE"
            | "ENGINE"
            | "AUTO_INCREMENT"
            | "COMMENT"
            | "ROW_FORMAT"
            | "KEY_BLOCK_SIZE"
            | "ALGORITHM"
            | "LOCK"
            | "FORCE"
            | "ORDER"
            | "STATS_AUTO_RECALC"
            | "STATS_PERSISTENT"
            | "STATS_SAMPLE_PAGES"
            | "PAGE_COMPRESSED"
            | "PAGE_COMPRESSION_LEVEL"
            | "ENCRYPTED"
            | "ENCRYPTION_KEY_ID"
            | "CHECKSUM"
            | "TABLE_CHECKSUM"
            | "DELAY_KEY_WRITE"
            | "PACK_KEYS"
            | "MAX_ROWS"
            | "MIN_ROWS"
            | "AVG_ROW_LENGTH"
            | "INSERT_METHOD"
            | "UNION"
            | "TABLESPACE"
            | "DATA"
            | "INDEX"
            | "TRANSACTIONAL"
            | "DISCARD"
            | "IMPORT"
            | "ENABLE"
            | "DISABLE"
            | "SEQUENCE"
            | "NOWAIT"
            | "WAIT"
            | "STORAGE" => self.options(spec),
            // Every spec that changes a column or a key starts with a word above: anything
            // else is a table option (`STORAGE DISK`, `CONNECTION='…'`, an engine's own),
            // which changes no column and must never stop replication.
            _ => self.options(spec),
        }
        Ok(())
    }

    /// Table options: only a charset matters here.
    fn options(&mut self, spec: &[Token]) {
        let (charset, collation) = charset_options(spec);
        if charset.is_some() {
            self.table.charset = charset;
            self.table.collation = collation;
        }
    }

    fn add(
        &mut self,
        def: &[Token],
        place: Option<Place>,
        if_not_exists: bool,
    ) -> Result<(), DdlError> {
        let (column, inline, versioned) = parse_column(self.ctx, def)?;
        if versioned {
            self.versioning = Some(true);
        }
        if self.current(&column.name).is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(self.err(format!(
                "column `{}` already exists in {}",
                column.name,
                self.table.qualified()
            )));
        }
        if let Some(place) = place {
            self.moves.push((column.name.clone(), place));
        }
        self.cols.push((None, column));
        self.new_keys.extend(inline);
        Ok(())
    }

    fn finish(mut self) -> Result<(Table, Option<(String, String)>), DdlError> {
        // Positions, in spec order, against the new names.
        for (name, place) in std::mem::take(&mut self.moves) {
            let from = self.current(&name).ok_or_else(|| self.missing(&name))?;
            let entry = self.cols.remove(from);
            let to = match place {
                Place::First => 0,
                Place::After(after) => {
                    self.current(&after).ok_or_else(|| {
                        self.err(format!(
                            "AFTER `{after}`: no such column in {}",
                            self.table.qualified()
                        ))
                    })? + 1
                }
            };
            self.cols.insert(to, entry);
        }
        for (i, (_, c)) in self.cols.iter().enumerate() {
            if self.cols[i + 1..]
                .iter()
                .any(|(_, d)| d.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(self.err(format!(
                    "two columns named `{}` in {}",
                    c.name,
                    self.table.qualified()
                )));
            }
        }
        // Existing key parts follow their columns (by the name before the statement; a
        // column dropped and added again under its name keeps its keys); a key left with
        // no column goes.
        let renamed = |name: &str| -> Option<String> {
            self.cols
                .iter()
                .find(|(old, _)| old.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(name)))
                .or_else(|| {
                    self.cols
                        .iter()
                        .find(|(old, c)| old.is_none() && c.name.eq_ignore_ascii_case(name))
                })
                .map(|(_, c)| c.name.clone())
        };
        let remap = |index: &mut crate::model::Index| {
            index.columns = index.columns.iter().filter_map(|c| renamed(c)).collect();
        };
        let mut table = self.table.clone();
        if let Some(pk) = &mut table.primary_key {
            remap(pk);
            if pk.columns.is_empty() {
                table.primary_key = None;
            }
        }
        for list in [&mut table.unique_keys, &mut table.indexes] {
            list.iter_mut().for_each(remap);
            list.retain(|k| !k.columns.is_empty());
        }
        table.columns = self.cols.into_iter().map(|(_, c)| c).collect();
        for k in self.new_keys {
            add_key(self.ctx, &mut table, k)?;
        }
        for fk in self.foreign_keys {
            add_foreign_key_index(self.ctx, &mut table, fk)?;
        }
        match self.versioning {
            Some(true) if table.versioning.is_none() => version(&mut table),
            Some(false) => {
                // The keys lose the row end the versioning added to them.
                let end = table
                    .columns
                    .iter()
                    .find(|c| c.period == Some(crate::model::Period::RowEnd))
                    .map(|c| c.name.clone());
                if let Some(end) = end {
                    for key in table.primary_key.iter_mut().chain(&mut table.unique_keys) {
                        if key.columns.len() > 1 {
                            key.columns.retain(|c| !c.eq_ignore_ascii_case(&end));
                        }
                    }
                }
                // The server's own period columns go with it; declared ones stay.
                if table.versioning == Some(Versioning::Implicit) {
                    table.columns.retain(|c| c.period.is_none());
                } else {
                    for c in &mut table.columns {
                        c.period = None;
                        c.generated = None;
                    }
                }
                table.versioning = None;
            }
            _ => {}
        }
        if table.versioning == Some(Versioning::Implicit) {
            // The implicit row start and end stay last: a column added goes before them.
            let (period, mut rest): (Vec<Column>, Vec<Column>) = std::mem::take(&mut table.columns)
                .into_iter()
                .partition(|c| c.period.is_some());
            rest.extend(period);
            table.columns = rest;
        }
        // Primary key columns stay NOT NULL whatever a MODIFY said.
        if let Some(pk) = table.primary_key.clone() {
            for c in table
                .columns
                .iter_mut()
                .filter(|c| pk.columns.iter().any(|k| k.eq_ignore_ascii_case(&c.name)))
            {
                c.nullable = false;
            }
        }
        Ok((table, self.rename_to))
    }
}

/// Splits a trailing `FIRST` or `AFTER x` off a column definition.
fn place_clause(tokens: &[Token]) -> (&[Token], Option<Place>) {
    let n = tokens.len();
    if n >= 1 && is_word(tokens.get(n - 1), "FIRST") {
        return (&tokens[..n - 1], Some(Place::First));
    }
    if n >= 2 && is_word(tokens.get(n - 2), "AFTER") {
        if let Some(after) = ident(tokens.get(n - 1)) {
            return (&tokens[..n - 2], Some(Place::After(after)));
        }
    }
    (tokens, None)
}

/// CONVERT TO CHARACTER SET for one column: text columns take the charset; TEXT and
/// VARCHAR grow when the new charset needs more bytes per character, as the server does.
fn convert(c: &mut Column, charset: &str, collation: Option<&str>) {
    if !c.ty.is_text() {
        return;
    }
    let old = c.charset.as_deref().and_then(mbmaxlen).unwrap_or(1);
    let new = mbmaxlen(charset).unwrap_or(old);
    if new > old {
        c.ty = match &c.ty {
            ColumnType::Text { size } => {
                let chars = lob_bytes(*size) / old;
                ColumnType::Text {
                    size: lob_for(chars * new),
                }
            }
            ColumnType::VarChar { chars } if chars * new > 65_535 => ColumnType::Text {
                size: lob_for(chars * new),
            },
            other => other.clone(),
        };
    }
    c.charset = Some(charset.to_owned());
    c.collation = collation.map(str::to_owned);
}

fn lob_bytes(size: LobSize) -> u32 {
    match size {
        LobSize::Tiny => 255,
        LobSize::Regular => 65_535,
        LobSize::Medium => 16_777_215,
        LobSize::Long => u32::MAX,
    }
}

/// The smallest TEXT/BLOB that holds `bytes`.
pub(crate) fn lob_for(bytes: u32) -> LobSize {
    match bytes {
        0..=255 => LobSize::Tiny,
        256..=65_535 => LobSize::Regular,
        65_536..=16_777_215 => LobSize::Medium,
        _ => LobSize::Long,
    }
}

/// Bytes per character at most, for the character sets MariaDB ships.
pub(crate) fn mbmaxlen(charset: &str) -> Option<u32> {
    Some(match charset {
        "binary" | "latin1" | "latin2" | "latin5" | "latin7" | "ascii" | "cp1250" | "cp1251"
        | "cp1256" | "cp1257" | "cp850" | "cp852" | "cp866" | "dec8" | "greek" | "hebrew"
        | "hp8" | "keybcs2" | "koi8r" | "koi8u" | "macce" | "macroman" | "swe7" | "tis620"
        | "armscii8" | "geostd8" | "armscii" => 1,
        "ucs2" | "gbk" | "big5" | "sjis" | "cp932" | "euckr" | "gb2312" => 2,
        "utf8" | "utf8mb3" | "ujis" | "eucjpms" => 3,
        "utf8mb4" | "utf16" | "utf16le" | "utf32" => 4,
        _ => return None,
    })
}
