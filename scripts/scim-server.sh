#!/usr/bin/env bash
# Test set-up only: the third-party SCIM 2.0 server `scim2-server` (PyPI), in memory, on 127.0.0.1.
#
#   scripts/scim-server.sh install            # a venv in $IDFLOW_SCIM_VENV (default target/scim-venv)
#   scripts/scim-server.sh start DIR PORT TOKEN
#   scripts/scim-server.sh stop DIR
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${IDFLOW_SCIM_VENV:-$PWD/target/scim-venv}
version=0.8.3
case "${1:?install|start|stop}" in
install)
  # Tests that start a server at the same time install it once: the first holds the lock, the
  # others wait for it and find it installed.
  mkdir -p "$(dirname "$venv")"
  exec 9> "$venv.lock"
  flock 9
  if [ ! -x "$venv/bin/scim2-server" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "scim2-server==$version"
  fi ;;
start)
  dir=${2:?dir}; port=${3:?port}; token=${4:?token}
  [ -x "$venv/bin/scim2-server" ] || "$0" install
  mkdir -p "$dir"
  "$venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" > "$dir/scim.log" 2>&1 &
  echo $! > "$dir/scim.pid"
  for _ in $(seq 100); do
    if curl -s -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v2/ServiceProviderConfig"; then exit 0; fi
    kill -0 "$(cat "$dir/scim.pid")" 2>/dev/null || { cat "$dir/scim.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "scim2-server did not answer on 127.0.0.1:$port" >&2; exit 1 ;;
stop)
  dir=${2:?dir}
  [ -f "$dir/scim.pid" ] && kill "$(cat "$dir/scim.pid")" 2>/dev/null || true ;;
esac
