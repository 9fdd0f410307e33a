#!/usr/bin/env bash
# Starts lookalike-server (no models: vectors-only collections) on free ports,
# checks /healthz and /metrics, stops it with SIGTERM and expects a clean exit.
set -euo pipefail
server=$1
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.yaml" <<YAML
listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
data_dir: $work/data
models: []
YAML
"$server" --config "$work/config.yaml" --log-level info > "$work/log" 2>&1 &
pid=$!
metrics_port=""
for _ in $(seq 1 100); do
  metrics_port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$work/log")
  if [ -n "$metrics_port" ] && grep -q "serving lookalike.v1 on" "$work/log"; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$work/log"; echo "server exited early"; exit 1; }
  sleep 0.1
done
[ -n "$metrics_port" ] || { cat "$work/log"; echo "server did not start"; exit 1; }
health=$(curl -fsS "http://127.0.0.1:$metrics_port/healthz")
[ "$health" = "SERVING" ] || { echo "healthz: $health"; exit 1; }
# No RPC has run yet, so the exposition may hold no samples; check the reply.
curl -fsS -D "$work/headers" -o /dev/null "http://127.0.0.1:$metrics_port/metrics"
grep -qi "^Content-Type: text/plain; version=0.0.4" "$work/headers" \
  || { cat "$work/headers"; echo "/metrics: wrong content type"; exit 1; }
[ -d "$work/data" ] || { echo "data_dir not created"; exit 1; }
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
grep -q "stopped (0 snapshot failure(s))" "$work/log" || { cat "$work/log"; exit 1; }
[ "$status" -eq 0 ] || { cat "$work/log"; echo "exit status $status"; exit 1; }
echo "ok"
