#!/usr/bin/env bash
# Runs every test of the repository: unit tests, the integration suite (the real idflow binary
# on real files), and the rule test cases kept beside each shipped rule set.
set -euo pipefail
cd "$(dirname "$0")/.."

# The AD tests share one Samba DC (its ports are fixed): a new one for every run (provisioning
# takes seconds; a reused one fills up with every run's users), stopped and removed at the end.
# A DC left running by a plain `cargo test` (the tests' default location) holds the ports.
bash scripts/samba-dc.sh stop /tmp/idflow-test-samba-dc >/dev/null 2>&1 || true
fresh_dc=""
if [ -z "${IDFLOW_SAMBA_DIR:-}" ]; then
  fresh_dc=$(mktemp -d /tmp/idflow-test-dc.XXXXXX)
  export IDFLOW_SAMBA_DIR="$fresh_dc"
fi
cleanup() {
  bash scripts/samba-dc.sh stop "$IDFLOW_SAMBA_DIR" >/dev/null 2>&1 || true
  [ -n "$fresh_dc" ] && rm -rf "$fresh_dc"
}
trap cleanup EXIT

# The house style: formatted at the house width, no clippy warning.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -q -- -D warnings

# The shipped Prometheus alert rules, with their own unit tests.
promtool check rules examples/prometheus/idflow-alerts.yml
promtool test rules examples/prometheus/idflow-alerts.test.yml

cargo test --workspace --locked

# Rule sets carry their own test cases (*_test.toml): run them the way an admin's CI would.
cargo build --locked -q
./target/debug/idflow --config examples/quickstart/idflow.toml test
for set in rules/*/; do
  [ -f "$set/idflow.toml" ] || continue
  ./target/debug/idflow --config "$set/idflow.toml" test
done
