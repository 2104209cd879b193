//! The README's first command runs this demo: it must converge, end by itself with
//! `--duration`, and exit 0 only when both sites match.

use std::process::Command;

#[test]
fn the_demo_converges_and_stops_by_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--duration", "16", "--alter-after", "6"])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for expected in [
        "mariadb -h 127.0.0.1 -P",
        "ran on site A",
        "CONVERGED",
        "A → B: site A wrote",
        "B → A: site B wrote",
        "A → B: stopped, checkpoint saved",
        "B → A: stopped, checkpoint saved",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
}
