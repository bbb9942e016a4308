#!/usr/bin/env bash
# deploy/systemd, checked without a running systemd:
#  - `systemd-analyze verify` prints nothing for the unit, and for the same
#    file installed as the template tourcast@.service with the drop-in that
#    deploy/README.md gives (ExecStart pointed at the binary built here:
#    verify wants the executable to exist);
#  - `systemd-analyze security --offline` rates its exposure 2.0 at most;
#  - the numbers that must agree do: LimitNOFILE covers the connection caps
#    and the gateway's reserve, TimeoutStopSec outlasts the longest graceful
#    stop for the env file's SHUTDOWN_GRACE;
#  - every setting in the example env file is one the gateway knows, with a
#    value it accepts.
#
#   bash tests/deploy/systemd.sh [path/to/tourcast]   # default: target/release/tourcast
set -euo pipefail
cd "$(dirname "$0")/../.."

UNIT=deploy/systemd/tourcast.service
ENV_FILE=deploy/systemd/tourcast.env
binary=$(realpath "${1:-target/release/tourcast}")

fail() { printf 'systemd check FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf '%s [systemd] %s\n' "$(date +%T)" "$*"; }

command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (apt-get install systemd)"
[ -x "$binary" ] || fail "no gateway binary at $binary"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The unit as shipped, but for ExecStart (exactly one, the installed path).
[ "$(grep -c '^ExecStart=/usr/local/bin/tourcast$' "$UNIT")" = 1 ] \
  || fail "$UNIT should have exactly one ExecStart=/usr/local/bin/tourcast"
sed "s#^ExecStart=/usr/local/bin/tourcast\$#ExecStart=$binary#" "$UNIT" >"$scratch/tourcast.service"
# The same file as a template, with the drop-in deploy/README.md gives for
# several instances on one host; an instance is a link to the template.
cp "$scratch/tourcast.service" "$scratch/tourcast@.service"
ln -s tourcast@.service "$scratch/tourcast@8081.service"
mkdir "$scratch/tourcast@.service.d"
drop_in=$(sed -n '/^# \/etc\/systemd\/system\/tourcast@.service.d\/instance.conf$/,/^```$/p' deploy/README.md | sed '1d;$d')
[ -n "$drop_in" ] || fail "deploy/README.md lost its tourcast@.service.d/instance.conf block"
printf '%s\n' "$drop_in" | sed "s#/usr/local/bin/tourcast #$binary #" >"$scratch/tourcast@.service.d/instance.conf"
grep -q "^ExecStart=$binary --port %i" "$scratch/tourcast@.service.d/instance.conf" \
  || fail "the drop-in in deploy/README.md should set ExecStart=/usr/local/bin/tourcast --port %i …"

# Unit names would be looked up in the system's unit path, not here, and
# silently not found: verify takes the files' paths.
for unit in tourcast.service tourcast@8081.service; do
  output=$(systemd-analyze verify "$scratch/$unit" 2>&1) \
    || fail "systemd-analyze verify $unit: $output"
  [ -z "$output" ] || fail "systemd-analyze verify $unit is not clean: $output"
done
say "systemd-analyze verify: clean (tourcast.service, tourcast@8081.service with its drop-in)"

security=$(systemd-analyze security --offline=true --threshold=20 --no-pager \
  "$scratch/tourcast.service" 2>&1) || fail "exposure above 2.0: $security"
say "systemd-analyze security: $(grep -o 'Overall exposure level.*' <<<"$security")"

# --- numbers that must agree --------------------------------------------
setting() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
seconds() { # 30s, 2min, 5 → seconds
  case $1 in
    *min) echo $((${1%min} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
nofile=$(setting LimitNOFILE "$UNIT")
max_connections=$(setting MAX_CONNECTIONS "$ENV_FILE")
max_pending=$(setting MAX_PENDING_CONNECTIONS "$ENV_FILE")
reserve=$(sed -n 's/^pub const FD_RESERVE: usize = \([0-9]*\);$/\1/p' src/server/listener.rs)
[ -n "$reserve" ] || fail "FD_RESERVE not found in src/server/listener.rs"
needed=$((max_connections + max_pending + reserve))
[ "$nofile" -ge "$needed" ] \
  || fail "LimitNOFILE=$nofile < MAX_CONNECTIONS $max_connections + pending $max_pending + reserve $reserve"
grace=$(seconds "$(setting SHUTDOWN_GRACE "$ENV_FILE")")
stop=$(seconds "$(setting TimeoutStopSec "$UNIT")")
longest=$((3 * grace + 1))
[ "$stop" -gt "$longest" ] || fail "TimeoutStopSec=${stop}s is not above 3 x SHUTDOWN_GRACE + 1s = ${longest}s"
for line in 'Restart=on-failure' 'KillSignal=SIGTERM' 'DynamicUser=yes' 'NoNewPrivileges=yes' \
  'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'CapabilityBoundingSet=' \
  "EnvironmentFile=/etc/tourcast/tourcast.env"; do
  grep -qx "$line" "$UNIT" || fail "$UNIT lacks $line"
done
say "LimitNOFILE $nofile >= $needed; TimeoutStopSec ${stop}s > ${longest}s"

# --- the example env file -----------------------------------------------
help=$("$binary" --help)
mapfile -t assignments < <(grep -v '^[[:space:]]*#' "$ENV_FILE" | sed '/^[[:space:]]*$/d')
for assignment in "${assignments[@]}"; do
  name=${assignment%%=*}
  grep -qE "\[env: $name(=|\])" <<<"$help" || fail "$ENV_FILE sets $name, which tourcast --help does not know"
done
# Every value parses: the gateway's settings are read (and refused when
# wrong) before any subcommand runs; `token` then exits without a network.
output=$(env -i "${assignments[@]}" "$binary" token --secret check --sub check 2>&1) \
  || fail "the gateway refuses $ENV_FILE: $output"
say "the example env file: ${#assignments[@]} settings, all known and valid"
say "systemd check passed"
