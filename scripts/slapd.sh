#!/usr/bin/env bash
# Test set-up only (the product speaks LDAP itself): an OpenLDAP slapd on 127.0.0.1 for tests.
#
#   scripts/slapd.sh start DIR PORT LDAPS_PORT [SEED.ldif]   # starts it, waits until it answers
#                                   (SEED is loaded by slapadd first, into an empty database)
#   scripts/slapd.sh stop DIR
#
# Base dc=example,dc=org, root cn=admin,dc=example,dc=org with password $SLAPD_PASSWORD
# (default "secret"). syncprov (RFC 4533 syncrepl with session log), accesslog and memberof
# overlays, refint for member and manager; a self-signed CA (DIR/ca.pem) and a server certificate for IP 127.0.0.1 and
# DNS localhost, for StartTLS and LDAPS. The samba schema is loaded when Debian's samba
# package ships it (password hash sync tests need sambaNTPassword). SLAPD_NO_TLS=1 starts a server
# with no TLS at all (no LDAPS listener, StartTLS refused): a server to meet a refusal with.
# SLAPD_PPOLICY=1 adds the ppolicy overlay (lockout on), its policy the entry
# cn=default,ou=Policies,dc=example,dc=org when a test adds one.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}
case "$cmd" in
stop)
  if [ -f "$dir/slapd.pid" ]; then kill "$(cat "$dir/slapd.pid")" 2>/dev/null || true; fi
  for _ in $(seq 50); do [ -f "$dir/slapd.pid" ] && kill -0 "$(cat "$dir/slapd.pid")" 2>/dev/null || exit 0; sleep 0.1; done
  kill -9 "$(cat "$dir/slapd.pid")" 2>/dev/null || true
  exit 0 ;;
start) ;;
*) echo "usage: $0 start DIR PORT LDAPS_PORT | stop DIR" >&2; exit 2 ;;
esac
port=${3:?port}
ldaps_port=${4:?ldaps port}
pw=${SLAPD_PASSWORD:-secret}
command -v slapd >/dev/null || PATH="$PATH:/usr/sbin"
command -v slapd >/dev/null || { echo "slapd is not installed (apt-get install slapd ldap-utils)" >&2; exit 1; }
mkdir -p "$dir/data" "$dir/accesslog"
dir=$(cd "$dir" && pwd)

if [ ! -f "$dir/server.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=idflow test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
    -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
  chmod 600 "$dir/server.key"
fi

samba_schema=""
for s in /usr/share/doc/samba/examples/LDAP/samba.schema /etc/ldap/schema/samba.schema; do
  if [ -f "$s" ]; then samba_schema="include $s"; break; fi
done
hash=$(slappasswd -s "$pw")
tls="TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key"
urls="ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$ldaps_port/"
if [ "${SLAPD_NO_TLS:-}" = 1 ]; then tls=""; urls="ldap://127.0.0.1:$port/"; fi
ppolicy_module="" ppolicy=""
if [ "${SLAPD_PPOLICY:-}" = 1 ]; then
  ppolicy_module="moduleload ppolicy"
  ppolicy="overlay ppolicy
ppolicy_default \"cn=default,ou=Policies,dc=example,dc=org\"
ppolicy_use_lockout"
fi
cat > "$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
$samba_schema
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
moduleload accesslog
moduleload memberof
moduleload refint
$ppolicy_module
sizelimit unlimited
$tls

database mdb
suffix "cn=accesslog"
directory $dir/accesslog
rootdn "cn=admin,dc=example,dc=org"
maxsize 1073741824
index reqStart eq
overlay syncprov
syncprov-nopresent TRUE
syncprov-reloadhint TRUE

database mdb
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw $hash
directory $dir/data
maxsize 4294967296
index objectClass eq
index entryCSN,entryUUID eq
index uid,mail,cn eq
limits dn.exact="cn=admin,dc=example,dc=org" size=unlimited time=unlimited
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-refint TRUE
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 10000
# Defined after syncprov, so the reference fixes refint makes are seen by syncrepl clients.
overlay refint
refint_attributes member manager
overlay accesslog
logdb cn=accesslog
logops writes
$ppolicy
CONF
slaptest -u -f "$dir/slapd.conf" >/dev/null 2>&1 || { slaptest -u -f "$dir/slapd.conf"; exit 1; }
seed=${5:-}
if [ -n "$seed" ] && [ ! -f "$dir/data/data.mdb" ]; then
  slapadd -q -f "$dir/slapd.conf" -b dc=example,dc=org -l "$seed"
fi
slapd -f "$dir/slapd.conf" -h "$urls" || { echo "slapd did not start (is port $port or $ldaps_port in use?)" >&2; exit 1; }
for _ in $(seq 100); do
  if ldapsearch -x -H "ldap://127.0.0.1:$port" -s base -b "" >/dev/null 2>&1; then
    # The base entry, so tests can add below it.
    if ! ldapsearch -x -H "ldap://127.0.0.1:$port" -D cn=admin,dc=example,dc=org -w "$pw" -b dc=example,dc=org -s base >/dev/null 2>&1; then
      printf 'dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n' |
        ldapadd -x -H "ldap://127.0.0.1:$port" -D cn=admin,dc=example,dc=org -w "$pw" >/dev/null
    fi
    exit 0
  fi
  sleep 0.1
done
echo "slapd did not answer on 127.0.0.1:$port" >&2
exit 1
