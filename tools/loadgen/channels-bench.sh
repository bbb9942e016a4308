#!/usr/bin/env bash
# Issue 13's benchmark: what notifications and stats cost the tour fan-out.
#
# Burst deliveries/s to CLIENTS tour clients (a burst of BURST events),
# WITHOUT and WITH USERS notification subscribers (one notification each,
# published interleaved with the burst) plus one admin subscribed to stats,
# in interleaved rounds (the order alternates every round). Every run gets
# a fresh gateway process and a fresh exchange and stream; the gateway has
# the same flags in both cases (JWT on, --stats-interval 250ms, so that
# stats messages go out during a burst of well under a second: 20 times the
# default rate), so the only difference is the other channels' subscribers
# and traffic.
#
# Usage (from the workspace root, after
# `cargo build --release --bin tourcast -p loadgen`):
#   ROUNDS=5 tools/loadgen/channels-bench.sh
# Environment: ROUNDS (3), CLIENTS (1000), BURST (1000), USERS (1000),
# STATS_INTERVAL (250ms), PORT (18480), OUT (target/channels-bench/runs.jsonl), RABBITMQ_URL.
# Loopback only; each run takes ~15 s. It deletes each run's stream when
# done (rabbitmqctl delete_queue, when rabbitmqctl is on PATH).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-1000}
BURST=${BURST:-1000}
USERS=${USERS:-1000}
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

run() {
    local round=$1 mode=$2
    local name
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

    local extra=()
    if [[ "$mode" == with ]]; then
        extra=(--notification-users "$USERS" --stats-admin)
    fi
    echo "== round $round, $mode other channels ($name)" >&2
    "$LOADGEN" latency --url "ws://127.0.0.1:$PORT/ws" --exchange "$name" \
        --clients "$CLIENTS" --burst "$BURST" --drain 10s \
        --probe-stream "$name.s" --pid "$GW" --json \
        --jwt-secret "$SECRET" "${extra[@]}" | tee "$DIR/$name.txt" >&2
    tail -n 1 "$DIR/$name.txt" |
        jq -c --argjson round "$round" --arg mode "$mode" --arg exchange "$name" \
            '. + {round: $round, set: $mode, exchange: $exchange}' >>"$OUT"
    stop_gateway
    if command -v rabbitmqctl >/dev/null; then
        rabbitmqctl -q delete_queue "$name.s" >/dev/null 2>&1 || true
    fi
}

for round in $(seq 1 "$ROUNDS"); do
    if ((round % 2 == 1)); then order=(without with); else order=(with without); fi
    for mode in "${order[@]}"; do
        run "$round" "$mode"
    done
done

# The table: per round, then medians and the with/without ratio.
jq -rs '
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def rate($set): map(select(.set == $set) | .deliveriesPerSecond) | median;
  def r1: . * 10 | round / 10;
  rate("without") as $without
  | rate("with") as $with
  | (["round", "other channels", "tour deliveries/s", "delivered", "p99 ms",
      "gateway µs/delivery", "notifications (exact)", "to tour clients",
      "stats msgs (in burst)", "stats max deliveries/s"] | @tsv),
    (.[] | [.round, .set, (.deliveriesPerSecond | round), "\(.delivered)/\(.expected)",
            (.p99ms | r1), (.gatewayCpuUsPerDelivery | r1),
            (if .channels then "\(.channels.notificationsDelivered) (\(.channels.exact))" else "-" end),
            .notificationsToTourClients,
            (if .channels.stats then "\(.channels.stats.messages) (\(.channels.stats.duringBurst))" else "-" end),
            (if .channels.stats then (.channels.stats.maxDeliveriesPerSecond | round) else "-" end)]
           | @tsv),
    "median without: \($without | round) deliveries/s",
    "median with:    \($with | round) deliveries/s",
    "with / without: \($with / $without * 1000 | round / 1000)"
' "$OUT"
