#!/usr/bin/env bash
# Issue 20's benchmark: rooms over two instances, in one run.
#
# Every run starts two fresh release gateways (instances `a` and `b`) on a
# fresh exchange and stream of their own (the same for both: they share
# room messages through the stream and presence over the peer link), with
# --rooms-open, and runs one of these sets; the sets run in interleaved
# rounds whose order rotates:
#   rooms        `loadgen rooms`: MEMBERS members of one room (half on each
#                instance), PUBLISHERS of them publishing RATE messages/s in
#                total for CHAT_DURATION (latency at every member, counts,
#                CPU per delivery); then CHURN_RATE joins/leaves per second
#                for CHURN_DURATION over CHURN_ROOMS rooms (convergence, CPU);
#   tours        `loadgen latency`: TOUR_CLIENTS clients of instance a
#                subscribed to `*`, a burst of BURST tour events;
#   tours+chat   the same burst while the chat of `rooms` runs beside it
#                (started first; the burst is published once the chat is
#                publishing).
#   <set>@base   any of them with the gateway binary BASE_GATEWAY instead
#                (a build to compare with, in the same interleaved rounds).
# The gateways get the same flags in every set. The per-connection limits
# are raised so that a publisher may send RATE/PUBLISHERS messages a
# second (the defaults, PUBLISH_RATE 5 and RATE_LIMIT 10, are for people).
#
# Usage (from the workspace root):
#   cargo build --release -p tourcast --bin tourcast && cargo build --release -p loadgen
#   ROUNDS=3 tools/loadgen/rooms-bench.sh
# Environment: ROUNDS (3), SETS ("rooms tours tours+chat"), MEMBERS (1000),
# PUBLISHERS (10), RATE (100), CHAT_DURATION (20s), CHURN_RATE (1000),
# CHURN_DURATION (10s), CHURN_ROOMS (200), TOUR_CLIENTS (1000), BURST (1000),
# BESIDE_DURATION (40s: the chat beside the burst, to cover its ramp),
# STATS_INTERVAL (1s), GATEWAY (./target/release/tourcast), BASE_GATEWAY, PORT (19300; b is PORT+1), OUT
# (target/rooms-bench/runs.jsonl), RABBITMQ_URL.
# Loopback only; a run takes 35-60 s. It deletes each run's stream when
# done (rabbitmqctl delete_queue, when rabbitmqctl is on PATH).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
read -r -a SETS <<<"${SETS:-rooms tours tours+chat}"
MEMBERS=${MEMBERS:-1000}
PUBLISHERS=${PUBLISHERS:-10}
RATE=${RATE:-100}
CHAT_DURATION=${CHAT_DURATION:-20s}
CHURN_RATE=${CHURN_RATE:-1000}
CHURN_DURATION=${CHURN_DURATION:-10s}
CHURN_ROOMS=${CHURN_ROOMS:-200}
TOUR_CLIENTS=${TOUR_CLIENTS:-1000}
BURST=${BURST:-1000}
BESIDE_DURATION=${BESIDE_DURATION:-40s}
STATS_INTERVAL=${STATS_INTERVAL:-1s}
PORT=${PORT:-19300}
DIR=target/rooms-bench
OUT=${OUT:-$DIR/runs.jsonl}
GATEWAY=${GATEWAY:-./target/release/tourcast}
LOADGEN=./target/release/loadgen

mkdir -p "$DIR"
: >"$OUT"
ulimit -n 20000

GWS=()
CHAT=""
stop_all() {
    if [[ -n "$CHAT" ]] && kill -0 "$CHAT" 2>/dev/null; then
        kill -TERM "$CHAT" 2>/dev/null || true
        wait "$CHAT" 2>/dev/null || true
    fi
    CHAT=""
    for gw in "${GWS[@]}"; do
        kill -0 "$gw" 2>/dev/null && kill -TERM "$gw"
    done
    for gw in "${GWS[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$gw" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$gw" 2>/dev/null && kill -KILL "$gw"
        wait "$gw" 2>/dev/null || true
    done
    GWS=()
}
trap stop_all EXIT

start_gateways() {
    local name=$1 binary=$2 i port
    for i in 0 1; do
        port=$((PORT + i))
        RUST_LOG=warn "$binary" --port "$port" --bind 127.0.0.1 \
            --rabbitmq-exchange "$name" --rabbitmq-stream "$name.s" \
            --rabbitmq-replay-from next --max-connections-per-ip 20000 \
            --rooms-open --instance-id "$name-$i" --stats-interval "$STATS_INTERVAL" \
            --rate-limit 1000 --rate-burst 1000 --publish-rate 100 --publish-burst 100 \
            >"$DIR/$name.gateway$i.log" 2>&1 &
        GWS+=($!)
        # The first one declares the exchange and the stream.
        wait_ready "$port" "$name" "$i"
    done
}

wait_ready() {
    local port=$1 name=$2 i=$3
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "gateway $i not ready; see $DIR/$name.gateway$i.log" >&2
    exit 1
}

rooms_cmd() {
    "$LOADGEN" rooms --url "ws://127.0.0.1:$PORT/ws" --url "ws://127.0.0.1:$((PORT + 1))/ws" \
        --pid "${GWS[0]}" --pid "${GWS[1]}" --members "$MEMBERS" --publishers "$PUBLISHERS" \
        --rate "$RATE" --churn-rooms "$CHURN_ROOMS" --json "$@"
}

tours_cmd() {
    local name=$1
    "$LOADGEN" latency --url "ws://127.0.0.1:$PORT/ws" --exchange "$name" \
        --clients "$TOUR_CLIENTS" --burst "$BURST" --drain 10s \
        --probe-stream "$name.s" --pid "${GWS[0]}" --json
}

record() {
    local file=$1 round=$2 set=$3 kind=$4 name=$5 load=$6
    tail -n 1 "$file" |
        jq -c --argjson round "$round" --arg set "$set" --arg kind "$kind" \
            --arg exchange "$name" --argjson load "$load" \
            '{round: $round, set: $set, kind: $kind, exchange: $exchange, loadAverage: $load} + .' >>"$OUT"
}

run() {
    local round=$1 set=$2
    local name load
    name="bench20_$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    # `<set>@base`: the same set with BASE_GATEWAY (a build to compare with).
    local binary=$GATEWAY
    if [[ "$set" == *@base ]]; then
        binary=${BASE_GATEWAY:?BASE_GATEWAY is needed for $set}
    fi
    start_gateways "$name" "$binary"
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "== round $round, set $set ($name, $binary), load $load" >&2
    case "${set%@base}" in
    rooms)
        rooms_cmd --duration "$CHAT_DURATION" --churn-rate "$CHURN_RATE" \
            --churn-duration "$CHURN_DURATION" |
            tee "$DIR/$name.rooms.txt" >&2
        record "$DIR/$name.rooms.txt" "$round" "$set" rooms "$name" "$load"
        ;;
    tours)
        tours_cmd "$name" | tee "$DIR/$name.tours.txt" >&2
        record "$DIR/$name.tours.txt" "$round" "$set" tours "$name" "$load"
        ;;
    tours+chat)
        # The chat long enough to cover the tour clients' ramp and burst.
        rooms_cmd --churn-duration 0 --duration "$BESIDE_DURATION" \
            >"$DIR/$name.rooms.txt" 2>"$DIR/$name.rooms.err" &
        CHAT=$!
        for _ in $(seq 1 600); do
            grep -q "messages from" "$DIR/$name.rooms.err" 2>/dev/null && break
            kill -0 "$CHAT" 2>/dev/null || { cat "$DIR/$name.rooms.err" >&2; exit 1; }
            sleep 0.1
        done
        tours_cmd "$name" | tee "$DIR/$name.tours.txt" >&2
        record "$DIR/$name.tours.txt" "$round" "$set" tours "$name" "$load"
        wait "$CHAT"
        CHAT=""
        cat "$DIR/$name.rooms.txt" >&2
        record "$DIR/$name.rooms.txt" "$round" "$set" chat-beside "$name" "$load"
        ;;
    *)
        echo "unknown set $set" >&2
        exit 2
        ;;
    esac
    stop_all
    if command -v rabbitmqctl >/dev/null; then
        rabbitmqctl -q delete_queue "$name.s" >/dev/null 2>&1 || true
    fi
}

for round in $(seq 1 "$ROUNDS"); do
    shift_by=$(((round - 1) % ${#SETS[@]}))
    order=("${SETS[@]:shift_by}" "${SETS[@]:0:shift_by}")
    for set in "${order[@]}"; do
        run "$round" "$set"
    done
done

# The tables: every run, then the medians, and the tour burst with the chat
# beside it against without (same batch).
jq -rs '
  def median: map(select(. != null)) | sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r1: if . == null then "-" else . * 10 | round / 10 end;
  def r2: if . == null then "-" else . * 100 | round / 100 end;
  def r0: if . == null then "-" else round end;
  (map(select(.kind == "rooms" or .kind == "chat-beside")) ) as $rooms
  | (map(select(.kind == "tours"))) as $tours
  | "chat (rooms: alone; chat-beside: with the tour burst on instance a)",
    (["round", "set", "kind", "delivered", "missing", "dup", "p50 ms", "p99 ms", "p99 at a/b",
      "gateways µs/delivery", "churn ops/s", "convergence ms", "churn CPU % core", "µs/op", "load"] | @tsv),
    ($rooms[] | [.round, .set, .kind, "\(.chat.delivered)/\(.chat.expected)", .chat.missing, .chat.duplicates,
        (.chat.p50ms | r2), (.chat.p99ms | r2),
        "\(.chat.byMemberInstance[0].p99ms | r2)/\(.chat.byMemberInstance[1].p99ms | r2)",
        (.chat.gatewayCpuUsPerDelivery | r2),
        (if .churn then (.churn.operations / .churn.seconds | round) else "-" end),
        (.churn.convergenceMs | r1), (.churn.gatewayCpuCorePercent | r1),
        (.churn.gatewayCpuUsPerOperation | r1), .loadAverage] | @tsv),
    "",
    "tour burst (instance a)",
    (["round", "set", "deliveries/s", "delivered", "p99 ms", "gateway a µs/delivery", "load"] | @tsv),
    ($tours[] | [.round, .set, (.deliveriesPerSecond | round), "\(.delivered)/\(.expected)",
        (.p99ms | r1), (.gatewayCpuUsPerDelivery | r2), .loadAverage] | @tsv),
    "",
    "medians",
    ($rooms | group_by("\(.set) \(.kind)")[] | .[0].kind as $k | "\(.[0].set) \($k)" as $name
     | "\($name) (\(length) runs): chat p50 \(map(.chat.p50ms) | median | r2) ms, p99 \(map(.chat.p99ms) | median | r2) ms, \(map(.chat.gatewayCpuUsPerDelivery) | median | r2) µs/delivery"
       + (if $k == "rooms" then ", convergence \(map(.churn.convergenceMs) | median | r1) ms, churn CPU \(map(.churn.gatewayCpuCorePercent) | median | r1)% of a core" else "" end)),
    ($tours | map(select(.delivered == .expected)) as $ok
     | ($ok | map(select(.set == "tours") | .deliveriesPerSecond) | median) as $alone
     | ($ok | map(select(.set == "tours+chat") | .deliveriesPerSecond) | median) as $beside
     | "tour burst: alone \($alone | r0) deliveries/s, beside the chat \($beside | r0) (× \(if $alone and $beside then $beside / $alone | . * 1000 | round / 1000 else "-" end)); complete runs \($ok | length) of \(length)")
' "$OUT"
