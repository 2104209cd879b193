//! What a server says about itself: version, variables, the session's privileges.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use link::Server;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// How long connecting plus all preflight queries to one server may take.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);

/// The variables the checks read (lowercase names).
const VARIABLES: &[&str] = &[
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "binlog_annotate_row_events",
    "binlog_rows_query_log_events",
    "log_bin_compress",
    "server_id",
    "read_only",
    "log_bin_trust_function_creators",
];

/// One server as the preflight saw it, gathered through the configured user.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    /// `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1-log`.
    pub version: String,
    /// Global variables by lowercase name; a variable the server lacks is absent.
    pub variables: BTreeMap<String, String>,
    /// `CURRENT_USER()`, e.g. `drainer@%`.
    pub current_user: String,
    /// Global privileges (`REPLICATION SLAVE`, `SELECT`, `ALL PRIVILEGES`, …) of the user
    /// and its current role.
    pub global_privileges: BTreeSet<String>,
    /// Schema-level grants of the user and its current role: (schema name or LIKE
    /// pattern, privilege).
    pub schema_privileges: Vec<(String, String)>,
    /// TLS of this session, as the server reports it (`Ssl_version`, `Ssl_cipher`).
    pub tls: Option<TlsInUse>,
}

impl ServerFacts {
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }
}

/// TLS as a connection negotiated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInUse {
    /// `TLSv1.3`
    pub version: String,
    /// `TLS_AES_256_GCM_SHA384`
    pub cipher: String,
}

/// Connects as the configured user and reads what the checks need. The error is the
/// server's or the network's own message.
pub async fn gather(server: &Server) -> Result<ServerFacts, String> {
    match tokio::time::timeout(SERVER_TIMEOUT, gather_inner(server)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s from {}:{}",
            SERVER_TIMEOUT.as_secs(),
            server.host,
            server.port
        )),
    }
}

async fn gather_inner(server: &Server) -> Result<ServerFacts, mysql_async::Error> {
    let mut conn = server.session(server.opts()).await?;
    let result = read_facts(&mut conn).await;
    conn.disconnect().await.ok();
    result
}

/// TLS on a connection of the replication connection's own code (the binlog dump's),
/// up to the login: `None` in plain TCP.
pub async fn replication_tls(server: &Server) -> Result<Option<TlsInUse>, String> {
    let login = link::login::Response::new(0, &server.user);
    let opened = tokio::time::timeout(SERVER_TIMEOUT, server.open(&login))
        .await
        .map_err(|_| format!("no answer within {} s", SERVER_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    Ok(opened
        .stream
        .tls_version()
        .map(|(version, cipher)| TlsInUse { version, cipher }))
}

async fn read_facts(conn: &mut Conn) -> Result<ServerFacts, mysql_async::Error> {
    let (version, current_user): (String, String) = conn
        .query_first("SELECT VERSION(), CURRENT_USER()")
        .await?
        .unwrap_or_default();
    let names = VARIABLES
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(",");
    let variables: Vec<(String, String)> = conn
        .query(format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})"
        ))
        .await?;
    let variables = variables
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();

    let status: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        .await?;
    let status_of = |name: &str| {
        status
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let tls = status_of("Ssl_version").map(|version| TlsInUse {
        version,
        cipher: status_of("Ssl_cipher").unwrap_or_default(),
    });

    // SHOW GRANTS (of the session, no FOR) lists the user's grants and, on MariaDB, those
    // of its current role: what this session may do. information_schema's privilege
    // tables leave out roles. The lines carry the password hash; only privileges are kept.
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    let mut global_privileges = BTreeSet::new();
    let mut schema_privileges = Vec::new();
    for line in &grants {
        match parse_grant(line) {
            Some((privileges, GrantTarget::Global)) => global_privileges.extend(privileges),
            Some((privileges, GrantTarget::Schema(schema))) => {
                schema_privileges.extend(privileges.into_iter().map(|p| (schema.clone(), p)))
            }
            Some((_, GrantTarget::Table)) | None => {}
        }
    }
    Ok(ServerFacts {
        version,
        variables,
        current_user,
        global_privileges,
        schema_privileges,
        tls,
    })
}

/// What a GRANT line applies to.
#[derive(Debug, PartialEq, Eq)]
enum GrantTarget {
    /// `*.*`
    Global,
    /// `` `db`.* ``: the schema name or LIKE pattern, unquoted.
    Schema(String),
    /// `` `db`.`table` `` and routines: not enough for schema-wide work.
    Table,
}

/// `GRANT SELECT, INSERT ON `app`.* TO …` → (["SELECT", "INSERT"], Schema("app")). Column
/// lists (`SELECT (a, b)`) are dropped; `ALL PRIVILEGES` stays as one name, which every
/// check accepts. Role grants (`GRANT `role` TO …`) have no `ON` and give `None`.
fn parse_grant(line: &str) -> Option<(Vec<String>, GrantTarget)> {
    let rest = line.strip_prefix("GRANT ")?;
    let (privileges, rest) = rest.split_once(" ON ")?;
    let (target, _) = rest.split_once(" TO ")?;
    let mut depth = 0u32;
    let without_columns: String = privileges
        .chars()
        .filter(|&c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect();
    let privileges = without_columns
        .split(',')
        .map(|p| p.trim().to_ascii_uppercase())
        .filter(|p| !p.is_empty())
        .collect();
    let target = target.trim();
    let target = if target == "*.*" {
        GrantTarget::Global
    } else if let Some(schema) = target.strip_suffix(".*") {
        let schema = schema
            .strip_prefix('`')
            .and_then(|s| s.strip_suffix('`'))
            .map_or(schema.to_owned(), |s| s.replace("``", "`"));
        GrantTarget::Schema(schema)
    } else {
        GrantTarget::Table
    };
    Some((privileges, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_lines() {
        let (p, t) = parse_grant(
            "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `drainer_pump`@`127.0.0.1` \
             IDENTIFIED BY PASSWORD '*46E2AF36BC83070CDBD41CA0A4EEACB51AE2FD9E'",
        )
        .unwrap();
        assert_eq!(p, ["SELECT", "REPLICATION SLAVE", "BINLOG MONITOR"]);
        assert_eq!(t, GrantTarget::Global);
        let (p, t) = parse_grant(r"GRANT SELECT, INSERT ON `app\_%`.* TO `w`@`127.0.0.1`").unwrap();
        assert_eq!(
            (p, t),
            (
                vec!["SELECT".into(), "INSERT".into()],
                GrantTarget::Schema(r"app\_%".into())
            )
        );
        let (p, t) =
            parse_grant("GRANT ALL PRIVILEGES ON `we``ird`.* TO `w`@`%` WITH GRANT OPTION")
                .unwrap();
        assert_eq!(
            (p, t),
            (
                vec!["ALL PRIVILEGES".into()],
                GrantTarget::Schema("we`ird".into())
            )
        );
        let (p, t) =
            parse_grant("GRANT SELECT (a, b), UPDATE (c) ON `app`.`t` TO `w`@`%`").unwrap();
        assert_eq!(
            (p, t),
            (vec!["SELECT".into(), "UPDATE".into()], GrantTarget::Table)
        );
        assert_eq!(parse_grant("GRANT `repl_role` TO `ru`@`127.0.0.1`"), None);
        assert_eq!(
            parse_grant("SET DEFAULT ROLE `repl_role` FOR `ru`@`127.0.0.1`"),
            None
        );
    }
}
