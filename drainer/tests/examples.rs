//! The operator examples stay in step with the code: every metric the Grafana dashboard
//! queries is one `drainer::metrics` exports, and the systemd unit runs the binary the way
//! docs/configuration.md documents.

use std::path::PathBuf;

fn examples() -> PathBuf {
    // Where cargo runs the test from (the build may have happened in another checkout).
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("../examples")
}

/// The `drainer_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("drainer_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    use drainer::metrics::*;
    let exported = [
        EVENTS_READ,
        TRANSACTIONS,
        ROWS,
        DDL,
        APPLY_SECONDS,
        MARK_UPDATE_SECONDS,
        LAG_SECONDS,
        CHECKPOINT_AGE_SECONDS,
        BUFFERED_ROWS,
        RETRIES,
        ERRORS,
        UPSTREAM_RECONNECTS,
        STATE,
        UP_SECONDS,
    ];
    let histograms = [APPLY_SECONDS, MARK_UPDATE_SECONDS];
    let known = |name: &str| {
        exported.contains(&name)
            || histograms.iter().any(|h| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name == format!("{h}{suffix}"))
            })
    };
    let text = std::fs::read_to_string(examples().join("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queried = 0;
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                assert!(
                    known(&name),
                    "panel {:?} queries {name}, which is not exported",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= exported.len(), "{queried} metric references");
    // Every exported metric is on the dashboard.
    for name in exported {
        assert!(text.contains(name), "{name} is on no panel");
    }
}

#[test]
fn the_service_unit_runs_one_direction_with_its_config() {
    let unit = std::fs::read_to_string(examples().join("drainer.service")).unwrap();
    assert!(unit
        .contains("ExecStart=/usr/local/bin/drainer --config /etc/drainer/a-to-b.toml --log-json"));
    assert!(unit.contains("RestartPreventExitStatus=2"));
    assert!(unit.contains("KillSignal=SIGTERM"));
    let config = conf::Config::load(&examples().join("two-sites/a-to-b.toml")).unwrap();
    assert!(
        unit.contains(&format!("ReadWritePaths={}", config.data_dir.display())),
        "the unit must let the drainer write its data-dir {}",
        config.data_dir.display()
    );
}
