#!/usr/bin/env bash
# The ldap connector's `ad` flavor against a Samba AD DC, next to ldapsearch on the same DC:
#   benches/ad.sh [USERS]      (default 10000; adding them takes about 3 s per 1,000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
cargo build --release -q
bin=$PWD/target/release/idflow
dc=${IDFLOW_SAMBA_DIR:-/tmp/idflow-bench-samba-dc}
pw='Passw0rd!Adm1n'
scripts/samba-dc.sh start "$dc"
trap 'scripts/samba-dc.sh stop "$dc" >/dev/null 2>&1 || true' EXIT
tag=$(printf '%04x' $((RANDOM)))
ou="OU=bench$tag,DC=example,DC=test"
{ printf 'dn: %s\nchangetype: add\nobjectClass: organizationalUnit\n\n' "$ou"
  for i in $(seq 0 $((n - 1))); do
    printf 'dn: CN=b%05d,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: b%s%05d\nuserPrincipalName: b%s%05d@example.test\nmail: b%s%05d@example.test\ngivenName: Bench\nsn: N%d\n\n' \
      "$i" "$ou" "$tag" "$i" "$tag" "$i" "$tag" "$i" "$i"
  done; } > /tmp/ad-bench.ldif
t0=$(date +%s.%N)
LDAPTLS_CACERT="$dc/ca.pem" ldapmodify -x -c -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" -f /tmp/ad-bench.ldif >/dev/null
echo "setup: $n users added in $(echo "$(date +%s.%N) - $t0" | bc -l | cut -c1-6) s"
filter='(&(objectClass=user)(!(objectClass=computer)))'
t0=$(date +%s.%N)
got=$(LDAPTLS_CACERT="$dc/ca.pem" ldapsearch -x -LLL -o ldif-wrap=no -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" -b "$ou" -E pr=1000/noprompt "$filter" \
      objectGUID sAMAccountName userPrincipalName mail givenName sn displayName userAccountControl | grep -c '^dn:')
floor=$(echo "$(date +%s.%N) - $t0" | bc -l)
work=$(mktemp -d)
mkdir -p "$work/rules"; cp rules/ad-to-cloud/users.toml "$work/rules/"
sed -e "s|ca_file = \"ca.pem\"|ca_file = \"$dc/ca.pem\"|" -e 's|paths = \["."\]|paths = ["rules"]|' \
    -e 's|CN=idflow-sync,CN=Users,DC=example,DC=test|CN=Administrator,CN=Users,DC=example,DC=test|' \
    -e "s|base_dn = \"DC=example,DC=test\"|base_dn = \"DC=example,DC=test\"\ninclude_ous = [\"$ou\"]|" rules/ad-to-cloud/idflow.toml > "$work/idflow.toml"
export AD_PASSWORD="$pw"
t0=$(date +%s.%N); "$bin" --config "$work/idflow.toml" import --full ad >/dev/null; full=$(echo "$(date +%s.%N) - $t0" | bc -l)
printf '%-34s %8.3f s %10.0f objects/s\n' "ldapsearch over LDAPS (floor)" "$floor" "$(echo "$got / $floor" | bc -l)"
printf '%-34s %8.3f s %10.0f objects/s  (%.2fx the floor; includes the DirSync cookie read)\n' "idflow import --full (LDAPS)" "$full" "$(echo "$n / $full" | bc -l)" "$(echo "$full / $floor" | bc -l)"
{ for i in $(seq 0 $((n / 100)) $((n - 1)) | head -100); do printf 'dn: CN=b%05d,%s\nchangetype: modify\nreplace: title\ntitle: Bench\n\n' "$i" "$ou"; done; } > /tmp/ad-bench-changes.ldif
LDAPTLS_CACERT="$dc/ca.pem" ldapmodify -x -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" -f /tmp/ad-bench-changes.ldif >/dev/null
t0=$(date +%s.%N); "$bin" --config "$work/idflow.toml" import ad >/dev/null; printf '%-34s %8.3f s\n' "DirSync delta import, 100 changes" "$(echo "$(date +%s.%N) - $t0" | bc -l)"
rm -rf "$work"
