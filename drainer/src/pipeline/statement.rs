//! A statement of the transaction being read: into the schema history at once, and
//! queued to run downstream at its place among the transaction's rows (or counted as
//! not run).

use super::*;

/// Whether `sql` is an ALTER statement (after leading blanks and `/* */` comments).
pub(super) fn starts_with_alter(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    while let Some(after) = rest.strip_prefix("/*") {
        rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
    }
    rest.get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case("ALTER"))
}

/// A statement to run downstream: its `USE` schema (empty: none) and the statement
/// with its session context.
pub(super) struct Ddl {
    /// The transaction's row changes before it.
    pub(super) after: usize,
    pub(super) schema: String,
    pub(super) statement: pump_reader::Statement,
    /// Statements run after it in its context (an event disabled downstream).
    pub(super) then: Vec<String>,
    /// The tables it changes, as the schema history has them after it (`None`: gone): if
    /// the downstream says it was done already, its tables must be these.
    pub(super) expect: Vec<((String, String), Option<Table>)>,
}

/// `[[syncer.route]]` as the DDL renamer asks for it.
struct RouteNames<'a>(&'a conf::Routes);

impl schema::Routes for RouteNames<'_> {
    fn table(&self, schema: &str, table: &str) -> Option<(String, String)> {
        self.0.table(schema, table)
    }
    fn schema(&self, schema: &str) -> Option<String> {
        self.0.schema(schema).map(str::to_owned)
    }
}

impl Run<'_> {
    /// How the operator names the current transaction in `skip-ddl`: its GTID, else its
    /// starting coordinates.
    pub(super) fn skip_name(&self) -> String {
        match &self.reading.start {
            Some(t) => t
                .gtid
                .as_ref()
                .map_or_else(|| t.start.to_string(), |g| g.to_string()),
            None => String::new(),
        }
    }

    /// Whether the operator asked to pass over the statements of the current transaction.
    pub(super) fn skip_requested(&self) -> bool {
        let Some(t) = &self.reading.start else {
            return false;
        };
        self.config.syncer.skip_ddl.iter().any(|s| {
            t.gtid.as_ref().is_some_and(|g| g.to_string() == *s) || t.start.to_string() == *s
        })
    }

    /// Takes a statement of the transaction being read into the schema history at once
    /// (later rows of the transaction decode with it; it is recorded at the commit), read
    /// in the SQL mode it was written in, and queues it to run downstream at its place
    /// among the transaction's rows, in its session context.
    pub(super) fn statement(&mut self, statement: pump_reader::Statement) -> Result<(), RunError> {
        self.tables.clear();
        self.reading.staged = true;
        let filter = &self.filter;
        let wants = |schema: &str, table: &str| filter.wants_table(schema, table);
        let vars = &statement.vars;
        let mode = SqlMode {
            ansi_quotes: vars.sql_mode_has(MODE_ANSI_QUOTES),
            no_backslash_escapes: vars.sql_mode_has(MODE_NO_BACKSLASH_ESCAPES),
        };
        let (schema_name, text) = (statement.schema.clone(), statement.text.clone());
        let staged = match &statement.undecodable {
            // Its text cannot be trusted: the tracker must not read it.
            Some(e) => Err(schema::DdlError {
                statement: text.chars().take(300).collect(),
                reason: e.to_string(),
            }),
            None => self.history.stage(&schema_name, &text, mode, &wants),
        };
        let applied = match staged {
            Ok(applied) => applied,
            Err(source) if self.skip_requested() => {
                tracing::warn!(at = %self.here(), statement = %text, reason = %source.reason,
                    "passing over a statement the schema tracker cannot apply, as skip-ddl asks");
                self.history.stage_skip(&text);
                self.reading.ddl_not_run += 1;
                return Ok(());
            }
            Err(source) => {
                let skip = self.skip_name();
                return Err(self.here_fail(Cause::Ddl { source, skip }));
            }
        };
        let replicated = match applied.class {
            Class::Table => !applied.tables.is_empty(),
            Class::Truncate => true,
            Class::Database => applied
                .databases
                .iter()
                .any(|(db, _)| self.filter.wants_schema(db)),
            // Views, triggers, routines and events follow their schema's filter.
            Class::Object => applied
                .objects
                .iter()
                .any(|o| self.filter.wants_schema(&o.schema)),
            _ => false,
        };
        if matches!(
            applied.class,
            Class::Table | Class::Database | Class::Object
        ) {
            // Run here or not (the other direction may run it), the downstream's tables
            // may change: look at them again (the workers, after this transaction).
            self.forget_columns();
            self.reading.tables_change = true;
        }
        if self.reading.fate == Fate::Looped {
            // This channel's own write, come back: tracked (above), never run again.
        } else if self.config.syncer.sync_ddl && replicated {
            if let Some(code) = statement.vars.unknown {
                tracing::warn!(at = %self.here(), code,
                    "the statement's event carries a status variable this drainer does not \
                     know: the session settings written after it are not replayed");
            }
            // CREATE and DROP DATABASE name their database, and their event's schema is
            // that database itself (not there yet for CREATE, perhaps gone for a replayed
            // DROP): they run without USE. ALTER DATABASE may rely on it.
            let schema = if applied.class == Class::Database && !starts_with_alter(&text) {
                String::new()
            } else {
                schema_name.clone()
            };
            // An event runs on the site it was created on, as MariaDB's replica has it:
            // downstream it is disabled (SLAVESIDE_DISABLED).
            let then = applied
                .objects
                .iter()
                .filter(|o| o.kind == ObjectKind::Event && !o.dropped)
                .map(|o| {
                    format!(
                        "ALTER EVENT {}.{} DISABLE ON SLAVE",
                        quote(&o.schema),
                        quote(&o.name)
                    )
                })
                .collect();
            let mut statement = statement;
            let mut schema = schema;
            let mut expect = applied.tables.clone();
            if !self.routes.is_empty() {
                // `[[syncer.route]]`: the names it gives, as the downstream has them.
                let refused =
                    match schema::rename(&text, &schema_name, mode, &RouteNames(&self.routes)) {
                        schema::Rename::Unchanged => None,
                        // The server runs the statement's bytes (in its client character
                        // set): a text that is its own bytes is renamed as text.
                        schema::Rename::Renamed(renamed)
                            if statement.bytes.as_ref() == statement.text.as_bytes() =>
                        {
                            statement.bytes = bytes::Bytes::from(renamed.clone().into_bytes());
                            statement.text = renamed;
                            None
                        }
                        schema::Rename::Renamed(_) => Some(
                            "its bytes are not UTF-8 text (another client character set), which \
                         the renaming cannot keep"
                                .to_owned(),
                        ),
                        schema::Rename::Refused(reason) => Some(reason),
                    };
                if let Some(reason) = refused {
                    if self.skip_requested() {
                        tracing::warn!(at = %self.here(), statement = %text, %reason,
                            "not run downstream under [[syncer.route]], as skip-ddl asks");
                        self.reading.ddl_not_run += 1;
                        return Ok(());
                    }
                    return Err(self.here_fail(Cause::Route {
                        statement: text.chars().take(300).collect(),
                        reason,
                        skip: self.skip_name(),
                    }));
                }
                if let Some(routed) = self.routes.schema(&schema) {
                    schema = routed.to_owned();
                }
                // A table this DDL makes or names may go where a table rule's goes.
                for ((s, t), _) in &expect {
                    if let Some(other) = self.routes.collision(s, t) {
                        return Err(self.here_fail(Cause::RouteCollision {
                            table: format!("{s}.{t}"),
                            other,
                        }));
                    }
                }
                for ((s, t), _) in &mut expect {
                    (*s, *t) = self.routes.target(s, t);
                }
            }
            self.reading.ddl.push(Ddl {
                after: self.reading.rows.len(),
                schema,
                statement,
                then,
                expect,
            });
        } else if replicated {
            tracing::info!(at = %self.here(), statement = %text, "not run downstream (sync-ddl = false)");
            self.reading.ddl_not_run += 1;
        }
        Ok(())
    }
}
