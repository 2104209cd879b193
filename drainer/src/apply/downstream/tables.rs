//! What the downstream's own tables are: their columns (for the sync modes), their
//! foreign keys (for the workers' order) and which have triggers.

use super::*;

/// A foreign key of a downstream table: the child table and the parent table it
/// references, each as (schema, table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub child: (String, String),
    pub parent: (String, String),
}

impl Downstream {
    /// The downstream's columns of `schema.table`, in order (cached until the next DDL).
    pub async fn columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Vec<String>, DownstreamError> {
        let key = (schema.to_owned(), table.to_owned());
        if let Some(c) = self.columns.get(&key) {
            return Ok(c.clone());
        }
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let sql = "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                   ORDER BY ORDINAL_POSITION";
        let names: Vec<Vec<u8>> = match watched(&target, session, async {
            conn.exec(sql, (schema, table))
                .await
                .map_err(|e| classify(sql, e))
        })
        .await
        {
            Ok(names) => names,
            Err(e) => {
                self.reset();
                return Err(e);
            }
        };
        let names: Vec<String> = names
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .collect();
        self.columns.insert(key, names.clone());
        Ok(names)
    }

    /// The foreign keys of the downstream's tables in `schemas`.
    pub async fn foreign_keys(
        &mut self,
        schemas: &[String],
    ) -> Result<Vec<ForeignKey>, DownstreamError> {
        let sql = "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, \
                   REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
                   WHERE CONSTRAINT_SCHEMA = ?";
        type Row = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = self.per_schema(sql, schemas).await?;
        Ok(rows
            .into_iter()
            .map(|(a, b, c, d)| ForeignKey {
                child: (text(a), text(b)),
                parent: (text(c), text(d)),
            })
            .collect())
    }

    /// The downstream's tables in `schemas` that have triggers.
    pub async fn triggered_tables(
        &mut self,
        schemas: &[String],
    ) -> Result<std::collections::HashSet<(String, String)>, DownstreamError> {
        let sql = "SELECT DISTINCT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE \
                   FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ?";
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.per_schema(sql, schemas).await?;
        Ok(rows.into_iter().map(|(s, t)| (text(s), text(t))).collect())
    }

    /// The rows of `sql` (one parameter: a schema) for each of `schemas`. One query per
    /// schema, each naming it: the server opens only that schema's tables (a scan of
    /// every schema would open every table and view there is, `sys` included).
    pub(super) async fn per_schema<R: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        sql: &str,
        schemas: &[String],
    ) -> Result<Vec<R>, DownstreamError> {
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let result = watched(&target, session, async {
            let mut rows = Vec::new();
            for schema in schemas {
                let found: Vec<R> = conn
                    .exec(sql, (schema.as_str(),))
                    .await
                    .map_err(|e| classify(sql, e))?;
                rows.extend(found);
            }
            Ok(rows)
        })
        .await;
        self.reset_on_error(result)
    }

    /// Forgets cached downstream columns (after DDL, or an "unknown column" error).
    pub fn forget_columns(&mut self) {
        self.columns.clear();
    }

    /// Forgets the cached columns of one table.
    pub fn forget_table(&mut self, schema: &str, table: &str) {
        self.columns.remove(&(schema.to_owned(), table.to_owned()));
    }
}

/// A name the server sent, as text.
fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}
