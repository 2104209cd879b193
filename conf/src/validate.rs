//! Rules a loaded configuration must satisfy, checked without any I/O.

use std::fmt;

use crate::model::{Config, ConflictPolicy, Pump, Route, ServerTls, SslMode, TableName};
use crate::route::Routes;

/// The largest `worker-count`: each worker holds its own downstream connection.
pub const MAX_WORKER_COUNT: u32 = 1024;
/// The longest `checkpoint-interval-ms`: one hour.
pub const MAX_CHECKPOINT_INTERVAL_MS: u64 = 3_600_000;

/// One broken rule: the key path (`syncer.worker-count`) and what it must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub constraint: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.constraint)
    }
}

impl Config {
    /// Every rule this configuration breaks, in file order; empty when it is usable.
    /// Pure: reads no file, resolves no host, opens no connection.
    pub fn validate(&self) -> Vec<Violation> {
        let mut v = Violations(Vec::new());
        if self.data_dir.as_os_str().is_empty() {
            v.add("data-dir", "must name a directory".into());
        }
        if let Err(e) = check_host_port(&self.addr) {
            v.add("addr", e);
        }

        let pump = &self.pump;
        match &pump.relay {
            Some(relay) => v.relay_client(pump, relay),
            None => {
                v.endpoint("pump", &pump.host, pump.port, &pump.user);
                v.tls(&pump.tls());
                if pump.server_id == 0 {
                    v.add(
                        "pump.server-id",
                        "must be between 1 and 4294967295 (0 cannot register as a replica)".into(),
                    );
                }
                if pump.tls.is_some() {
                    v.add(
                        "pump.tls",
                        "is for a relay: set pump.relay, or use pump.ssl-* for TLS to the \
                         upstream itself"
                            .into(),
                    );
                }
            }
        }
        if !pump.initial_gtid.is_empty() {
            if let Err(e) = check_gtid_syntax(&pump.initial_gtid) {
                v.add("pump.initial-gtid", e);
            }
            if !pump.initial_file.is_empty() {
                v.add(
                    "pump.initial-file",
                    "must be empty when pump.initial-gtid is set (give one starting point)".into(),
                );
            }
        }
        if pump.initial_file.is_empty() {
            if pump.initial_pos != 4 {
                v.add(
                    "pump.initial-pos",
                    format!(
                        "is only used with pump.initial-file, which is empty (is {})",
                        pump.initial_pos
                    ),
                );
            }
        } else {
            if pump.initial_file.contains(['/', '\\'])
                || pump.initial_file.trim() != pump.initial_file
            {
                v.add(
                    "pump.initial-file",
                    format!(
                        "must be a binlog file name as SHOW BINARY LOGS prints it, not a path (is {:?})",
                        pump.initial_file
                    ),
                );
            }
            if pump.initial_pos < 4 {
                v.add(
                    "pump.initial-pos",
                    format!(
                        "must be at least 4, the first event of a binlog file (is {})",
                        pump.initial_pos
                    ),
                );
            }
        }

        let syncer = &self.syncer;
        if !(1..=MAX_WORKER_COUNT).contains(&syncer.worker_count) {
            v.add(
                "syncer.worker-count",
                format!(
                    "must be between 1 and {MAX_WORKER_COUNT} (is {})",
                    syncer.worker_count
                ),
            );
        }
        if syncer.safe_mode_after_start_s > 86_400 {
            v.add(
                "syncer.safe-mode-after-start-s",
                format!(
                    "must be at most 86400 (is {})",
                    syncer.safe_mode_after_start_s
                ),
            );
        }
        if syncer.txn_batch == 0 {
            v.add("syncer.txn-batch", "must be at least 1 (is 0)".into());
        }
        if !(1..=MAX_CHECKPOINT_INTERVAL_MS).contains(&syncer.checkpoint_interval_ms) {
            v.add(
                "syncer.checkpoint-interval-ms",
                format!(
                    "must be between 1 and {MAX_CHECKPOINT_INTERVAL_MS} (is {})",
                    syncer.checkpoint_interval_ms
                ),
            );
        }
        if syncer.channel_id < 0 {
            v.add(
                "syncer.channel-id",
                format!("must not be negative (is {})", syncer.channel_id),
            );
        } else if syncer.loopback_control && syncer.channel_id == 0 {
            v.add(
                "syncer.channel-id",
                "must be set to a positive number when syncer.loopback-control = true \
                 (both directions of a pair use the same channel)"
                    .into(),
            );
        }
        if syncer.loopback_control && syncer.channel_id > 0 {
            match syncer.effective_mark_server_id() {
                None => v.add(
                    "syncer.mark-server-id",
                    format!(
                        "must be set when syncer.channel-id is {} or more (the default, {} + \
                         channel-id, is no server id then)",
                        crate::model::MARK_SERVER_ID_SPAN,
                        crate::model::MARK_SERVER_ID_BASE
                    ),
                ),
                Some(id) if id == pump.server_id => v.add(
                    "syncer.mark-server-id",
                    format!(
                        "must differ from pump.server-id ({id}): the drainer's own writes \
                         carry it"
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Err(e) = check_qualified_table(&syncer.mark_table) {
            v.add("syncer.mark-table", e);
        }
        for (i, entry) in syncer.skip_ddl.iter().enumerate() {
            if !is_transaction_name(entry) {
                v.add(
                    &format!("syncer.skip-ddl[{i}]"),
                    format!(
                        "must name one transaction: a GTID (0-1-345, or uuid:345 on MySQL) or \
                         binlog coordinates (binlog.000003:1234) (is {entry:?})"
                    ),
                );
            }
        }
        for schema in syncer.ignored_schemas() {
            if let Err(e) = check_identifier(schema) {
                v.add("syncer.ignore-schemas", format!("entry {schema:?} {e}"));
            }
        }
        for (i, db) in syncer.replicate_do_db.iter().enumerate() {
            if let Err(e) = check_name_or_pattern(db) {
                v.add(&format!("syncer.replicate-do-db[{i}]"), e);
            }
        }
        v.tables("syncer.replicate-do-table", &syncer.replicate_do_table);
        v.tables("syncer.ignore-table", &syncer.ignore_table);
        v.routes(&syncer.route, &syncer.mark_table);

        if let Some(conflict) = &syncer.conflict {
            if syncer.safe_mode || syncer.safe_mode_after_start_s > 0 {
                v.add(
                    "syncer.safe-mode",
                    "must be off (and safe-mode-after-start-s 0) with [syncer.conflict]: safe \
                     mode's REPLACE would overwrite the rows whose conflicts are to be detected"
                        .into(),
                );
            }
            if conflict.policy == ConflictPolicy::Lww {
                v.add(
                    "syncer.conflict.policy",
                    "cannot be \"lww\" for every table: lww needs a column, given per table in \
                     [[syncer.conflict.table]]"
                        .into(),
                );
            }
            for (i, t) in conflict.table.iter().enumerate() {
                let key = format!("syncer.conflict.table[{i}]");
                v.table_name(&key, &t.db_name, &t.tbl_name);
                match (t.policy, &t.column) {
                    (ConflictPolicy::Lww, None) => v.add(
                        &format!("{key}.column"),
                        "must name the column whose larger value wins (policy = \"lww\")".into(),
                    ),
                    (ConflictPolicy::Lww, Some(c)) if c.trim().is_empty() => {
                        v.add(&format!("{key}.column"), "must name a column".into())
                    }
                    (ConflictPolicy::Lww, Some(_)) | (_, None) => {}
                    (_, Some(_)) => v.add(
                        &format!("{key}.column"),
                        "is only used with policy = \"lww\"".into(),
                    ),
                }
                let same = conflict.table[..i].iter().any(|o| {
                    o.db_name.eq_ignore_ascii_case(&t.db_name)
                        && o.tbl_name.eq_ignore_ascii_case(&t.tbl_name)
                });
                if same {
                    v.add(&key, format!("names {}.{} again", t.db_name, t.tbl_name));
                }
            }
        }

        for (i, f) in syncer.row_filter.iter().enumerate() {
            let key = format!("syncer.row-filter[{i}]");
            v.table_name(&key, &f.db_name, &f.tbl_name);
            // One condition per table: a second one would replace the first unseen.
            let same = syncer.row_filter[..i]
                .iter()
                .any(|o| o.db_name == f.db_name && o.tbl_name == f.tbl_name);
            if same {
                v.add(
                    &key,
                    format!(
                        "names {}.{} again: give one entry per table, its conditions joined \
                         with AND",
                        f.db_name, f.tbl_name
                    ),
                );
            }
        }

        let to = &syncer.to;
        v.endpoint("syncer.to", &to.host, to.port, &to.user);
        v.tls(&to.tls());
        if !matches!(to.sync_mode, 1 | 2) {
            v.add(
                "syncer.to.sync-mode",
                format!(
                    "must be 1 (full columns) or 2 (partial columns) (is {})",
                    to.sync_mode
                ),
            );
        }
        if same_endpoint(&pump.host, pump.port, &to.host, to.port) {
            v.add(
                "syncer.to",
                format!(
                    "must be another server than [pump] ({}:{} and {}:{} are the same server)",
                    pump.host, pump.port, to.host, to.port
                ),
            );
        }
        v.0
    }
}

pub(crate) struct Violations(pub(crate) Vec<Violation>);

impl Violations {
    pub(crate) fn add(&mut self, field: &str, constraint: String) {
        self.0.push(Violation {
            field: field.to_owned(),
            constraint,
        });
    }

    pub(crate) fn endpoint(&mut self, section: &str, host: &str, port: u16, user: &str) {
        if let Err(e) = check_host(host) {
            self.add(&format!("{section}.host"), e);
        }
        if port == 0 {
            self.add(
                &format!("{section}.port"),
                "must be between 1 and 65535 (is 0)".into(),
            );
        }
        if user.is_empty() {
            self.add(&format!("{section}.user"), "must name a user".into());
        }
    }

    /// `[pump]` with `relay`: the relay's address and `[pump.tls]`, and none of the keys
    /// the relay has instead.
    fn relay_client(&mut self, pump: &Pump, relay: &str) {
        if let Err(e) = check_host_port(relay) {
            self.add("pump.relay", e);
        }
        let unused = [
            ("host", !pump.host.is_empty()),
            ("port", pump.port != 0),
            ("user", !pump.user.is_empty()),
            ("password", !pump.password.is_empty()),
            ("server-id", pump.server_id != 0),
            ("ssl-mode", pump.ssl_mode != SslMode::default()),
            ("ssl-ca", pump.ssl_ca.is_some()),
            ("ssl-cert", pump.ssl_cert.is_some()),
            ("ssl-key", pump.ssl_key.is_some()),
        ];
        for (key, set) in unused {
            if set {
                self.add(
                    &format!("pump.{key}"),
                    "is not used with pump.relay: the relay's [upstream] has it".into(),
                );
            }
        }
        match &pump.tls {
            None => self.add(
                "pump.tls",
                "must name ca, cert and key: a relay accepts only drainers with a certificate"
                    .into(),
            ),
            Some(tls) => {
                for (key, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                    if path.as_os_str().is_empty() {
                        self.add(&format!("pump.tls.{key}"), "must name a PEM file".into());
                    }
                }
                if tls.server_name.as_deref() == Some("") {
                    self.add(
                        "pump.tls.server-name",
                        "must be a name, or be left out".into(),
                    );
                }
            }
        }
    }

    /// The TLS keys of one server connection; whether the files are there and valid is
    /// the loader's business (the `link` crate), not this pure check's.
    pub(crate) fn tls(&mut self, tls: &ServerTls) {
        let section = tls.section;
        let files = [
            ("ssl-ca", &tls.ca),
            ("ssl-cert", &tls.cert),
            ("ssl-key", &tls.key),
        ];
        for (key, path) in files {
            match path {
                Some(p) if p.as_os_str().is_empty() => {
                    self.add(&format!("{section}.{key}"), "must name a PEM file".into())
                }
                Some(_) if tls.mode == SslMode::Disabled => self.add(
                    &format!("{section}.{key}"),
                    format!("is set, but {section}.ssl-mode = \"disabled\" would not use it"),
                ),
                _ => {}
            }
        }
        if tls.mode.verifies() && tls.ca.is_none() {
            self.add(
                &format!("{section}.ssl-ca"),
                format!(
                    "must name the CA file the server's certificate is checked against \
                     ({section}.ssl-mode = {:?})",
                    tls.mode.as_str()
                ),
            );
        }
        match (&tls.cert, &tls.key) {
            (Some(_), None) => self.add(
                &format!("{section}.ssl-key"),
                format!("must name the private key of {section}.ssl-cert"),
            ),
            (None, Some(_)) => self.add(
                &format!("{section}.ssl-cert"),
                format!("must name the certificate of {section}.ssl-key"),
            ),
            _ => {}
        }
    }

    /// `[[syncer.route]]`: names, a target, one rule per source, one source per target,
    /// and never the mark table's schema (the reverse drainer finds the mark by its name).
    fn routes(&mut self, routes: &[Route], mark_table: &str) {
        let mark_schema = mark_table.split_once('.').map_or("", |(s, _)| s);
        let resolved = Routes::new(routes);
        for (i, r) in routes.iter().enumerate() {
            let key = format!("syncer.route[{i}]");
            let names = [
                ("db-name", Some(&r.db_name)),
                ("tbl-name", r.tbl_name.as_ref()),
                ("target-db-name", r.target_db_name.as_ref()),
                ("target-tbl-name", r.target_tbl_name.as_ref()),
            ];
            for (field, name) in names {
                if let Some(Err(e)) = name.map(|n| check_identifier(n)) {
                    self.add(&format!("{key}.{field}"), e);
                }
            }
            match (&r.tbl_name, &r.target_db_name, &r.target_tbl_name) {
                (None, _, Some(_)) => self.add(
                    &format!("{key}.target-tbl-name"),
                    "needs tbl-name (the table to rename)".into(),
                ),
                (_, None, None) => self.add(
                    &key,
                    "must give target-db-name or target-tbl-name (where the rows go)".into(),
                ),
                _ => {}
            }
            if r.db_name == mark_schema || r.target_db_name.as_deref() == Some(mark_schema) {
                self.add(
                    &format!("{key}.db-name"),
                    format!(
                        "must not route the mark table's schema {mark_schema:?} (syncer.mark-table)"
                    ),
                );
            }
            if routes[..i]
                .iter()
                .any(|o| o.db_name == r.db_name && o.tbl_name == r.tbl_name)
            {
                let what = match &r.tbl_name {
                    Some(t) => format!("{}.{t}", r.db_name),
                    None => r.db_name.clone(),
                };
                self.add(&key, format!("routes {what} again"));
            }
        }
        // Two upstream tables into one downstream table would merge their rows (and the
        // reverse direction could not tell them apart).
        let mut into: std::collections::HashMap<(String, String), String> = Default::default();
        for r in routes {
            let Some(t) = &r.tbl_name else { continue };
            let target = resolved.target(&r.db_name, t);
            if let Some(other) = into.insert(target.clone(), format!("{}.{t}", r.db_name)) {
                self.add(
                    "syncer.route",
                    format!(
                        "routes {other} and {}.{t} both to {}.{}",
                        r.db_name, target.0, target.1
                    ),
                );
            }
        }
        let mut schemas: std::collections::HashMap<&str, &str> = Default::default();
        for r in routes.iter().filter(|r| r.tbl_name.is_none()) {
            let Some(to) = &r.target_db_name else {
                continue;
            };
            if let Some(other) = schemas.insert(to, &r.db_name) {
                self.add(
                    "syncer.route",
                    format!("routes schemas {other} and {} both to {to}", r.db_name),
                );
            }
        }
    }

    /// `db-name` and `tbl-name` of entry `key`, one exact table.
    fn table_name(&mut self, key: &str, db_name: &str, tbl_name: &str) {
        if let Err(e) = check_identifier(db_name) {
            self.add(&format!("{key}.db-name"), e);
        }
        if let Err(e) = check_identifier(tbl_name) {
            self.add(&format!("{key}.tbl-name"), e);
        }
    }

    fn tables(&mut self, key: &str, tables: &[TableName]) {
        for (i, t) in tables.iter().enumerate() {
            if let Err(e) = check_name_or_pattern(&t.db_name) {
                self.add(&format!("{key}[{i}].db-name"), e);
            }
            if let Err(e) = check_name_or_pattern(&t.tbl_name) {
                self.add(&format!("{key}[{i}].tbl-name"), e);
            }
        }
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        Err("must name a host".into())
    } else if host.contains(char::is_whitespace) || host.contains(['/', '@']) {
        Err(format!("must be a host name or IP address (is {host:?})"))
    } else {
        Ok(())
    }
}

/// `host:port` or `[v6]:port`, with a port from 1 to 65535.
pub(crate) fn check_host_port(addr: &str) -> Result<(), String> {
    let bad = || format!("must be host:port, e.g. 127.0.0.1:8249 (is {addr:?})");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    check_host(host).map_err(|_| bad())?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad()),
    }
}

/// Whether two endpoints name the same server as far as text can tell: equal ports and
/// equal hosts, with `localhost`, `127.0.0.1` and `::1` (in any spelling) counted as one.
fn same_endpoint(host_a: &str, port_a: u16, host_b: &str, port_b: u16) -> bool {
    fn canonical(host: &str) -> String {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let ip = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            Ok(ip) => ip,
            Err(_) if host == "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Err(_) => return host,
        };
        if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
            return Ipv4Addr::LOCALHOST.to_string();
        }
        ip.to_string()
    }
    port_a == port_b && canonical(host_a) == canonical(host_b)
}

/// A MariaDB/MySQL identifier as the server accepts it (unquoted or quoted).
fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.chars().count() > 64 {
        Err(format!("is longer than 64 characters (is {name:?})"))
    } else if name.contains(['\0', '`']) || name.ends_with(' ') {
        Err(format!(
            "is not a usable identifier: no NUL, no backtick, no trailing space (is {name:?})"
        ))
    } else {
        Ok(())
    }
}

/// An exact name, or `~` followed by a regular expression (as in TiDB Binlog).
fn check_name_or_pattern(name: &str) -> Result<(), String> {
    match name.strip_prefix('~') {
        Some("") => Err("a `~` pattern needs a regular expression after the `~`".into()),
        Some(re) => regex_lite::Regex::new(re)
            .map(drop)
            .map_err(|e| format!("`{name}` is not a valid regular expression: {e}")),
        None => check_identifier(name),
    }
}

fn check_qualified_table(name: &str) -> Result<(), String> {
    let (schema, table) = name
        .split_once('.')
        .ok_or_else(|| format!("must be schema.table (is {name:?})"))?;
    check_identifier(schema).map_err(|e| format!("schema part {e}"))?;
    check_identifier(table).map_err(|e| format!("table part {e}"))
}

/// The syntax of a GTID starting point: a MariaDB GTID list (`0-1-100,1-2-7`, one entry per
/// domain) or a MySQL GTID set (`3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,…`).
fn check_gtid_syntax(text: &str) -> Result<(), String> {
    let entries: Vec<&str> = text.split(',').map(str::trim).collect();
    let mariadb = entries.iter().all(|e| is_mariadb_gtid(e));
    let mysql = entries.iter().all(|e| is_mysql_gtid_interval_set(e));
    if mariadb {
        let mut domains: Vec<&str> = entries.iter().filter_map(|e| e.split('-').next()).collect();
        domains.sort_unstable();
        if let Some(w) = domains.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "names GTID domain {} twice; give one GTID per domain (is {text:?})",
                w[0]
            ));
        }
        Ok(())
    } else if mysql {
        Ok(())
    } else {
        Err(format!(
            "must be a MariaDB GTID list (domain-server-seq[,…], e.g. 0-1-100) or a MySQL GTID set \
             (uuid:first-last[,…]) (is {text:?})"
        ))
    }
}

/// One transaction's name as the drainer prints it: a MariaDB GTID, a MySQL `uuid:seq`, or
/// `file:pos` coordinates.
fn is_transaction_name(entry: &str) -> bool {
    let coordinates = entry.rsplit_once(':').is_some_and(|(file, pos)| {
        !file.is_empty() && !file.contains(char::is_whitespace) && pos.parse::<u64>().is_ok()
    });
    is_mariadb_gtid(entry) || coordinates
}

fn is_mariadb_gtid(entry: &str) -> bool {
    let parts: Vec<&str> = entry.split('-').collect();
    parts.len() == 3
        && parts[0].parse::<u32>().is_ok()
        && parts[1].parse::<u32>().is_ok()
        && parts[2].parse::<u64>().is_ok()
}

fn is_mysql_gtid_interval_set(entry: &str) -> bool {
    let mut parts = entry.split(':');
    let uuid = parts.next().unwrap_or_default();
    let is_uuid = uuid.len() == 36
        && uuid.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    let mut intervals = 0;
    for part in parts {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a >= 1 && a <= b => intervals += 1,
            (Ok(_), _) | (_, Ok(_)) => return false,
            // MySQL 8.3 tagged GTIDs: `uuid:tag:1-5`.
            _ if is_gtid_tag(part) => {}
            _ => return false,
        }
    }
    is_uuid && intervals > 0
}

fn is_gtid_tag(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && part.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
