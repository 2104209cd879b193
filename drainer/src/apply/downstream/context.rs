//! DDL downstream in the session context its binlog event records, as a replica's SQL
//! thread runs it; between MySQL and MariaDB the context is translated.

use super::*;

/// Which servers a statement goes between: their `sql_mode` bits and collation ids
/// agree only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavours {
    pub from_mariadb: bool,
    pub to_mariadb: bool,
}

/// The statements that give a session the context an upstream statement ran in (its
/// QUERY event's status variables, as `mariadb-binlog` replays them), and its start time
/// (`timestamp`, with the event's microseconds): `NOW()`, `CURRENT_TIMESTAMP` defaults and
/// TIMESTAMP literals mean the same downstream. Without the character sets (servers that
/// do not log them), the client set is utf8mb4. Between MySQL and MariaDB the SQL mode is
/// translated ([`sql_mode_for`]) and a collation only one of them numbers so
/// (`utf8mb4_0900_ai_ci`, 255; `utf8mb4_uca1400_ai_ci`, 2304) is given by its
/// character set's name: the downstream's default collation of that set.
pub fn session_context(vars: &SessionVars, timestamp: u32, flavours: Flavours) -> Vec<String> {
    let same = flavours.from_mariadb == flavours.to_mariadb;
    let mut sets = Vec::new();
    // First: its literal is read in the session's SQL mode, which comes next.
    if let Some(zone) = &vars.time_zone {
        sets.push(format!(
            "SET @@session.time_zone = '{}'",
            zone.replace('\\', "\\\\").replace('\'', "''")
        ));
    }
    if vars.flags2.is_some() {
        sets.push(format!(
            "SET @@session.foreign_key_checks = {}, @@session.unique_checks = {}, \
             @@session.sql_auto_is_null = {}",
            u8::from(vars.foreign_key_checks()),
            u8::from(vars.unique_checks()),
            u8::from(vars.auto_is_null())
        ));
    }
    if let Some(mode) = vars.sql_mode {
        sets.push(format!(
            "SET @@session.sql_mode = {}",
            sql_mode_for(mode, flavours)
        ));
    }
    if let Some((increment, offset)) = vars.auto_increment {
        sets.push(format!(
            "SET @@session.auto_increment_increment = {increment}, \
             @@session.auto_increment_offset = {offset}"
        ));
    }
    // Ids below 248 name the same collation on both servers.
    let collation = |set: &str, id: u16| match charset_of(id) {
        Some(name) if !same && id >= 248 => format!("@@session.character_set_{set} = '{name}'"),
        _ => format!("@@session.collation_{set} = {id}"),
    };
    match vars.charset {
        Some([client, connection, server]) => sets.push(format!(
            "SET @@session.character_set_client = {}, {}, {}",
            match charset_of(client) {
                Some(name) if !same && client >= 248 => format!("'{name}'"),
                _ => client.to_string(),
            },
            collation("connection", connection),
            collation("server", server),
        )),
        None => sets.push("SET NAMES utf8mb4".into()),
    }
    if let Some(locale) = vars.lc_time_names {
        sets.push(format!("SET @@session.lc_time_names = {locale}"));
    }
    if let Some(id) = vars.collation_database {
        sets.push(format!("SET {}", collation("database", id)));
    }
    sets.push(match vars.micros {
        Some(us) => format!("SET @@session.timestamp = {timestamp}.{us:06}"),
        None => format!("SET @@session.timestamp = {timestamp}"),
    });
    sets
}

/// `sql_mode` as the downstream reads it. MariaDB and MySQL number the modes alike up to
/// bit 31, except bit 4 (MariaDB's IGNORE_BAD_TABLE_OPTIONS, unused in MySQL), the modes
/// MySQL 8 removed (POSTGRESQL … MYSQL40, bits 8–17; NO_AUTO_CREATE_USER, bit 28: a MySQL
/// 8 server refuses them, as its own replica drops them), and past bit 31, where MySQL's
/// TIME_TRUNCATE_FRACTIONAL (32) and MariaDB's TIME_ROUND_FRACTIONAL (34) each ask for
/// the other server's default.
pub fn sql_mode_for(mode: u64, flavours: Flavours) -> u64 {
    const LOW: u64 = 0xFFFF_FFFF & !(1 << 4);
    const MYSQL_REMOVED: u64 = 0x3FF << 8 | 1 << 28;
    const TRUNCATE: u64 = 1 << 32;
    const ROUND: u64 = 1 << 34;
    match (flavours.from_mariadb, flavours.to_mariadb) {
        (true, true) => mode,
        (false, false) => mode & !MYSQL_REMOVED,
        (false, true) => mode & LOW | if mode & TRUNCATE == 0 { ROUND } else { 0 },
        (true, false) => mode & LOW & !MYSQL_REMOVED | if mode & ROUND == 0 { TRUNCATE } else { 0 },
    }
}

impl Downstream {
    /// Runs a statement (DDL) in its schema context (`USE schema`, unless empty) and the
    /// session context its upstream event carries, as a replica does: SQL mode, character
    /// sets (its bytes are sent as written), time zone, checks, auto-increment settings,
    /// and its start time. An error meaning "already done" (a replayed DDL, or the other
    /// site's) is returned as `Some(the server's message)` for the caller to judge; the
    /// column cache is cleared. The session is closed after it (it carries that context);
    /// the next call opens a fresh one.
    pub async fn apply_ddl(
        &mut self,
        schema: &str,
        statement: &Statement,
        then: &[String],
    ) -> Result<Option<String>, DownstreamError> {
        self.columns.clear();
        let target = Arc::clone(&self.target);
        let upstream_mariadb = self.upstream_mariadb;
        self.conn().await?;
        // Learned as the session opened.
        let mariadb = self.mariadb;
        let conn = self.conn().await?;
        let session = conn.id();
        let sql = statement.text.as_str();
        let version = if mariadb { "MariaDB" } else { "" };
        let result = watched(&target, session, async {
            // With comment markers only DDL sessions write under the channel's server id
            // (a statement MariaDB rewrites before logging keeps no comment).
            if let Some(mark) = target.mark.as_ref().filter(|m| m.comment.is_some()) {
                super::set_server_id(conn, mark.server_id, version).await?;
            }
            if !schema.is_empty() {
                let use_db = format!("USE `{}`", schema.replace('`', "``"));
                conn.query_drop(use_db.as_str())
                    .await
                    .map_err(|e| classify(&use_db, e))?;
            }
            let flavours = Flavours {
                from_mariadb: upstream_mariadb,
                to_mariadb: mariadb,
            };
            let mut sets = session_context(&statement.vars, statement.timestamp, flavours);
            if mariadb {
                // An ALTER of a system-versioned table that reached the binlog was allowed
                // upstream (a session setting the binlog does not record): keep history.
                sets.push("SET @@session.system_versioning_alter_history = KEEP".into());
            }
            for set in sets {
                conn.query_drop(set.as_str())
                    .await
                    .map_err(|e| classify(&set, e))?;
            }
            let done = match conn.query_drop(statement.bytes.as_ref()).await {
                Err(mysql_async::Error::Server(s)) if already_applied(s.code) => {
                    Some(format!("{} ({})", s.message, s.code))
                }
                other => {
                    other.map_err(|e| classify(sql, e))?;
                    None
                }
            };
            if !then.is_empty() {
                // Written by the drainer, in UTF-8, whatever the statement's client set.
                conn.query_drop("SET NAMES utf8mb4")
                    .await
                    .map_err(|e| classify("SET NAMES utf8mb4", e))?;
            }
            for next in then {
                conn.query_drop(next.as_str())
                    .await
                    .map_err(|e| classify(next, e))?;
            }
            Ok(done)
        })
        .await;
        match &result {
            Err(DownstreamError::Transient(_)) => self.reset(),
            _ => self.close().await,
        }
        result
    }

    /// The downstream's `SHOW CREATE TABLE` of `schema.table` (`None`: no such table).
    pub async fn show_create(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Option<String>, DownstreamError> {
        let sql = format!(
            "SHOW CREATE TABLE `{}`.`{}`",
            schema.replace('`', "``"),
            table.replace('`', "``")
        );
        let conn = self.conn().await?;
        match conn.query_first::<(String, Vec<u8>), _>(sql.as_str()).await {
            Ok(row) => Ok(row.map(|(_, create)| String::from_utf8_lossy(&create).into_owned())),
            Err(mysql_async::Error::Server(s)) if s.code == 1146 => Ok(None),
            Err(e) => Err(classify(&sql, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIA_TO_MARIA: Flavours = Flavours {
        from_mariadb: true,
        to_mariadb: true,
    };
    const MYSQL_TO_MARIA: Flavours = Flavours {
        from_mariadb: false,
        to_mariadb: true,
    };
    const MARIA_TO_MYSQL: Flavours = Flavours {
        from_mariadb: true,
        to_mariadb: false,
    };

    #[test]
    fn sql_modes_translate_between_mysql_and_mariadb() {
        // MariaDB 10.11's default: STRICT_TRANS_TABLES, ERROR_FOR_DIVISION_BY_ZERO,
        // NO_AUTO_CREATE_USER, NO_ENGINE_SUBSTITUTION.
        let maria = 1 << 21 | 1 << 26 | 1 << 28 | 1 << 30;
        assert_eq!(sql_mode_for(maria, MARIA_TO_MARIA), maria);
        // MySQL 8 refuses NO_AUTO_CREATE_USER; it rounds fractional seconds unless told
        // to truncate, as MariaDB does.
        assert_eq!(
            sql_mode_for(maria, MARIA_TO_MYSQL),
            1 << 21 | 1 << 26 | 1 << 30 | 1 << 32
        );
        // MySQL 8's default (ONLY_FULL_GROUP_BY, STRICT_TRANS_TABLES, NO_ZERO_IN_DATE,
        // NO_ZERO_DATE, ERROR_FOR_DIVISION_BY_ZERO, NO_ENGINE_SUBSTITUTION): rounding is
        // MariaDB's TIME_ROUND_FRACTIONAL.
        let mysql = 1 << 5 | 1 << 21 | 1 << 23 | 1 << 24 | 1 << 26 | 1 << 30;
        assert_eq!(sql_mode_for(mysql, MYSQL_TO_MARIA), mysql | 1 << 34);
        assert_eq!(
            sql_mode_for(mysql | 1 << 32 | 1 << 4, MYSQL_TO_MARIA),
            mysql,
            "TIME_TRUNCATE_FRACTIONAL is MariaDB's default; bit 4 means nothing in MySQL"
        );
        // MariaDB's modes past bit 31 (EMPTY_STRING_IS_NULL) have no MySQL meaning.
        assert_eq!(
            sql_mode_for(1 << 33 | 1 << 34, MARIA_TO_MYSQL),
            0,
            "rounding, MySQL's default"
        );
    }

    #[test]
    fn collations_one_server_does_not_number_go_by_their_character_set() {
        let vars = SessionVars {
            charset: Some([255, 255, 45]),
            collation_database: Some(2304),
            ..SessionVars::default()
        };
        let sets = session_context(&vars, 1, MYSQL_TO_MARIA).join("; ");
        assert!(
            sets.contains(
                "SET @@session.character_set_client = 'utf8mb4', \
                 @@session.character_set_connection = 'utf8mb4', \
                 @@session.collation_server = 45"
            ),
            "{sets}"
        );
        assert!(
            sets.contains("SET @@session.character_set_database = 'utf8mb4'"),
            "{sets}"
        );
        let same = session_context(&vars, 1, MARIA_TO_MARIA).join("; ");
        assert!(
            same.contains("character_set_client = 255, @@session.collation_connection = 255"),
            "{same}"
        );
    }
}
