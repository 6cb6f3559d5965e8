#!/usr/bin/env bash
# Pass-through authentication's throughput against the project's Samba AD DC (LDAPS):
#   benches/pta.sh [POOL] [SECONDS]      (default 4 connections, 15 s a run)
# The floor: raw LDAPS simple binds as one user from POOL connections. Then RADIUS and the
# signed hook (benches/pta_load.py, POOL clients) through `idflow pta serve` (the checks in
# that process), and through the relay with 1 and with 4 agents (mutual TLS, sealed passwords).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pool=${1:-4}
secs=${2:-15}
cargo build --release -q
bin=$PWD/target/release/idflow
cargo bench -q -p idflow-connectors --bench ldap_bind_floor --no-run 2>/dev/null
dc=${IDFLOW_SAMBA_DIR:-/tmp/idflow-bench-samba-dc}
pw='Passw0rd!Adm1n'
user_pw='Bench-Passw0rd!1'
scripts/samba-dc.sh start "$dc"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; "$root/scripts/samba-dc.sh" stop "$dc" >/dev/null 2>&1 || true; }
trap cleanup EXIT
tag=$(printf '%04x' $((RANDOM)))
ou="OU=ptabench$tag,DC=example,DC=test"
sam="pb$tag"
upw=$(printf '"%s"' "$user_pw" | iconv -f utf-8 -t utf-16le | base64 -w0)
printf 'dn: %s\nchangetype: add\nobjectClass: organizationalUnit\n\ndn: CN=%s,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\nuserPrincipalName: %s@example.test\nunicodePwd:: %s\nuserAccountControl: 512\n\n' \
  "$ou" "$sam" "$ou" "$sam" "$sam" "$upw" | LDAPTLS_CACERT="$dc/ca.pem" ldapmodify -x -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" >/dev/null

cd "$work"
echo "== the floor"
(cd "$root" && cargo bench -q -p idflow-connectors --bench ldap_bind_floor -- ldaps://127.0.0.1:636 "$dc/ca.pem" "CN=$sam,$ou" "$user_pw" "$pool" "$secs")

# Certificates for the relay and the agents, and the shared secrets.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout ca.key -out ca.pem 2>/dev/null
for name in relay agent; do
  if [ $name = relay ]; then ext='subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'; else ext='extendedKeyUsage=clientAuth'; fi
  printf "basicConstraints=CA:FALSE\n$ext\n" > $name.ext
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout $name.key -out $name.csr 2>/dev/null
  openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile $name.ext -out $name.pem 2>/dev/null
done
echo "radius-shared-secret-0123456789" > radius.secret
echo "hmac-key-for-signed-calls" > hook.key
chmod 600 ./*.key radius.secret hook.key
mkdir -p rules
sed -e "s|ca_file = \"ca.pem\"|ca_file = \"$dc/ca.pem\"|" -e 's|paths = \["."\]|paths = ["rules"]|' \
    -e 's|CN=idflow-sync,CN=Users,DC=example,DC=test|CN=Administrator,CN=Users,DC=example,DC=test|' \
    "$root/rules/ad-to-cloud/idflow.toml" > source.toml
export AD_PASSWORD="$pw"
front="radius_listen = \"127.0.0.1:18120\"\nhook_listen = \"127.0.0.1:18443\"\nhook_secret_file = \"hook.key\"\n"
client="[[pta.radius_client]]\naddress = \"127.0.0.1\"\nsecret_file = \"radius.secret\"\n"
{ cat source.toml; printf "\n[pta]\nconnector = \"ad\"\npool = $pool\n$front$client"; } > local.toml
{ cat source.toml; printf "\n[pta]\npool = $pool\nrelay_listen = \"127.0.0.1:17390\"\ntls_ca = \"ca.pem\"\ntls_cert = \"relay.pem\"\ntls_key = \"relay.key\"\n$front$client"; } > relay.toml
{ cat source.toml; printf "\n[pta]\nconnector = \"ad\"\npool = $pool\nrelay = \"127.0.0.1:17390\"\ntls_ca = \"ca.pem\"\ntls_cert = \"agent.pem\"\ntls_key = \"agent.key\"\n"; } > agent.toml

load() {
  python3 "$root/benches/pta_load.py" radius 127.0.0.1:18120 radius-shared-secret-0123456789 "$sam" "$user_pw" "$pool" "$secs"
  python3 "$root/benches/pta_load.py" hook 127.0.0.1:18443 hmac-key-for-signed-calls "$sam" "$user_pw" "$pool" "$secs"
}
wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done; echo "timed out waiting for $2 in $1"; cat "$1"; exit 1; }
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }

echo "== idflow pta serve (pool $pool)"
"$bin" --config local.toml pta serve 2> serve.log & pids+=($!)
wait_for serve.log "hook listening"
load
stop_all
for agents in 1 4; do
  echo "== relay and $agents agent(s) (each pool $pool)"
  "$bin" --config relay.toml pta relay 2> relay.log & pids+=($!)
  wait_for relay.log "hook listening"
  for i in $(seq "$agents"); do "$bin" --config agent.toml pta agent 2> agent$i.log & pids+=($!); done
  wait_for relay.log "connected=$agents"
  load
  stop_all
done
