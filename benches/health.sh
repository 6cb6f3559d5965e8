#!/usr/bin/env bash
# The cost of health monitoring on a running `idflow serve`: the quickstart's rules over a
# generated directory of PEOPLE people (default 100,000; groups at 5%), with a rule that fails on
# every tenth person (10,000 objects in error at the default). Prints the health check's time, the
# scrape time of /metrics, each dashboard page's render time (median of 5), and the memory the
# pages and scrapes added to the service.
#   benches/health.sh [PEOPLE]
set -euo pipefail
cd "$(dirname "$0")/.."
PEOPLE=${1:-100000}
cargo build --release -q
BIN=$PWD/target/release/idflow
DIR=$(mktemp -d /tmp/idflow-bench-health.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
cp -r examples/quickstart/. "$DIR"/
"$BIN" generate --people "$PEOPLE" --groups $((PEOPLE / 20)) --out "$DIR/corp.ldif"
# Every tenth person's title flow fails: a Rule Error each, kept in the error report.
sed -i 's/^title = "mv.jobTitle"$/title = '"'"'if mv.employeeId.ends_with("0") { throw "bench: every tenth person" } else { mv.jobTitle }'"'"'/' "$DIR/rules/accounts.toml"
grep -q 'every tenth' "$DIR/rules/accounts.toml" || { echo "the quickstart's title flow moved: update benches/health.sh"; exit 1; }
printf '\n[service]\nlisten = "127.0.0.1:0"\ninterval = "24h"\n\n[health]\ncheck_every = "5s"\n' >> "$DIR/idflow.toml"
cd "$DIR"
"$BIN" serve 2> serve.log &
PID=$!
echo "waiting for the first cycle ($PEOPLE people: full import, sync, export)..."
start=$(date +%s)
until "$BIN" status --json 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["cycles"]>=1 and s.get("checked") and s["objects_in_error"]>0 else 1)' 2>/dev/null; do
  kill -0 "$PID" || { cat serve.log; exit 1; }
  sleep 2
done
echo "first cycle and health check after $(( $(date +%s) - start )) s"
sleep 6
rss() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
RSS0=$(rss)
read -r ADDRESS LINK < <("$BIN" dashboard --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["address"][:-3], d["sign_in"])')
TOKEN=$(python3 -c 'import json; print(json.load(open("state/idflow.db.service.json"))["token"])')
curl -s -o /dev/null -c cookies "$LINK"
"$BIN" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("objects in error %d (%s); health check %d ms" % (s["objects_in_error"], ", ".join("%s %d" % kv for kv in s["errors_by_category"].items() if kv[1]), s["check_ms"]))'
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # NAME URL [curl args]
  local name=$1 url=$2; shift 2
  local t
  t=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "$@" "$ADDRESS$url"; done | median)
  local size
  size=$(curl -s "$@" "$ADDRESS$url" | wc -c)
  printf '%-32s %8.1f ms %10d bytes\n' "$name" "$(echo "$t * 1000" | bc -l)" "$size"
}
measure "/metrics (scrape)" /metrics -H "Authorization: Bearer $TOKEN"
measure "/ui (overview)" /ui -b cookies
measure "/ui/errors (first 500 rows)" /ui/errors -b cookies
measure "/ui/errors?category=rule-error" "/ui/errors?category=rule-error" -b cookies
measure "/ui/errors.csv (all)" /ui/errors.csv -b cookies
measure "/ui/runs" /ui/runs -b cookies
measure "/ui/search?q=u00005" "/ui/search?q=u00005" -b cookies
measure "/ui/object?mv=5 (preview)" "/ui/object?mv=5" -b cookies
RSS1=$(rss)
echo "service memory: $((RSS0 / 1024)) MiB before the pages and scrapes, $((RSS1 / 1024)) MiB after: $(((RSS1 - RSS0) / 1024)) MiB added"
