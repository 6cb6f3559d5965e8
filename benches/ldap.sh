#!/usr/bin/env bash
# LDAP import throughput against a real slapd, next to the floor the server sets:
#   benches/ldap.sh [PEOPLE...]        (default: 10000 100000)
# For each size: slapd seeded by slapadd, `ldapsearch -E pr=1000/noprompt` reading the same
# entries, `idflow import --full` (release build), then 100 changes and a delta import.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
cargo build --release -q
bin=$PWD/target/release/idflow
work=$(mktemp -d); trap 'scripts/slapd.sh stop "$work/slapd" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }
printf '%-8s %-28s %9s %12s\n' people what seconds objects/s
for n in "${sizes[@]}"; do
  groups=$((n / 20))
  scripts/slapd.sh stop "$work/slapd" >/dev/null 2>&1 || true
  rm -rf "$work/slapd" "$work/idf"; mkdir -p "$work/idf/rules"
  { printf 'dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n'
    "$bin" generate --people "$n" --groups "$groups" --out /dev/stdout | tail -n +2; } > "$work/seed.ldif"
  scripts/slapd.sh start "$work/slapd" 13389 13636 "$work/seed.ldif"
  total=$((n + groups))
  filter='(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))'
  t0=$(now)
  got=$(ldapsearch -x -LLL -H ldap://127.0.0.1:13389 -D cn=admin,dc=example,dc=org -w secret -b dc=example,dc=org \
        -E pr=1000/noprompt "$filter" '*' entryUUID | grep -c '^dn:')
  t1=$(now)
  floor=$(echo "$t1 - $t0" | bc -l)
  printf '%-8s %-28s %9.3f %12.0f\n' "$n" "ldapsearch (floor)" "$floor" "$(echo "$got / $floor" | bc -l)"
  cp examples/quickstart/rules/people.toml examples/quickstart/rules/groups.toml "$work/idf/rules/"
  { openldap_source 13389 BENCH_PW; cat <<CONF
[[connector]]
name = "cloud"
type = "file"
path = "out/cloud.json"
CONF
  } > "$work/idf/idflow.toml"
  export BENCH_PW=secret
  t0=$(now); "$bin" --config "$work/idf/idflow.toml" import --full corp >/dev/null 2>&1; t1=$(now)
  full=$(echo "$t1 - $t0" | bc -l)
  printf '%-8s %-28s %9.3f %12.0f   (%.2fx the floor)\n' "$n" "idflow import --full" "$full" "$(echo "$total / $full" | bc -l)" "$(echo "$full / $floor" | bc -l)"
  { for i in $(seq 0 $((n / 100)) $((n - 1)) | head -100); do
      dn=$(grep -m1 "^dn: uid=u$(printf %06d "$i")," "$work/seed.ldif" | cut -c5-)
      printf 'dn: %s\nchangetype: modify\nreplace: title\ntitle: Bench %s\n\n' "$dn" "$i"
    done; } > "$work/changes.ldif"
  ldapmodify -x -H ldap://127.0.0.1:13389 -D cn=admin,dc=example,dc=org -w secret -f "$work/changes.ldif" >/dev/null
  t0=$(now); "$bin" --config "$work/idf/idflow.toml" import corp >/dev/null 2>&1; t1=$(now)
  printf '%-8s %-28s %9.3f\n' "$n" "delta import of 100 changes" "$(echo "$t1 - $t0" | bc -l)"
done
