#!/usr/bin/env bash
# idflow serve, measured: change-to-target latency of 100 single changes (median, p95, max),
# the cost of a cycle that finds nothing, and an idle service's CPU and memory.
#   benches/service.sh [openldap|ad]     openldap: slapd -> scim2-server, syncrepl refreshAndPersist
#                                        ad: Samba AD DC -> file target, DirSync polled every 5 s
#   IDLE=600 (seconds the idle service is watched; default 600)
# With ad, each change is made just after the previous one arrived, so just after a poll: it waits
# a whole poll (the worst case of dirsync_poll; changes arriving at random wait half of it).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
repo=$PWD
flavor=${1:-openldap}
idle=${IDLE:-600}
cargo build --release -q
bin=$PWD/target/release/idflow
work=$(mktemp -d)
svc=""
cleanup() {
  [ -n "$svc" ] && kill "$svc" 2>/dev/null && wait "$svc" 2>/dev/null || true
  "$repo/scripts/slapd.sh" stop "$work/slapd" >/dev/null 2>&1 || true
  "$repo/scripts/scim-server.sh" stop "$work/scim" >/dev/null 2>&1 || true
  if [ "$flavor" = ad ]; then "$repo/scripts/samba-dc.sh" stop "$dc" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/idf/rules"
service='
[service]
listen = "127.0.0.1:0"
interval = "1h"
debounce = "200ms"
'
if [ "$flavor" = openldap ]; then
  scripts/scim-server.sh install >/dev/null
  { printf 'dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n'
    "$bin" generate --people 1000 --groups 100 --out /dev/stdout | tail -n +2; } > "$work/seed.ldif"
  scripts/slapd.sh start "$work/slapd" 15389 15636 "$work/seed.ldif"
  scripts/scim-server.sh start "$work/scim" 18189 bench
  export CORP_LDAP_PASSWORD=secret CLOUD_SCIM_TOKEN=bench
  cp rules/openldap-to-cloud/users.toml rules/openldap-to-cloud/groups.toml "$work/idf/rules/"
  { openldap_source 15389 CORP_LDAP_PASSWORD; cat <<CONF
[[connector]]
name = "cloud"
type = "scim"
url = "http://127.0.0.1:18189/v2"
token_env = "CLOUD_SCIM_TOKEN"
$service
CONF
  } > "$work/idf/idflow.toml"
else
  dc=${IDFLOW_SAMBA_DIR:-/tmp/idflow-bench-samba-dc}
  pw='Passw0rd!Adm1n'
  scripts/samba-dc.sh start "$dc"
  tag=$(printf '%04x' $((RANDOM)))
  ou="OU=svc$tag,DC=example,DC=test"
  { printf 'dn: %s\nchangetype: add\nobjectClass: organizationalUnit\n\n' "$ou"
    for i in $(seq 0 999); do
      printf 'dn: CN=b%05d,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: b%s%05d\nuserPrincipalName: b%s%05d@example.test\ntitle: Start\n\n' "$i" "$ou" "$tag" "$i" "$tag" "$i"
    done; } > "$work/seed.ldif"
  LDAPTLS_CACERT="$dc/ca.pem" ldapmodify -x -c -H ldaps://127.0.0.1 -D Administrator@example.test -w "$pw" -f "$work/seed.ldif" >/dev/null
  export AD_PASSWORD="$pw"
  cp rules/ad-to-cloud/users.toml rules/ad-to-cloud/groups.toml rules/ad-to-cloud/entra.rhai "$work/idf/rules/"
  sed -e "s|ca_file = \"ca.pem\"|ca_file = \"$dc/ca.pem\"|" -e 's|paths = \["."\]|paths = ["rules"]|' \
      -e 's|CN=idflow-sync,CN=Users,DC=example,DC=test|CN=Administrator,CN=Users,DC=example,DC=test|' \
      -e "s|base_dn = \"DC=example,DC=test\"|base_dn = \"DC=example,DC=test\"\ninclude_ous = [\"$ou\"]|" rules/ad-to-cloud/idflow.toml > "$work/idf/idflow.toml"
  printf '%s' "$service" >> "$work/idf/idflow.toml"
fi
cd "$work/idf"
"$bin" serve 2> serve.log &
svc=$!
until "$bin" status --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["cycles"] >= 1 else 1)' 2>/dev/null; do sleep 0.2; done
echo "first cycle: $("$bin" history --json -n 1000 | python3 -c 'import json,sys; r=json.load(sys.stdin)[-1]["summary"]; print(r["duration_ms"], "ms,", sum(i["read"] for i in r["import"]), "read,", sum(x["added"] for x in r["export"]), "added to the target")')"

# 100 single changes, one at a time: the time from ldapmodify's return to the value in the target.
python3 - "$flavor" "${ou:-}" "${dc:-}" "${tag:-}" <<'PY'
import json, os, subprocess, sys, time, urllib.parse, urllib.request
flavor, ou, dc, tag = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def modify(ldif):
    if flavor == "openldap":
        cmd = ["ldapmodify", "-x", "-H", "ldap://127.0.0.1:15389", "-D", "cn=admin,dc=example,dc=org", "-w", "secret"]
        env = os.environ
    else:
        cmd = ["ldapmodify", "-x", "-H", "ldaps://127.0.0.1", "-D", "Administrator@example.test", "-w", "Passw0rd!Adm1n"]
        env = dict(os.environ, LDAPTLS_CACERT=dc + "/ca.pem")
    subprocess.run(cmd, input=ldif.encode(), env=env, check=True, stdout=subprocess.DEVNULL)
def title_in_target(i):
    if flavor == "openldap":
        q = urllib.parse.quote(f'userName eq "u{i:06d}@example.org"')
        req = urllib.request.Request(f"http://127.0.0.1:18189/v2/Users?filter={q}", headers={"Authorization": "Bearer bench"})
        r = json.load(urllib.request.urlopen(req))["Resources"]
        return r[0].get("title") if r else None
    try:
        objs = json.load(open("out/cloud.json"))["objects"]
    except Exception:
        return None
    for o in objs:
        if o["attributes"].get("userName") == f"b{tag}{i:05d}@example.test":
            return o["attributes"].get("title")
    return None
lat = []
people = [i for i in range(0, 1000, 7) if flavor != "openldap" or i % 40 != 11][:100]
for n, i in enumerate(people):
    title = f"Latency {n}"
    if flavor == "openldap":
        out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", "ldap://127.0.0.1:15389", "-b", "dc=example,dc=org", f"(uid=u{i:06d})", "dn"], capture_output=True, text=True).stdout
        dn = out.split("dn: ", 1)[1].split("\n")[0]
    else:
        dn = f"CN=b{i:05d},{ou}"
    modify(f"dn: {dn}\nchangetype: modify\nreplace: title\ntitle: {title}\n")
    t0 = time.monotonic()
    while title_in_target(i) != title:
        if time.monotonic() - t0 > 60:
            sys.exit(f"change {n} did not arrive in 60 s")
        time.sleep(0.01)
    lat.append(time.monotonic() - t0)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"change-to-target latency, {len(lat)} single changes ({flavor}): median {p(0.5):.2f} s, p95 {p(0.95):.2f} s, max {lat[-1]:.2f} s")
PY

# A cycle with nothing to do, 20 times (cycle --now --wait reports the run's own duration): as a
# change notice starts it (the source's delta import, sync, export), and as the timer does
# (every connector imported: the SCIM or file target is read whole, it has no delta).
source=$(sed -n 's/^name = "\(.*\)"/\1/p' idflow.toml | head -1)
python3 - "$bin" "$source" <<'PY'
import json, subprocess, sys
for what, args in (("the source only, as a change starts it", [sys.argv[2]]), ("every connector, as the timer starts it", [])):
    ms = []
    for _ in range(20):
        out = subprocess.run([sys.argv[1], "cycle", "--now", "--wait", "--json", *args], capture_output=True, text=True, check=True).stdout
        ms.append(json.loads(out)["duration_ms"])
    ms.sort()
    print(f"a cycle that finds nothing, {what}: median {ms[len(ms)//2]} ms, max {ms[-1]} ms")
PY

# Idle: CPU seconds and memory over $idle seconds with nothing changing.
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$svc/stat"; }
c0=$(cpu); sleep "$idle"; c1=$(cpu)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$svc/status")
echo "idle for ${idle} s: $(echo "scale=3; ($c1 - $c0) / $tick" | bc) CPU seconds ($(echo "scale=4; 100 * ($c1 - $c0) / $tick / $idle" | bc)% of one core), resident memory $((rss / 1024)) MiB"
