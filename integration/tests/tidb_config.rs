//! TiDB Binlog's own drainer.toml loads as it is (issue 23, item 1): the example of TiDB's
//! documentation ("Deploy TiDB Binlog", the drainer's configuration file), with its
//! downstream pointed at a test server and a `[pump]` section added (TiDB's file names no
//! upstream: its drainer finds pumps through PD). `check-config` passes and says which
//! keys cannot apply; the drainer then replicates with it; a `db-type` it cannot serve is
//! refused naming the key.

use std::time::Duration;

use integration::{config_for, poll_until, text_rows, two_sites, DrainerCommand};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(60);

/// TiDB's documented example, keys and values as the documentation gives them (its
/// comments shortened); `{to-host}`, `{to-port}`, `{to-user}`, `{to-password}` are the
/// downstream's.
const TIDB_EXAMPLE: &str = r#"# Drainer Configuration.

# the address through which Drainer provides the service ("192.168.0.13:8249")
addr = "192.168.0.13:8249"

# the address through which Drainer provides the external service
advertise-addr = "192.168.0.13:8249"

# the interval of checking the online Pump in PD ("10" by default, in seconds)
detect-interval = 10

# the directory where the Drainer data is stored "data.drainer" by default)
data-dir = "data.drainer"

# the address of the PD cluster nodes (each separated by a comma with no whitespace)
pd-urls = "http://192.168.0.16:2379,http://192.168.0.15:2379,http://192.168.0.14:2379"

# the directory of the log file
log-file = "drainer.log"

# compressor = "gzip"

# [security]
# ssl-ca = "/path/to/ca.pem"
# ssl-cert = "/path/to/pump.pem"
# ssl-key = "/path/to/pump-key.pem"

# Syncer Configuration
[syncer]
# sql-mode = "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"

txn-batch = 20

worker-count = 16

disable-dispatch = false

safe-mode = false

# Valid value: "mysql", "tidb", "file", and "kafka".
db-type = "mysql"

ignore-txn-commit-ts = []

ignore-schemas = "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql"

# replicate-do-db = ["~^b.*","s1"]

# [syncer.relay]
# log-dir = ""
# max-file-size = 10485760

# [[syncer.replicate-do-table]]
# db-name ="test"
# tbl-name = "log"

# [[syncer.replicate-do-table]]
# db-name ="test"
# tbl-name = "~^a.*"

# [[syncer.ignore-table]]
# db-name = "test"
# tbl-name = "log"

[syncer.to]
host = "{to-host}"
user = "{to-user}"
password = "{to-password}"
encrypted_password = ""
port = {to-port}

[syncer.to.checkpoint]
# schema = "tidb_binlog"
# type = "mysql"
# host = "127.0.0.1"
# user = "root"
# password = ""
# encrypted_password = ""
# port = 3306

# [syncer.to]
# dir = "data.drainer"

# [syncer.to]
# zookeeper-addrs = "127.0.0.1:2181"
# kafka-addrs = "127.0.0.1:9092"
# kafka-version = "0.8.2.0"
# kafka-max-messages = 1024
# kafka-max-message-size = 1073741824
# topic-name = ""
"#;

/// The example with the downstream of `config` and its `[pump]` section.
fn tidb_file(config: &conf::Config) -> String {
    let to = &config.syncer.to;
    let pump = &config.pump;
    let file = TIDB_EXAMPLE
        .replace("{to-host}", &to.host)
        .replace("{to-port}", &to.port.to_string())
        .replace("{to-user}", &to.user)
        .replace("{to-password}", to.password.expose());
    format!(
        "{file}\n# Added: the upstream whose binlog this drainer reads.\n[pump]\nhost = \"{}\"\n\
         port = {}\nuser = \"{}\"\npassword = \"{}\"\nserver-id = {}\n",
        pump.host,
        pump.port,
        pump.user,
        pump.password.expose(),
        pump.server_id
    )
}

#[tokio::test]
async fn tidb_binlogs_documented_drainer_toml_loads_and_replicates() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let config = config_for(&a, &b, dir.path()).unwrap();
    let text = tidb_file(&config);

    let out = DrainerCommand::new()
        .unwrap()
        .arg("check-config")
        .config_text(&text)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "note: TiDB Binlog keys that do not apply here, ignored: pd-urls (TiDB's drainer \
             finds its pumps through PD; [pump] names the upstream here); advertise-addr"
        ),
        "{}",
        out.stdout
    );

    // It replicates with that file (its addr is another host's: this one's status page
    // is on a loopback address).
    let text = text.replace(
        "addr = \"192.168.0.13:8249\"",
        &format!("addr = \"{}\"", config.addr),
    );
    let command = DrainerCommand::new().unwrap().config_text(&text).unwrap();
    let log = command.dir().join("drainer.log");
    let _drainer = command.spawn().unwrap();
    // `log-file` is honoured: the log goes there (a first start reads from where the
    // upstream is once it replicates).
    poll_until("the drainer replicating, in its log file", WAIT, || async {
        match std::fs::read_to_string(&log) {
            Ok(logged) if logged.contains("replicating") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    a.exec(&["INSERT INTO app.t VALUES (1, 'from a TiDB file')"])
        .await
        .unwrap();
    poll_until("the row", WAIT, || async {
        match text_rows(&b, "SELECT * FROM app.t").await?.as_slice() {
            [row] if row == "1|from a TiDB file" => Ok(()),
            rows => Err(format!("{rows:?}")),
        }
    })
    .await
    .unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("TiDB Binlog keys that do not apply here"),
        "{logged}"
    );
}

#[tokio::test]
async fn a_tidb_file_for_another_downstream_kind_is_refused_naming_the_key() {
    let (a, b) = two_sites(&[]).await.unwrap();
    let dir = TempDir::new().unwrap();
    let config = config_for(&a, &b, dir.path()).unwrap();
    let text = tidb_file(&config).replace("db-type = \"mysql\"", "db-type = \"kafka\"");
    let out = DrainerCommand::new()
        .unwrap()
        .arg("check-config")
        .config_text(&text)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("syncer.db-type: \"kafka\": drainer applies to a MySQL-protocol server"),
        "{}",
        out.stderr
    );
}
