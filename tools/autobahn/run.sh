#!/usr/bin/env bash
# The Autobahn testsuite's fuzzing client against the gateway's WebSocket
# transport (this folder's echo server): cases 1–7, 9, 10, 12 and 13.
# Every case must come out OK, NON-STRICT or INFORMATIONAL; the summary is
# printed, and the full report is left in target/autobahn/report/.
#
#   bash tools/autobahn/run.sh            # every case above
#   CASES='["12.1.*"]' bash tools/autobahn/run.sh
#
# Needs wstest (Python 2.7): PYENV_VERSION=2.7.18 python -m pip install --user autobahntestsuite
set -euo pipefail
cd "$(dirname "$0")/../.."
WSTEST="${WSTEST:-$HOME/.local/bin/wstest}"
PORT="${AUTOBAHN_PORT:-9001}"
CASES="${CASES:-[\"1.*\", \"2.*\", \"3.*\", \"4.*\", \"5.*\", \"6.*\", \"7.*\", \"9.*\", \"10.*\", \"12.*\", \"13.*\"]}"
OUT=target/autobahn
mkdir -p "$OUT"
rm -rf "$OUT/report"

cargo build -q --release -p tourcast-autobahn
target/release/tourcast-autobahn --listen "127.0.0.1:$PORT" >"$OUT/echo.log" 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

cat >"$OUT/fuzzingclient.json" <<JSON
{
  "outdir": "$PWD/$OUT/report",
  "servers": [{"agent": "tourcast", "url": "ws://127.0.0.1:$PORT"}],
  "cases": $CASES,
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
started=$(date +%s)
(cd "$OUT" && PYENV_VERSION=2.7.18 "$WSTEST" -m fuzzingclient -s fuzzingclient.json >wstest.log 2>&1)
echo "wstest took $(( $(date +%s) - started )) s"

python3 - "$OUT/report/index.json" <<'PY'
import json, sys, collections
index = json.load(open(sys.argv[1]))["tourcast"]
counts = collections.Counter()
bad = []
for case, result in sorted(index.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
    behavior, close = result["behavior"], result["behaviorClose"]
    counts[behavior] += 1
    if behavior not in ("OK", "NON-STRICT", "INFORMATIONAL") or close not in ("OK", "INFORMATIONAL"):
        bad.append(f"{case}: {behavior} (close {close})")
print(f"{len(index)} cases: " + ", ".join(f"{n} {b}" for b, n in counts.most_common()))
for line in bad:
    print("  " + line)
sys.exit(1 if bad else 0)
PY
