//! What the pipeline reads of the downstream's tables besides their columns: the foreign
//! keys that order the workers' transactions, and the tables with triggers (whose rows
//! apply as row events).

use super::*;

/// How often the downstream's triggers are read again (a trigger created there directly
/// is seen within this).
pub(super) const TRIGGERS_EVERY: Duration = Duration::from_secs(10);

impl Run<'_> {
    /// Reads the downstream's foreign keys for the workers' conflict keys (at start, and
    /// after every transaction that changes tables).
    pub(super) async fn refresh_links(&mut self) -> Result<(), RunError> {
        let schemas = self.tracked_schemas();
        let message = "cannot read the downstream's foreign keys yet; retrying";
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.applier.down.foreign_keys(&schemas).await {
                Ok(fks) => break self.pool.set_links(links(&fks)),
                Err(e) => {
                    self.on_failure(Retry::Columns, message, e, &mut backoff)
                        .await?
                }
            }
        }
        self.refresh_triggers(&schemas).await
    }

    /// The downstream schemas of the tracked tables (as `[[syncer.route]]` names them).
    pub(super) fn tracked_schemas(&self) -> Vec<String> {
        let mut schemas: Vec<String> = self
            .history
            .catalog()
            .tables
            .keys()
            .map(|(schema, table)| self.routes.target(schema, table).0)
            .collect();
        schemas.sort();
        schemas.dedup();
        schemas
    }

    /// Reads which downstream tables have triggers (their rows then apply as row
    /// events): at start, after DDL, and every `TRIGGERS_EVERY` (a trigger created on the
    /// downstream directly is seen then).
    pub(super) async fn refresh_triggers(&mut self, schemas: &[String]) -> Result<(), RunError> {
        let message = "cannot read the downstream's triggers yet; retrying";
        let mut backoff = Duration::from_millis(100);
        let found = loop {
            match self.applier.down.triggered_tables(schemas).await {
                Ok(found) => break found,
                Err(e) => {
                    self.on_failure(Retry::Columns, message, e, &mut backoff)
                        .await?
                }
            }
        };
        if found != self.triggered && !self.config.syncer.fire_triggers {
            tracing::info!(tables = ?found, "downstream tables with triggers: their rows apply as row events, which fire none");
        }
        self.triggered = found;
        self.triggers_read = Instant::now();
        Ok(())
    }
}
