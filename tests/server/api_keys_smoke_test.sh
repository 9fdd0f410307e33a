#!/usr/bin/env bash
# lookalike-server with API keys (docs/security.md), end to end: a key made by
# tools/make_api_key.py --append, the server started with --api-keys and
# metrics_require_key, then the CLI (flag and LOOKALIKE_API_KEY), the HTTP API
# and /metrics with and without the key; the key never reaches the log.
# Usage: api_keys_smoke_test.sh SERVER CLI SOURCE_DIR
set -euo pipefail
server=$1 cli=$2 src=$3
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { cat "$work/log"; echo "FAIL: $*"; exit 1; }

admin=$(python3 "$src/tools/make_api_key.py" --role admin --name ops --append "$work/keys.yaml" 2>/dev/null)
reader=$(python3 "$src/tools/make_api_key.py" --role read --name web --append "$work/keys.yaml" 2>/dev/null)
cat > "$work/config.yaml" <<YAML
listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
http_listen: 127.0.0.2:0
data_dir: $work/data
models: []
api_keys: $work/keys.yaml
metrics_require_key: true
YAML
"$server" --config "$work/config.yaml" --log-level debug > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q "serving lookalike.v1 on" "$work/log" && break
  kill -0 "$pid" 2>/dev/null || fail "server exited early"
  sleep 0.1
done
grpc=$(sed -n 's|.*serving lookalike.v1 on 127.0.0.1:\([0-9]*\).*|\1|p' "$work/log")
metrics=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$work/log")
# Its own address: the same HOST:PORT as metrics_listen would share one port.
api=$(sed -n 's|.*web page on http://127.0.0.2:\([0-9]*\)/.*|\1|p' "$work/log")
[ -n "$grpc" ] && [ -n "$metrics" ] && [ -n "$api" ] || fail "server did not start"
grep -q "API keys: 2 key(s) from $work/keys.yaml; /metrics needs a key" "$work/log" || fail "keys not loaded"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "http://127.0.0.1:$metrics/healthz")" = 200 ] || fail "/healthz should be open"
[ "$(code "http://127.0.0.1:$metrics/metrics")" = 401 ] || fail "/metrics without a key"
[ "$(code -H "Authorization: Bearer $reader" "http://127.0.0.1:$metrics/metrics")" = 200 ] \
  || fail "/metrics with a key"
method="http://127.0.0.2:$api/lookalike.v1.Lookalike/ListCollections"
[ "$(code -H 'Content-Type: application/json' -d '{}' "$method")" = 401 ] || fail "HTTP without a key"
[ "$(code -H 'Content-Type: application/json' -H "Authorization: Bearer $reader" -d '{}' "$method")" = 200 ] \
  || fail "HTTP with a key"

out=$(LOOKALIKE_API_KEY= "$cli" collections list --server "127.0.0.1:$grpc" 2>&1) && fail "CLI without a key: $out"
echo "$out" | grep -q "UNAUTHENTICATED: missing API key" || fail "CLI without a key: $out"
out=$("$cli" collections create shoes --model none --dim 2 --server "127.0.0.1:$grpc" --api-key "$reader" 2>&1) \
  && fail "read key created a collection: $out"
echo "$out" | grep -q 'PERMISSION_DENIED: CreateCollection needs the admin right on collection "shoes"; key "web" has read' \
  || fail "CLI with a read key: $out"
"$cli" collections create shoes --model none --dim 2 --server "127.0.0.1:$grpc" --api-key "$admin" > /dev/null \
  || fail "CLI with the admin key"
LOOKALIKE_API_KEY=$reader "$cli" collections list --server "127.0.0.1:$grpc" | grep -q shoes \
  || fail "CLI with LOOKALIKE_API_KEY"

curl -fsS -H "Authorization: Bearer $admin" "http://127.0.0.1:$metrics/metrics" > "$work/metrics"
grep -q 'lookalike_auth_failures_total{reason="missing_key"} 3' "$work/metrics" || fail "$(cat "$work/metrics")"
grep -q 'lookalike_auth_failures_total{reason="permission_denied"} 1' "$work/metrics" || fail "denied count"
kill -TERM "$pid"
wait "$pid" || fail "exit status $?"
pid=""
if grep -q -e "$admin" -e "$reader" "$work/log"; then fail "a key was logged"; fi
echo "ok"
