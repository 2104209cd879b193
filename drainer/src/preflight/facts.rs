//! What a server says about itself: version, variables, the session's privileges.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// How long connecting plus all preflight queries to one server may take.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);

/// The variables the checks read (lowercase names).
const VARIABLES: &[&str] = &[
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "log_bin_compress",
    "server_id",
    "read_only",
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
    /// Global privileges (`REPLICATION SLAVE`, `SELECT`, …) of the user and its role.
    pub global_privileges: BTreeSet<String>,
    /// Schema-level grants: (schema name or LIKE pattern, privilege).
    pub schema_privileges: Vec<(String, String)>,
}

impl ServerFacts {
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }
}

/// Connection settings of one side, as the preflight uses them.
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

/// Connects as the configured user and reads what the checks need. The error is the
/// server's or the network's own message.
pub async fn gather(endpoint: &Endpoint<'_>) -> Result<ServerFacts, String> {
    match tokio::time::timeout(SERVER_TIMEOUT, gather_inner(endpoint)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s from {}:{}",
            SERVER_TIMEOUT.as_secs(),
            endpoint.host,
            endpoint.port
        )),
    }
}

async fn gather_inner(endpoint: &Endpoint<'_>) -> Result<ServerFacts, mysql_async::Error> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(endpoint.host)
        .tcp_port(endpoint.port)
        .user(Some(endpoint.user))
        .pass(Some(endpoint.password))
        .prefer_socket(false);
    let mut conn = Conn::new(opts).await?;
    let result = read_facts(&mut conn).await;
    conn.disconnect().await.ok();
    result
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

    // The grantees whose privileges this session has: the user itself and its current
    // role (MariaDB writes a role's grantee without a host part).
    let role: Option<String> = conn
        .query_first("SELECT CURRENT_ROLE()")
        .await
        .ok()
        .flatten()
        .flatten();
    let mut grantees = vec![grantee(&current_user)];
    if let Some(role) = role.filter(|r| !r.is_empty() && r != "NONE") {
        grantees.push(format!("'{role}'"));
        grantees.push(format!("'{role}'@''"));
    }
    let grantee_list = grantees
        .iter()
        .map(|g| format!("'{}'", g.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(",");
    let global: Vec<String> = conn
        .query(format!(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES \
             WHERE GRANTEE IN ({grantee_list})"
        ))
        .await?;
    let schema_privileges: Vec<(String, String)> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES \
             WHERE GRANTEE IN ({grantee_list})"
        ))
        .await?;
    Ok(ServerFacts {
        version,
        variables,
        current_user,
        global_privileges: global.into_iter().collect(),
        schema_privileges,
    })
}

/// `user@host` as `CURRENT_USER()` prints it, to `'user'@'host'` as information_schema
/// writes grantees. The host part follows the last `@` (user names may contain `@`).
fn grantee(current_user: &str) -> String {
    match current_user.rsplit_once('@') {
        Some((user, host)) => format!("'{user}'@'{host}'"),
        None => format!("'{current_user}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grantee_splits_at_the_last_at_sign() {
        assert_eq!(grantee("drainer@%"), "'drainer'@'%'");
        assert_eq!(grantee("a@b@localhost"), "'a@b'@'localhost'");
        assert_eq!(grantee("role"), "'role'");
    }
}
