//! Failpoints: named places where a test makes the process die as `kill -9` would, to
//! prove that a restart neither loses nor repeats anything.
//!
//! Acting only in a build with the `failpoints` feature (the integration tests turn it on;
//! a plain `cargo build -p drainer` refuses `DRAINER_FAILPOINT` at start, exit 2), and
//! only when `DRAINER_FAILPOINT` names one: `after-commit` or `after-commit:5` (the fifth
//! time it is reached). The process then
//! aborts at once: no destructor runs, nothing more is written.
//!
//! | name | where |
//! |---|---|
//! | `between-rows` | inside a downstream transaction, after its first statement (armed, transactions go statement by statement: one sent as one text has no such place) |
//! | `after-commit` | after a downstream COMMIT, before the RocksDB checkpoint |
//! | `before-ddl` | before a DDL statement runs downstream |
//! | `after-ddl` | after a DDL statement ran downstream, before the checkpoint |
//! | `after-xa-prepare` | after `XA PREPARE` downstream, before its apply record |
//! | `after-xa-end` | after `XA COMMIT` / `XA ROLLBACK` downstream, before its apply record |
//! | `seed-whole-piece` | `drainer seed`, inside the one transaction of a table copied whole, after a piece of its rows |

/// The failpoints there are.
pub const NAMES: &[&str] = &[
    "between-rows",
    "after-commit",
    "before-ddl",
    "after-ddl",
    "after-xa-prepare",
    "after-xa-end",
    "seed-whole-piece",
];

/// The environment variable that arms one.
pub const ENV: &str = "DRAINER_FAILPOINT";

/// Checks `DRAINER_FAILPOINT` (at start, so a misspelt name is an error, not a test that
/// silently never fails).
pub fn validate() -> Result<(), String> {
    match std::env::var(ENV) {
        Err(_) => Ok(()),
        Ok(spec) => parse(&spec).map(|_| ()),
    }
}

fn parse(spec: &str) -> Result<(&str, u64), String> {
    let (name, nth) = match spec.split_once(':') {
        Some((name, n)) => (
            name,
            n.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("{ENV}={spec:?}: the count after ':' must be a positive number")
            })?,
        ),
        None => (spec, 1),
    };
    if !NAMES.contains(&name) {
        return Err(format!(
            "{ENV}={spec:?}: no such failpoint; there are: {}",
            NAMES.join(", ")
        ));
    }
    if !cfg!(feature = "failpoints") {
        return Err(format!(
            "{ENV} is set, but this drainer was built without the `failpoints` feature"
        ));
    }
    Ok((name, nth))
}

/// Whether `DRAINER_FAILPOINT` arms `name` (a place that exists only on some paths keeps
/// them taken while a test arms it).
pub fn armed(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    return armed::spec().is_some_and(|(armed, _)| armed == name);
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

/// Marks the place `name`: aborts the process if `DRAINER_FAILPOINT` arms it here.
#[inline]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    armed::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    /// The armed failpoint and its count, read once.
    pub fn spec() -> Option<&'static (String, u64)> {
        SPEC.get_or_init(|| {
            let spec = std::env::var(super::ENV).ok()?;
            super::parse(&spec)
                .ok()
                .map(|(name, nth)| (name.to_owned(), nth))
        })
        .as_ref()
    }

    pub fn hit(name: &str) {
        if let Some((armed, nth)) = spec() {
            if armed == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
                eprintln!("failpoint {name} (hit {nth}): aborting");
                std::process::abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_known_failpoint_and_a_positive_count() {
        assert!(parse("nope").unwrap_err().contains("no such failpoint"));
        assert!(parse("after-commit:0").unwrap_err().contains("positive"));
        assert!(parse("after-commit:x").unwrap_err().contains("positive"));
        if cfg!(feature = "failpoints") {
            assert_eq!(parse("after-commit:3").unwrap(), ("after-commit", 3));
            assert_eq!(parse("before-ddl").unwrap(), ("before-ddl", 1));
        } else {
            assert!(parse("after-commit").unwrap_err().contains("without"));
        }
    }
}
