//! The starting definitions, read from the upstream as it prints them.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::ddl::Database;
use crate::history::Snapshot;

/// The server's own schemas: never bootstrapped, copied or replicated as data.
pub const SYSTEM: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// What [`crate::History::bootstrap`] needs: the server's default charset, `SHOW CREATE
/// DATABASE` of every non-system schema, then `SHOW CREATE TABLE` of every table
/// `wanted` accepts (`wanted(schema, table)`): base tables, system-versioned ones and
/// sequences (views have no rows).
///
/// The definitions are the upstream's at the moment of reading: bootstrap where the
/// replication starts, with no DDL between the starting position and this call.
pub async fn read_upstream(
    conn: &mut Conn,
    wanted: impl Fn(&str, &str) -> bool,
) -> Result<Snapshot, mysql_async::Error> {
    let (charset, collation): (Option<String>, Option<String>) = conn
        .query_first("SELECT @@character_set_server, @@collation_server")
        .await?
        .unwrap_or_default();
    let server = Database { charset, collation };
    let mut out = Vec::new();
    let schemas: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        .await?;
    for schema in schemas
        .iter()
        .filter(|s| !SYSTEM.iter().any(|sys| sys.eq_ignore_ascii_case(s)))
    {
        let row: Option<(String, String)> = conn
            .query_first(format!("SHOW CREATE DATABASE {}", quote(schema)))
            .await?;
        if let Some((_, create)) = row {
            out.push((String::new(), create));
        }
    }
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await?;
    for (schema, table) in tables {
        if SYSTEM.iter().any(|sys| sys.eq_ignore_ascii_case(&schema)) || !wanted(&schema, &table) {
            continue;
        }
        let row: Option<(String, String)> = conn
            .query_first(format!(
                "SHOW CREATE TABLE {}.{}",
                quote(&schema),
                quote(&table)
            ))
            .await?;
        if let Some((_, create)) = row {
            out.push((schema, create));
        }
    }
    Ok(Snapshot {
        server,
        statements: out,
    })
}
