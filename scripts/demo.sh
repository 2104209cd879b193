#!/usr/bin/env bash
# The two-site demo: two local MariaDB servers written at once, kept equal by two drainers.
# On a fresh Debian 12 machine it installs what it needs first (scripts/setup.sh), builds,
# and runs until Ctrl-C. Arguments go to the demo, e.g. `--duration 30`; `--help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The same target directory as the tests and CI, so one build serves all three.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/drainer/target}"
echo "demo: building drainer and the demo (the first build takes about 7 minutes on 2 cores)…"
# Two commands: `--bin demo` would limit the first to that one binary.
cargo build --quiet -p drainer
cargo build --quiet -p integration --bin demo
exec "$CARGO_TARGET_DIR/debug/demo" "$@"
