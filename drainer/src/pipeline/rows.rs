//! A rows event of the transaction being read: decoded with the definitions in force
//! where it stands, unless it carries this channel's mark (the transaction came back
//! from the reverse direction) or its table is not replicated.

use super::*;
use crate::verify::chunk::{Verdict, VERIFY_TABLE};

/// The `channel_id` of a mark-table row image (TiDB Binlog's layout: `id`, `channel_id`,
/// `val`, `channel_info`).
pub(super) fn mark_channel(image: &Option<Vec<pump_reader::event::Cell>>) -> Option<i64> {
    match image.as_ref()?.get(1)? {
        pump_reader::event::Cell::Int { bits, .. } => Some(*bits as i64),
        _ => None,
    }
}

impl Run<'_> {
    /// Decodes one rows event into the transaction's row changes (with the definitions in
    /// force at this position); their statements are built at the commit.
    pub(super) fn rows(&mut self, rows: &Rows, at: &Position) -> Result<(), RunError> {
        let (schema_name, table_name) = (&rows.table.schema, &rows.table.table);
        if let Some(mark) = &self.mark {
            if *schema_name == mark.schema && *table_name == mark.table {
                let ours = |image: &Option<Vec<pump_reader::event::Cell>>| {
                    mark_channel(image) == Some(mark.channel_id)
                };
                if rows.rows.iter().any(|c| ours(&c.before) || ours(&c.after)) {
                    self.reading.looped();
                    let stream = std::mem::take(&mut self.reading.stream);
                    self.abandon(stream);
                }
                return Ok(());
            }
        }
        if self.reading.dropped() {
            // Dropped whole at its commit: nothing of it needs decoding.
            return Ok(());
        }
        if *schema_name == self.verify_schema && table_name == VERIFY_TABLE {
            // `drainer verify`'s requests: answered at the commit, never applied as rows.
            let channel = self.config.syncer.channel_id;
            let requests = rows
                .rows
                .iter()
                .filter_map(|c| Verdict::from_cells(c.after.as_deref()?))
                .filter(|r| r.channel_id == channel);
            self.reading.verify.extend(requests);
            return Ok(());
        }
        if !self.filter.wants_table(schema_name, table_name) {
            return Ok(());
        }
        let cached = self
            .tables
            .get(schema_name.as_str())
            .and_then(|t| t.get(table_name.as_str()));
        let mut table = match cached {
            Some(t) => Arc::clone(t),
            None => {
                if let Some(other) = self.routes.collision(schema_name, table_name) {
                    return Err(RunError::apply(
                        &At::Position(at.clone()),
                        Cause::RouteCollision {
                            table: format!("{schema_name}.{table_name}"),
                            other,
                        },
                    ));
                }
                let t = self
                    .history
                    .catalog()
                    .table(schema_name, table_name)
                    .cloned()
                    .map(|mut t| {
                        // Routed: its rows go to the table of the downstream name.
                        if let Some((schema, name)) = self.routes.table(schema_name, table_name) {
                            (t.schema, t.name) = (schema, name);
                        }
                        Arc::new(t)
                    })
                    .ok_or_else(|| {
                        RunError::apply(
                            &At::Position(at.clone()),
                            Cause::Untracked {
                                schema: schema_name.clone(),
                                table: table_name.clone(),
                            },
                        )
                    })?;
                self.tables
                    .entry(schema_name.clone())
                    .or_default()
                    .insert(table_name.clone(), Arc::clone(&t));
                t
            }
        };
        // With `binlog_row_metadata = FULL` upstream, the binlog names the columns and
        // their signedness: other names stop the drainer (the history missed a change),
        // other signedness is taken from the binlog.
        if rows.table.column_names.is_some() || rows.table.unsigned.iter().any(Option::is_some) {
            let checked = schema::cross_check(&table, &rows.table)
                .map_err(|e| RunError::apply(&At::Position(at.clone()), e))?;
            if let Some((fixed, what)) = checked {
                tracing::warn!(table = %table.qualified(), %what, "the binlog's metadata corrects the tracked definition");
                table = Arc::new(fixed);
                self.tables
                    .entry(schema_name.clone())
                    .or_default()
                    .insert(table_name.clone(), Arc::clone(&table));
            }
        }
        if table.sequence {
            // Each site keeps its own sequences (docs/operations.md §7): the row NEXTVAL
            // rewrote is not replicated.
            return Ok(());
        }
        let checks = Checks {
            foreign_keys: rows.foreign_key_checks(),
            unique: rows.unique_checks(),
        };
        // System-versioned tables, and tables with triggers downstream, take the row
        // event itself (see `crate::apply::binlog`).
        // The seed's window, while the stream is in it (row changes it filters are
        // applied as SQL).
        if let (Some(window), Some(start)) = (&self.seed, &self.reading.start) {
            if window.past(start) {
                tracing::info!(at = %at, "past the seed's window: every row change applies");
                self.seed = None;
            }
        }
        let filter = self
            .row_filters
            .get(schema_name.as_str())
            .and_then(|t| t.get(table_name.as_str()));
        // A routed table's rows apply as SQL: its row events name the upstream's table.
        let replay = self.seed.is_none()
            && filter.is_none()
            && self.routes.table(schema_name, table_name).is_none()
            && rows.raw.format.is_some()
            && (table.versioning.is_some()
                || (!self.config.syncer.fire_triggers
                    && !self.triggered.is_empty()
                    && self
                        .triggered
                        .contains(&(table.schema.clone(), table.name.clone()))));
        let mut raw = replay.then(|| Raw::First(Arc::new(rows.raw.clone())));
        for change in &rows.rows {
            let decode = |image: &Option<Vec<pump_reader::event::Cell>>| {
                image
                    .as_ref()
                    .map(|cells| {
                        decode_row(&table, &rows.table, cells)
                            .map_err(|e| RunError::apply(&At::Position(at.clone()), e))
                    })
                    .transpose()
            };
            let (mut before, mut after) = (decode(&change.before)?, decode(&change.after)?);
            if let (Some(window), Some(start)) = (&self.seed, &self.reading.start) {
                let applies = |image: &Option<Vec<Option<schema::Value>>>| match image {
                    Some(row) => window
                        .applies(&table, start, row)
                        .map_err(|e| RunError::apply(&At::Position(at.clone()), Cause::Seed(e))),
                    None => Ok(false),
                };
                // An update whose row the copy holds on one side only becomes the insert
                // or the delete of the other.
                let (keep_before, keep_after) = (applies(&before)?, applies(&after)?);
                before = before.filter(|_| keep_before);
                after = after.filter(|_| keep_after);
            }
            if let Some(filter) = filter {
                // Only rows the condition holds for; an update moving a row in or out of
                // it becomes the insert or the delete.
                let passes = |image: &Option<Vec<Option<schema::Value>>>| match image {
                    Some(row) => filter.matches(&table, row).map_err(|e| {
                        RunError::apply(&At::Position(at.clone()), Cause::RowFilter(e))
                    }),
                    None => Ok(false),
                };
                let (keep_before, keep_after) = (passes(&before)?, passes(&after)?);
                before = before.filter(|_| keep_before);
                after = after.filter(|_| keep_after);
            }
            if before.is_some() || after.is_some() {
                let bytes = [&before, &after]
                    .into_iter()
                    .flatten()
                    .map(|row| row.iter().map(approx_size).sum::<usize>())
                    .sum::<usize>();
                let change = RowChange {
                    table: Arc::clone(&table),
                    before,
                    after,
                    checks,
                    raw: match raw.take() {
                        Some(first) => Some(first),
                        None if replay => Some(Raw::Rest),
                        None => None,
                    },
                };
                self.reading.push(change, bytes);
            }
        }
        Ok(())
    }
}
