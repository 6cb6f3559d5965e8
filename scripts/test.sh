#!/usr/bin/env bash
# Runs every test of the repository: unit tests, the integration suite (the real idflow binary
# on real files), and the rule test cases kept beside each shipped rule set.
set -euo pipefail
cd "$(dirname "$0")/.."

# The AD tests share one Samba DC (its ports are fixed); it is stopped when this script ends.
export IDFLOW_SAMBA_DIR=${IDFLOW_SAMBA_DIR:-/tmp/idflow-test-samba-dc}
trap 'bash scripts/samba-dc.sh stop "$IDFLOW_SAMBA_DIR" >/dev/null 2>&1 || true' EXIT

cargo test --workspace --locked

# Rule sets carry their own test cases (*_test.toml): run them the way an admin's CI would.
cargo build --locked -q
./target/debug/idflow --config examples/quickstart/idflow.toml test
for set in rules/*/; do
  [ -f "$set/idflow.toml" ] || continue
  ./target/debug/idflow --config "$set/idflow.toml" test
done
