#!/usr/bin/env bash
# SCIM export throughput against the real scim2-server, from a real slapd:
#   benches/scim.sh            initial sync of 1,000 users and 100 groups, then a 1% delta,
#                              with concurrency 1 and 4: seconds, objects/s, requests per object.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
cargo build --release -q
scripts/scim-server.sh install
bin=$PWD/target/release/idflow
work=$(mktemp -d)
trap 'scripts/slapd.sh stop "$work/slapd" >/dev/null 2>&1 || true; scripts/scim-server.sh stop "$work/scim" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
{ printf 'dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n'
  "$bin" generate --people 1000 --groups 100 --out /dev/stdout | tail -n +2; } > "$work/seed.ldif"
scripts/slapd.sh start "$work/slapd" 14389 14636 "$work/seed.ldif"
export CORP_LDAP_PASSWORD=secret CLOUD_SCIM_TOKEN=bench
printf '%-12s %-24s %8s %8s %10s %14s\n' concurrency phase seconds objects objects/s requests/object
for c in 1 4; do
  scripts/scim-server.sh stop "$work/scim" >/dev/null 2>&1 || true; sleep 0.3
  scripts/scim-server.sh start "$work/scim" 18089 bench
  rm -rf "$work/idf"; mkdir -p "$work/idf/rules"
  cp rules/openldap-to-cloud/users.toml rules/openldap-to-cloud/groups.toml "$work/idf/rules/"
  { openldap_source 14389 CORP_LDAP_PASSWORD; cat <<CONF
[[connector]]
name = "cloud"
type = "scim"
url = "http://127.0.0.1:18089/v2"
token_env = "CLOUD_SCIM_TOKEN"
concurrency = $c
CONF
  } > "$work/idf/idflow.toml"
  "$bin" --config "$work/idf/idflow.toml" import >/dev/null 2>&1 || true
  "$bin" --config "$work/idf/idflow.toml" sync >/dev/null 2>&1 || true
  report() {
    python3 -c '
import json, sys
r = json.load(sys.stdin); x = (r.get("export") or [{}])[0]
n = x.get("added", 0) + x.get("updated", 0) + x.get("deleted", 0)
secs = r["duration_ms"] / 1000.0
print("%-12s %-24s %8.2f %8d %10.0f %14.2f" % (sys.argv[1], sys.argv[2], secs, n, n / secs if secs else 0, (x.get("requests") or 0) / n if n else 0))' "$1" "$2"
  }
  "$bin" --config "$work/idf/idflow.toml" --json export | report "$c" "initial 1000+100"
  # 1% of the people change.
  for i in $(seq 0 100 999); do
    printf 'dn: uid=u%06d,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Bench %s\n\n' "$i" "$c"
  done | sed 's/uid=u000007,ou=People/uid=u000007,ou=Disabled,ou=People/' > "$work/changes.ldif"
  ldapmodify -x -H ldap://127.0.0.1:14389 -D cn=admin,dc=example,dc=org -w secret -f "$work/changes.ldif" >/dev/null
  "$bin" --config "$work/idf/idflow.toml" import >/dev/null 2>&1 || true
  "$bin" --config "$work/idf/idflow.toml" sync >/dev/null 2>&1 || true
  "$bin" --config "$work/idf/idflow.toml" --json export | report "$c" "1% delta"
done
