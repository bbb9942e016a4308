#!/usr/bin/env bash
# deploy/Containerfile, built and checked here, where no container registry
# is reachable and containers cannot run (`podman run` needs cgroups this
# sandbox lacks):
#  1. a Debian bookworm base made with mmdebstrap from Debian's packages and
#     imported into podman, kept in podman's storage and reused for a week;
#  2. hadolint on the Containerfile;
#  3. `podman build --isolation=chroot` with BINARY_FROM=prebuilt, taking the
#     release binary built here, so the compile stage and its Rust base are
#     skipped (buildah skips unused stages; --pull=never proves nothing is
#     fetched);
#  4. the image's configuration: non-root user, port, stop signal, health
#     check, entrypoint, environment;
#  5. the image's own filesystem, mounted read-only and entered with chroot
#     as the image's user with the image's environment (PORT and
#     BIND_ADDRESS moved to a loopback test port): it serves --demo, /health
#     and the embedded dashboard; the image's own HEALTHCHECK command passes
#     against it and fails once it has stopped; SIGTERM stops it cleanly.
# Everything this run adds to podman's storage, but the base, is removed
# at the end (KEEP_IMAGE=1 keeps the image, tagged $IMAGE).
#
#   bash tests/deploy/image.sh          # as root, after cargo build --release
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=${TOURCAST_BASE_IMAGE:-localhost/tourcast-ci/debian:bookworm-slim}
IMAGE=localhost/tourcast-ci/tourcast:test
PORT=${TOURCAST_IMAGE_TEST_PORT:-18680}
BASE_MAX_AGE_DAYS=7

say() { printf '%s [image] %s\n' "$(date +%T)" "$*"; }
fail() { printf 'image check FAILED: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

[ "$(id -u)" = 0 ] || fail "run as root (podman image mount and chroot need it)"
for tool in podman mmdebstrap hadolint curl python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (bash .ci/run installs it)"
done
[ -x target/release/tourcast ] || fail "no target/release/tourcast: cargo build --release first"

# --- 1. the base --------------------------------------------------------
t=$(date +%s)
base_fresh=0
if created=$(podman image inspect --format '{{.Created.Unix}}' "$BASE" 2>/dev/null); then
  age_days=$((($(date +%s) - created) / 86400))
  [ "$age_days" -lt "$BASE_MAX_AGE_DAYS" ] && base_fresh=1
fi
if [ "$base_fresh" = 1 ]; then
  say "base $BASE: reused (${age_days} days old)"
else
  scratch=$(mktemp -d)
  # Like debian:bookworm-slim: minbase, without documentation and locales.
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    bookworm "$scratch/rootfs.tar"
  podman import --quiet "$scratch/rootfs.tar" "$BASE" >/dev/null
  rm -rf "$scratch"
  say "base $BASE: made with mmdebstrap and imported in $(elapsed "$t")"
fi

# --- 2. lint ------------------------------------------------------------
hadolint deploy/Containerfile
say "hadolint: clean"

# --- 3. build -----------------------------------------------------------
mapfile -t before < <(podman images --all --quiet --no-trunc | sort -u)
cleanup_images() {
  # The images this run made: the final one and the build's intermediate
  # ones (untagged). Tagged images of anyone else are left alone.
  local id tags
  for id in $(comm -13 <(printf '%s\n' "${before[@]}") \
                       <(podman images --all --quiet --no-trunc | sort -u)); do
    tags=$(podman image inspect --format '{{join .RepoTags " "}}' "$id" 2>/dev/null || true)
    if [ -z "$tags" ] || [ "$tags" = "$IMAGE" ]; then
      podman rmi --force "$id" >/dev/null 2>&1 || true
    fi
  done
}
gateway_pid=
mounted=0
build_log=$(mktemp)
finish() {
  local status=$?
  set +e
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  [ "$mounted" = 1 ] && podman image unmount "$IMAGE" >/dev/null
  [ "${KEEP_IMAGE:-0}" = 1 ] || cleanup_images
  rm -f "$build_log"
  exit "$status"
}
trap finish EXIT

t=$(date +%s)
# --format docker: HEALTHCHECK is part of Docker's image format, not OCI's.
podman build --isolation=chroot --pull=never --format docker \
  --build-arg RUNTIME_IMAGE="$BASE" --build-arg BINARY_FROM=prebuilt \
  -f deploy/Containerfile -t "$IMAGE" . >"$build_log" 2>&1 \
  || { cat "$build_log" >&2; fail "podman build"; }
grep -q 'STEP 1/1: FROM .* AS binary' "$build_log" && ! grep -q 'AS compile' "$build_log" \
  || { cat "$build_log" >&2; fail "the build did not skip the compile stage for the prebuilt binary"; }
say "podman build (chroot, prebuilt binary, compile stage skipped): $(elapsed "$t")"

# --- 4. configuration ---------------------------------------------------
config=$(podman image inspect --format '{{json .Config}}' "$IMAGE")
healthcheck=$(podman image inspect --format '{{json .HealthCheck}}' "$IMAGE")
python3 - "$config" "$healthcheck" <<'EOF' || fail "image configuration"
import json, sys
config = json.loads(sys.argv[1])
healthcheck = json.loads(sys.argv[2]) or {}
env = dict(item.split("=", 1) for item in config.get("Env") or [])
problems = []
def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: {got!r}, expected {want!r}")
expect("User", config.get("User"), "10001:10001")
expect("ExposedPorts", sorted(config.get("ExposedPorts") or {}), ["8080/tcp"])
expect("StopSignal", config.get("StopSignal"), "SIGTERM")
expect("Entrypoint", config.get("Entrypoint"), ["/usr/local/bin/tourcast"])
expect("Env PORT", env.get("PORT"), "8080")
expect("HEALTHCHECK", (healthcheck.get("Test") or [])[:1], ["CMD"])
expect("HEALTHCHECK interval", healthcheck.get("Interval"), 10_000_000_000)
for line in problems:
    print(line, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
say "configuration: user 10001, port 8080, SIGTERM, health check, entrypoint"

# --- 5. the image's filesystem serves -----------------------------------
root=$(podman image mount "$IMAGE")
mounted=1
grep -qx 'tourcast:x:10001:10001::/nonexistent:/usr/sbin/nologin' "$root/etc/passwd" \
  || fail "the image's passwd has no tourcast user 10001"
grep -q '^tourcast:x:10001:' "$root/etc/group" || fail "the image's group has no tourcast group 10001"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA certificates in the image"

# The image's environment, one NAME=value per line, test port last.
mapfile -t image_env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
run_env=("${image_env[@]}" "PORT=$PORT" "BIND_ADDRESS=127.0.0.1")
# The HEALTHCHECK's command, NUL-separated (its "CMD" marker dropped).
mapfile -d '' -t health_cmd < <(python3 -c '
import json, sys
test = json.loads(sys.argv[1])["Test"]
sys.stdout.write("".join(arg + "\0" for arg in test[1:]))' "$healthcheck")
in_image() { env -i "${run_env[@]}" /usr/sbin/chroot --userspec=10001:10001 "$root" "$@"; }

if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
  fail "something already listens on 127.0.0.1:$PORT (TOURCAST_IMAGE_TEST_PORT picks another)"
fi
log=$(mktemp)
# Not through in_image: env, chroot and the gateway exec each other, so
# that $! is the gateway's own pid.
env -i "${run_env[@]}" /usr/sbin/chroot --userspec=10001:10001 "$root" \
  /usr/local/bin/tourcast --demo >"$log" 2>&1 &
gateway_pid=$!
t=$(date +%s)
until curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$log" >&2; fail "the gateway in the image exited"; }
  [ $(($(date +%s) - t)) -lt 20 ] || { cat "$log" >&2; fail "no /health within 20s"; }
  sleep 0.2
done
health=$(curl -fsS "http://127.0.0.1:$PORT/health")
python3 -c '
import json, sys
h = json.loads(sys.argv[1])
assert h["status"] == "ok" and h["eventSource"] == {"kind": "demo", "state": "connected"}, h' "$health" \
  || fail "/health: $health"
uid=$(ps -o uid= -p "$gateway_pid" | tr -d ' ' || true)
[ "$uid" = 10001 ] || fail "the gateway runs as uid $uid, not 10001"
index=$(curl -fsS "http://127.0.0.1:$PORT/")
grep -q '<div id="root">' <<<"$index" || fail "no embedded dashboard at /: $index"
script=$(grep -o 'src="\./assets/[^"]*\.js"' <<<"$index" | head -n 1 | sed 's/^src="\.//; s/"$//')
[ -n "$script" ] && curl -fsS -o /dev/null "http://127.0.0.1:$PORT$script" \
  || fail "the dashboard's script ${script:-<none>} is not served"
say "the image's filesystem serves --demo as uid 10001: /health ok, dashboard at /"
in_image "${health_cmd[@]}" || fail "the image's HEALTHCHECK fails against a healthy gateway"
say "HEALTHCHECK passes"

kill -TERM "$gateway_pid"
t=$(date +%s)
stopped=0
while [ $(($(date +%s) - t)) -lt 10 ]; do
  if ! kill -0 "$gateway_pid" 2>/dev/null; then stopped=1; break; fi
  sleep 0.1
done
[ "$stopped" = 1 ] || fail "SIGTERM did not stop the gateway within 10s"
wait "$gateway_pid" || fail "the gateway exited non-zero after SIGTERM: $(cat "$log")"
gateway_pid=
grep -q 'SIGTERM: shutting down' "$log" || fail "no graceful shutdown in the log"
if in_image "${health_cmd[@]}" 2>/dev/null; then
  fail "the HEALTHCHECK passes with the gateway stopped"
fi
say "SIGTERM: clean exit; HEALTHCHECK fails once it is down"
rm -f "$log"
say "image check passed"
