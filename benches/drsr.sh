#!/usr/bin/env bash
# Password hash sync from AD over MS-DRSR against a Samba AD DC:
#   benches/drsr.sh [USERS]     (default 10000; adding users with passwords takes ~25 s per 1,000)
# Prints users/s pulled and decrypted (no PBKDF2) for a full pull, and the time of an
# incremental run (`idflow run`, whose password hash sync stage delivers them) after 10 changed
# passwords.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
cargo build --release -q
bin=$PWD/target/release/idflow
dc=${IDFLOW_SAMBA_DIR:-/tmp/idflow-bench-samba-dc}
pw='Passw0rd!Adm1n'
scripts/samba-dc.sh start "$dc"
trap 'scripts/samba-dc.sh stop "$dc" >/dev/null 2>&1 || true' EXIT
# One OU per size, kept in the DC's directory: a second run skips the slow set-up.
tag=$n
ou="OU=drsbench$n,DC=example,DC=test"
b64pw() { printf '"%s"' "$1" | iconv -t UTF-16LE | base64 -w0; }
{ printf 'dn: %s\nchangetype: add\nobjectClass: organizationalUnit\n\n' "$ou"
  p=$(b64pw 'Bench-Start-1!')
  for i in $(seq 0 $((n - 1))); do
    printf 'dn: CN=d%05d,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: d%s%05d\nuserPrincipalName: d%s%05d@example.test\ngivenName: Bench\nsn: N%d\nunicodePwd:: %s\nuserAccountControl: 512\n\n' \
      "$i" "$ou" "$tag" "$i" "$tag" "$i" "$i" "$p"
  done
  # The replication account: an ordinary user, given the two rights below.
  printf 'dn: CN=drsrepl%s,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: drsrepl%s\nunicodePwd:: %s\nuserAccountControl: 512\n\n' "$tag" "$ou" "$tag" "$(b64pw 'Repl-Bench-1!')"
} > /tmp/drsr-bench.ldif
if ! LDAPTLS_CACERT="$dc/ca.pem" ldapsearch -x -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" -s base -b "$ou" dn >/dev/null 2>&1; then
  t0=$(date +%s.%N)
  LDAPTLS_CACERT="$dc/ca.pem" ldapmodify -x -c -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" -f /tmp/drsr-bench.ldif >/dev/null
  echo "setup: $n users with passwords added in $(echo "$(date +%s.%N) - $t0" | bc -l | cut -c1-6) s"
fi
for car in get-changes get-changes-all; do
  samba-tool dsacl set --objectdn=DC=example,DC=test --car=$car --action=allow --trusteedn="CN=drsrepl$tag,$ou" \
    -H ldap://127.0.0.1 -U "Administrator%$pw" >/dev/null
done
work=$(mktemp -d)
mkdir -p "$work/rules"; cp rules/ad-to-cloud/users.toml rules/ad-to-cloud/groups.toml "$work/rules/"
sed -e "s|ca_file = \"ca.pem\"|ca_file = \"$dc/ca.pem\"|" -e 's|paths = \["../../rules/ad-to-cloud"\]|paths = ["rules"]|' \
    -e 's|idflow-sync@example.test|Administrator@example.test|' \
    -e "s|# account = .*|account = \"EXAMPLE\\\\\\\\drsrepl$tag\"\npassword_env = \"AD_REPL_PASSWORD\"|" \
    -e "s|base_dn = \"DC=example,DC=test\"|base_dn = \"DC=example,DC=test\"\ninclude_ous = [\"$ou\"]|" examples/ad-to-cloud-phs/idflow.toml > "$work/idflow.toml"
cp "$dc/ca.pem" "$work/"
export AD_PASSWORD="$pw" AD_REPL_PASSWORD='Repl-Bench-1!'
t0=$(date +%s.%N); "$bin" --config "$work/idflow.toml" run >/dev/null
printf '%-52s %8.3f s\n' "first run (import, sync, export, PHS of all)" "$(echo "$(date +%s.%N) - $t0" | bc -l)"
for _ in 1 2 3; do "$bin" --config "$work/idflow.toml" bench-drsr --full; done
TIMEFORMAT='  idflow itself used %U s user + %S s system CPU of %R s (the rest is the DC producing the changes)'
time "$bin" --config "$work/idflow.toml" bench-drsr --full >/dev/null
sed -e 's|^auth = "ntlm".*|auth = "kerberos"\nspn = "host/dc1.example.test"|' "$work/idflow.toml" > "$work/krb.toml"
echo "over Kerberos (AES, DCE style) instead of NTLM:"
for _ in 1 2; do "$bin" --config "$work/krb.toml" bench-drsr --full; done
{ for i in $(seq 0 $((n / 10)) $((n - 1)) | head -10); do
    printf 'dn: CN=d%05d,%s\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: %s\n-\n\n' "$i" "$ou" "$(b64pw "Bench-Changed-$RANDOM-$i!")"
  done; } > /tmp/drsr-bench-changes.ldif
LDAPTLS_CACERT="$dc/ca.pem" ldapmodify -x -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" -f /tmp/drsr-bench-changes.ldif >/dev/null
"$bin" --config "$work/idflow.toml" bench-drsr
t0=$(date +%s.%N); "$bin" --config "$work/idflow.toml" run > "$work/run.out"
printf '%-52s %8.3f s\n' "incremental run, 10 changed passwords in $n users" "$(echo "$(date +%s.%N) - $t0" | bc -l)"
grep "password hash sync" "$work/run.out"
t0=$(date +%s.%N); "$bin" --config "$work/idflow.toml" phs > "$work/phs.out"
printf '%-52s %8.3f s  (%s)\n' "idflow phs with nothing changed" "$(echo "$(date +%s.%N) - $t0" | bc -l)" "$(grep 'password hash sync' "$work/phs.out")"
rm -rf "$work"
