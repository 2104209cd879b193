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
    /// The downstream's columns of `schema.table`, in order (cached until the next DDL;
    /// looked up for every transaction, without a copy).
    pub async fn columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Arc<[String]>, DownstreamError> {
        if let Some(c) = self.columns.get(schema).and_then(|t| t.get(table)) {
            return Ok(Arc::clone(c));
        }
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let sql = "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                   ORDER BY ORDINAL_POSITION";
        let names: Vec<Vec<u8>> = match watched(&target, session, async {
            dictionary(conn, sql, (schema, table)).await
        })
        .await
        {
            Ok(Ok(names)) => names,
            // The session is sound: only the answer is not to be trusted.
            Ok(Err(skipped)) => return Err(skipped),
            Err(e) => {
                self.reset();
                return Err(e);
            }
        };
        let names: Arc<[String]> = names.into_iter().map(text).collect();
        self.columns
            .entry(schema.to_owned())
            .or_default()
            .insert(table.to_owned(), Arc::clone(&names));
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
                match dictionary(conn, sql, (schema.as_str(),)).await? {
                    Ok(found) => rows.extend(found),
                    Err(skipped) => return Ok(Err(skipped)),
                }
            }
            Ok(Ok(rows))
        })
        .await;
        self.reset_on_error(result)?
    }

    /// Forgets cached downstream columns (after DDL, or an "unknown column" error).
    pub fn forget_columns(&mut self) {
        self.columns.clear();
    }

    /// Forgets the cached columns of one table.
    pub fn forget_table(&mut self, schema: &str, table: &str) {
        if let Some(tables) = self.columns.get_mut(schema) {
            tables.remove(table);
        }
    }
}

/// The rows of `sql`, a query of `information_schema`, on a writer's session; the inner
/// error: the server left a table out of the answer.
///
/// A writer's session holds its named lock (see [`Downstream::applied`]), and MariaDB
/// does not let a session that holds any lock wait for a table that a concurrent DDL
/// statement is changing (it could deadlock): `information_schema` leaves that table out
/// and warns (1684, `ER_WARN_I_S_SKIPPED_TABLE`). Read then, a table being altered by
/// the downstream's own users looks absent (the drainer stopped with "no such table"),
/// and its foreign keys and triggers would be missed. Such an answer is a transient
/// error: the caller reads again once the statement is done.
pub(super) async fn dictionary<R, P>(
    conn: &mut Conn,
    sql: &str,
    params: P,
) -> Result<Result<Vec<R>, DownstreamError>, DownstreamError>
where
    R: mysql_async::prelude::FromRow + Send + 'static,
    P: Into<mysql_async::Params> + Send,
{
    let rows: Vec<R> = conn.exec(sql, params).await.map_err(|e| classify(sql, e))?;
    if conn.get_warnings() == 0 {
        return Ok(Ok(rows));
    }
    let show = "SHOW WARNINGS";
    let warnings: Vec<(Vec<u8>, u32, Vec<u8>)> =
        conn.query(show).await.map_err(|e| classify(show, e))?;
    match warnings
        .into_iter()
        .find(|(_, code, _)| *code == SKIPPED_TABLE)
    {
        Some((_, code, message)) => Ok(Err(DownstreamError::Transient(format!(
            "{} ({code}), reading the downstream's tables; reading them again",
            text(message)
        )))),
        None => Ok(Ok(rows)),
    }
}

/// `ER_WARN_I_S_SKIPPED_TABLE`: "Table … was skipped since its definition is being
/// modified by concurrent DDL statement".
const SKIPPED_TABLE: u32 = 1684;

/// A name the server sent, as text.
fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}
