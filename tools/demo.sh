#!/usr/bin/env bash
# Lookalike demo: starts lookalike-server (unless one already answers), creates
# a collection, indexes the sample photo set with the `lookalike` CLI, and
# prints the photos most similar to one of them. Safe to re-run: a running
# server is reused, the collection is kept, and `lookalike index` resumes from
# its journal (nothing is sent twice).
#
#   tools/demo.sh                      # after building (see README)
#   QUERY=coffee/zoom.jpg tools/demo.sh
#
# Environment: BUILD_DIR (build), LOOKALIKE_SERVER (127.0.0.1:50051),
# DEMO_DIR (.cache/demo: photos, data, logs), COLLECTION (demo_photos),
# QUERY (chelsea/crop_a.jpg, relative to the photo folder), METRICS_LISTEN
# (127.0.0.1:9090; empty = off), HTTP_LISTEN (127.0.0.1:8080: the web page and
# the HTTP/JSON API; empty = off), THUMBNAIL_SIZE (256: the collection keeps a
# thumbnail of each photo, longer side in pixels, which the web page shows;
# 0 = none).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
SERVER_BIN=$BUILD_DIR/server/lookalike-server
CLI=$BUILD_DIR/client/lookalike
ADDR=${LOOKALIKE_SERVER:-127.0.0.1:50051}
DEMO_DIR=${DEMO_DIR:-.cache/demo}
PHOTOS=$DEMO_DIR/photos
DATA=$DEMO_DIR/data
LOG=$DEMO_DIR/server.log
PIDFILE=$DEMO_DIR/server.pid
COLLECTION=${COLLECTION:-demo_photos}
QUERY=${QUERY:-chelsea/crop_a.jpg}
METRICS_LISTEN=${METRICS_LISTEN-127.0.0.1:9090}
HTTP_LISTEN=${HTTP_LISTEN-127.0.0.1:8080}
THUMBNAIL_SIZE=${THUMBNAIL_SIZE:-256}
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

say() { printf '==> %s\n' "$*"; }

for bin in "$SERVER_BIN" "$CLI"; do
  if [ ! -x "$bin" ]; then
    echo "missing $bin: build first:" >&2
    echo "  cmake -S . -B $BUILD_DIR -G Ninja && cmake --build $BUILD_DIR --target lookalike-server lookalike" >&2
    exit 1
  fi
done
mkdir -p "$DEMO_DIR"

if [ ! -f weights/efficientnet_lite0.safetensors ]; then
  say "Preparing the EfficientNet-Lite0 weights (tools/prepare_weights.py)"
  "$PY" tools/prepare_weights.py
fi

if [ ! -f "$PHOTOS/metadata.csv" ]; then
  say "Writing the sample photo set to $PHOTOS (tools/make_sample_photos.py)"
  "$PY" tools/make_sample_photos.py --out "$PHOTOS" >/dev/null
fi

started=0
if "$CLI" health --server "$ADDR" >/dev/null 2>&1; then
  say "A server already answers at $ADDR; using it"
else
  say "Starting lookalike-server on $ADDR (data in $DATA, log in $LOG)"
  nohup "$SERVER_BIN" --listen "$ADDR" --data-dir "$DATA" --metrics-listen="$METRICS_LISTEN" \
    --http-listen="$HTTP_LISTEN" \
    --model "efficientnet_lite0=efficientnet_lite0:weights/efficientnet_lite0.safetensors" \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  started=1
  if ! "$CLI" health --server "$ADDR" --wait 120 >/dev/null; then
    echo "the server did not become healthy; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  say "Server is SERVING (pid $(cat "$PIDFILE"))"
fi

if described=$("$CLI" collections describe "$COLLECTION" --server "$ADDR" 2>/dev/null); then
  say "Collection $COLLECTION exists"
  if [ "$THUMBNAIL_SIZE" != 0 ] && grep -q '^thumbnails: *none' <<<"$described"; then
    say "(it keeps no thumbnails, so the web page shows no pictures: drop it with" \
      "'$CLI collections drop $COLLECTION --server $ADDR' and rm $DEMO_DIR/journal.jsonl, then re-run)"
  fi
else
  say "Creating collection $COLLECTION (thumbnails: $THUMBNAIL_SIZE px)"
  "$CLI" collections create "$COLLECTION" --metric cosine --thumbnail-size "$THUMBNAIL_SIZE" \
    --server "$ADDR"
fi

say "Indexing $PHOTOS (lookalike index; resumes from $DEMO_DIR/journal.jsonl)"
"$CLI" index "$COLLECTION" "$PHOTOS" --metadata "$PHOTOS/metadata.csv" \
  --journal "$DEMO_DIR/journal.jsonl" --server "$ADDR"

say "Photos most similar to $QUERY:"
"$CLI" search "$COLLECTION" --image "$PHOTOS/$QUERY" --k 10 --server "$ADDR"

echo
if [ -n "$HTTP_LISTEN" ] && [ "$started" = 1 ]; then
  say "Open the web page: http://$HTTP_LISTEN/ (collection $COLLECTION; drop a photo)"
  say "JSON API: curl -s -H 'Content-Type: application/json' -d '{}' http://$HTTP_LISTEN/lookalike.v1.Lookalike/ListCollections"
fi
say "Try: $CLI search $COLLECTION --image $PHOTOS/coffee/zoom.jpg --filter variant=png --server $ADDR"
if [ "$started" = 1 ]; then
  say "Stop the server with: kill $(cat "$PIDFILE")"
elif [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  say "Stop the server with: kill $(cat "$PIDFILE")"
else
  say "The server at $ADDR was already running (not started by this script)"
fi
