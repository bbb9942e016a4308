#!/usr/bin/env bash
# Issue 13's benchmark: what notifications and stats cost the tour fan-out.
#
# Burst deliveries/s to CLIENTS tour clients (a burst of BURST events), in
# interleaved rounds of these sets (SETS, the order rotating every round):
#   without      the tour clients alone;
#   with         plus USERS notification subscribers, each a user of its
#                own, with NOTIFICATIONS_PER_USER (1) notifications each
#                published interleaved with the burst, plus one admin
#                subscribed to stats;
#   subscribers  the same connections, but no notification published (what
#                the connections cost, apart from the traffic);
#   after        as `with`, but the notifications published after the tour
#                events instead of interleaved with them.
# Every run gets a fresh gateway process and a fresh exchange and stream.
# The gateway has the same flags in every set (JWT on, so the tour clients
# present a token too; --stats-interval 250ms, so that stats messages go out
# during a burst of well under a second: 20 times the default rate), so the
# only difference is the other channels' subscribers and traffic.
#
# Usage (from the workspace root):
#   cargo build --release -p tourcast --bin tourcast && cargo build --release -p loadgen
#   ROUNDS=5 tools/loadgen/channels-bench.sh
# Environment: ROUNDS (3), SETS ("without with"), CLIENTS (1000), BURST
# (1000), USERS (1000), NOTIFICATIONS_PER_USER (1), STATS_INTERVAL (250ms), PORT (18480), OUT
# (target/channels-bench/runs.jsonl), RABBITMQ_URL.
# Loopback only; each run takes ~15 s. It deletes each run's stream when
# done (rabbitmqctl delete_queue, when rabbitmqctl is on PATH).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
read -r -a SETS <<<"${SETS:-without with}"
CLIENTS=${CLIENTS:-1000}
BURST=${BURST:-1000}
USERS=${USERS:-1000}
NOTIFICATIONS_PER_USER=${NOTIFICATIONS_PER_USER:-1}
STATS_INTERVAL=${STATS_INTERVAL:-250ms}
PORT=${PORT:-18480}
DIR=target/channels-bench
OUT=${OUT:-$DIR/runs.jsonl}
GATEWAY=./target/release/tourcast
LOADGEN=./target/release/loadgen
SECRET="bench13-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"

mkdir -p "$DIR"
: >"$OUT"
ulimit -n 20000

GW=""
stop_gateway() {
    if [[ -n "$GW" ]] && kill -0 "$GW" 2>/dev/null; then
        kill -TERM "$GW"
        for _ in $(seq 1 100); do
            kill -0 "$GW" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$GW" 2>/dev/null && kill -KILL "$GW"
        wait "$GW" 2>/dev/null || true
    fi
    GW=""
}
trap stop_gateway EXIT

# The loadgen flags of a set.
set_flags() {
    case "$1" in
    without) ;;
    with) echo "--notification-users $USERS --notifications-per-user $NOTIFICATIONS_PER_USER --stats-admin" ;;
    after) echo "--notification-users $USERS --notifications-per-user $NOTIFICATIONS_PER_USER --notifications-after --stats-admin" ;;
    subscribers) echo "--notification-users $USERS --notifications-per-user 0 --stats-admin" ;;
    *)
        echo "unknown set $1" >&2
        exit 2
        ;;
    esac
}

run() {
    local round=$1 set=$2
    local name load
    name="bench13_$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    RUST_LOG=warn "$GATEWAY" --port "$PORT" --bind 127.0.0.1 \
        --rabbitmq-exchange "$name" --rabbitmq-stream "$name.s" \
        --rabbitmq-replay-from next --max-connections-per-ip 20000 \
        --jwt-secret "$SECRET" --stats-interval "$STATS_INTERVAL" \
        >"$DIR/$name.gateway.log" 2>&1 &
    GW=$!
    local ready=""
    for _ in $(seq 1 300); do
        if curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1; then
            ready=yes
            break
        fi
        sleep 0.1
    done
    [[ -n "$ready" ]] || { echo "gateway not ready; see $DIR/$name.gateway.log" >&2; exit 1; }

    local flags
    read -r -a flags <<<"$(set_flags "$set")"
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "== round $round, set $set ($name), load $load" >&2
    "$LOADGEN" latency --url "ws://127.0.0.1:$PORT/ws" --exchange "$name" \
        --clients "$CLIENTS" --burst "$BURST" --drain 10s \
        --probe-stream "$name.s" --pid "$GW" --json \
        --jwt-secret "$SECRET" "${flags[@]}" | tee "$DIR/$name.txt" >&2
    tail -n 1 "$DIR/$name.txt" |
        jq -c --argjson round "$round" --arg set "$set" --arg exchange "$name" \
            --argjson load "$load" \
            '. + {round: $round, set: $set, exchange: $exchange, loadAverage: $load}' >>"$OUT"
    stop_gateway
    if command -v rabbitmqctl >/dev/null; then
        rabbitmqctl -q delete_queue "$name.s" >/dev/null 2>&1 || true
    fi
}

for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order: each set goes first in turn.
    shift_by=$(((round - 1) % ${#SETS[@]}))
    order=("${SETS[@]:shift_by}" "${SETS[@]:0:shift_by}")
    for set in "${order[@]}"; do
        run "$round" "$set"
    done
done

# The table: every run, then per set the medians (of runs where every tour
# delivery arrived) and the ratio to `without`.
jq -rs '
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r1: if . == null then "-" else . * 10 | round / 10 end;
  def r2: if . == null then "-" else . * 100 | round / 100 end;
  def complete: select(.delivered == .expected);
  (map(complete | select(.set == "without") | .deliveriesPerSecond) | median) as $base
  | (["round", "set", "tour deliveries/s", "delivered", "p99 ms",
      "gateway µs/delivery", "notifications (exact)", "to tour clients",
      "stats msgs (in burst)", "stats max deliveries/s", "load"] | @tsv),
    (.[] | [.round, .set, (.deliveriesPerSecond | round), "\(.delivered)/\(.expected)",
            (.p99ms | r1), (.gatewayCpuUsPerDelivery | r2),
            (if .channels then "\(.channels.notificationsDelivered) (\(.channels.exact))" else "-" end),
            .notificationsToTourClients,
            (if .channels.stats then "\(.channels.stats.messages) (\(.channels.stats.duringBurst))" else "-" end),
            (if .channels.stats then (.channels.stats.maxDeliveriesPerSecond | round) else "-" end),
            .loadAverage]
           | @tsv),
    "",
    (["set", "complete runs", "median deliveries/s", "min", "max", "× without",
      "median gateway µs/delivery"] | @tsv),
    (group_by(.set)[] | .[0].set as $set | map(complete) as $runs
     | ($runs | map(.deliveriesPerSecond)) as $rates
     | [$set, "\($runs | length) of \(length)", ($rates | median | round),
        ($rates | min | round), ($rates | max | round),
        (($rates | median) / $base | . * 1000 | round / 1000),
        ($runs | map(.gatewayCpuUsPerDelivery) | median | r2)] | @tsv)
' "$OUT"
