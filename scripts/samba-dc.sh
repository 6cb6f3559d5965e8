#!/usr/bin/env bash
# Test set-up only: a Samba 4 Active Directory domain controller on 127.0.0.1.
#
#   scripts/samba-dc.sh start DIR     # provisions (once) and starts it; waits until LDAP answers
#   scripts/samba-dc.sh stop DIR
#
# Realm EXAMPLE.TEST, domain EXAMPLE, host DC1, Administrator password $SAMBA_ADMIN_PASSWORD
# (default Passw0rd!Adm1n). Ports 389/636 (and 88, 135, 445, ... for RPC) are fixed: one DC per
# machine. The DC gets a certificate from a test CA (DIR/ca.pem) with subjectAltNames
# DC1.example.test and 127.0.0.1, as certificates AD CS issues to DCs have them (Samba's own
# self-signed one has a CN only, which rustls rightly refuses).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}
pw=${SAMBA_ADMIN_PASSWORD:-Passw0rd!Adm1n}
case "$cmd" in
stop)
  pid=$(cat "$dir"/run/samba.pid 2>/dev/null || true)
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done; kill -9 "$pid" 2>/dev/null || true; fi
  exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
command -v samba >/dev/null || PATH="$PATH:/usr/sbin"
command -v samba >/dev/null || { echo "samba is not installed (apt-get install samba samba-ad-dc winbind krb5-user ldb-tools)" >&2; exit 1; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd); mkdir -p "$dir/run" "$dir/log"
if [ -f "$dir/run/samba.pid" ] && kill -0 "$(cat "$dir/run/samba.pid")" 2>/dev/null; then exit 0; fi
if [ ! -f "$dir/etc/smb.conf" ]; then
  samba-tool domain provision --use-rfc2307 --realm=EXAMPLE.TEST --domain=EXAMPLE \
    --server-role=dc --dns-backend=NONE --adminpass="$pw" --targetdir="$dir" --host-name=dc1 \
    --option="interfaces=lo" --option="bind interfaces only=yes" \
    --option="pid directory=$dir/run" --option="ncalrpc dir=$dir/run/ncalrpc" \
    --option="winbindd socket directory=$dir/run/winbindd" --option="ntp signd socket directory=$dir/run/ntp_signd" \
    --option="log file=$dir/log/log.%m" > "$dir/log/provision.log" 2>&1 || { tail -20 "$dir/log/provision.log" >&2; exit 1; }
fi
if [ ! -f "$dir/dc.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=idflow test AD CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=DC1.example.test" -keyout "$dir/dc.key" -out "$dir/dc.csr" 2>/dev/null
  printf 'subjectAltName=DNS:DC1.example.test,DNS:dc1.example.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/dc.ext"
  openssl x509 -req -in "$dir/dc.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 30 -extfile "$dir/dc.ext" -out "$dir/dc.pem" 2>/dev/null
  chmod 600 "$dir/dc.key"
  sed -i "s|^\[global\]$|[global]\n\ttls enabled = yes\n\ttls keyfile = $dir/dc.key\n\ttls certfile = $dir/dc.pem\n\ttls cafile = $dir/ca.pem|" "$dir/etc/smb.conf"
fi
if ldapsearch -x -H ldap://127.0.0.1 -o nettimeout=1 -s base -b "" dnsHostName >/dev/null 2>&1; then
  echo "something else already answers LDAP on 127.0.0.1:389 (another DC?): stop it first" >&2
  exit 1
fi
samba -s "$dir/etc/smb.conf" -F -M single --debug-stdout -d1 > "$dir/log/samba.out" 2>&1 &
started=$!
for _ in $(seq 150); do
  kill -0 "$started" 2>/dev/null || { echo "samba exited (log: $dir/log/samba.out)" >&2; tail -20 "$dir/log/samba.out" >&2; exit 1; }
  # Ready when LDAP answers and the endpoint mapper listens (RPC comes up after LDAP: password
  # hash sync tests that start the DC would otherwise race it).
  if ldapsearch -x -H ldap://127.0.0.1 -o nettimeout=2 -s base -b "" dnsHostName 2>/dev/null | grep -q dnsHostName \
    && (exec 3<>/dev/tcp/127.0.0.1/135) 2>/dev/null; then
    exit 0
  fi
  sleep 0.2
done
echo "the Samba DC did not answer on ldaps://127.0.0.1 (log: $dir/log/samba.out)" >&2
tail -20 "$dir/log/samba.out" >&2
exit 1
