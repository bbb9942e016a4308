#!/usr/bin/env bash
# Issue 21's benchmark, in one run: the transports side by side.
#
#   burst    a fresh release gateway on its own exchange and stream;
#            CLIENTS clients of one kind subscribed to `*`, then BURST
#            tour events published as fast as possible (each event padded to
#            ~NAME_BYTES of tourName, so that it passes
#            COMPRESSION_MIN_BYTES). Kinds: `plain` (a raw WebSocket client,
#            no extension), `deflate` (the same client offering
#            permessage-deflate), `sse` (a raw event-stream client), and `ws`
#            (tokio-tungstenite). Reports deliveries/s, the gateway's CPU per
#            delivery, and the bytes each client read per delivery.
#   idle     `loadgen idle`: IDLE connections to a `--demo` gateway, plain and
#            offering deflate, and to a bare tokio-tungstenite server (1 KiB
#            read buffer): resident memory per connection.
#   snapshot a gateway holding TOURS tours (one event each, published first):
#            the `*` snapshot's bytes on the wire, plain and deflated
#            (`loadgen wire`).
#   <kind>@base   a burst kind (or idle) against BASE_GATEWAY instead: a build
#            to compare with, in the same interleaved rounds (`plain@base`,
#            `ws@base`; the idle set adds it when BASE_GATEWAY is set).
# The burst kinds run in ROUNDS interleaved rounds whose order rotates;
# every summary line is appended to OUT (JSON lines).
#
# Usage (from the workspace root):
#   cargo build --release -p tourcast --bin tourcast && cargo build --release -p loadgen
#   ROUNDS=3 tools/loadgen/transports-bench.sh
# Environment: ROUNDS (3), KINDS ("plain deflate sse ws"), CLIENTS (1000),
# BURST (1000), NAME_BYTES (240: the name may hold 256), IDLE (10000), TOURS (10000), PARTS
# ("burst idle snapshot"), PORT (19400), OUT (target/transports-bench/runs.jsonl).
# Loopback only; a burst run takes ~15 s, the idle set ~90 s.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
read -r -a KINDS <<<"${KINDS:-plain deflate sse ws}"
read -r -a PARTS <<<"${PARTS:-burst idle snapshot}"
CLIENTS=${CLIENTS:-1000}
BURST=${BURST:-1000}
NAME_BYTES=${NAME_BYTES:-240}
IDLE=${IDLE:-10000}
TOURS=${TOURS:-10000}
PORT=${PORT:-19400}
DIR=target/transports-bench
OUT=${OUT:-$DIR/runs.jsonl}
GATEWAY=${GATEWAY:-./target/release/tourcast}
LOADGEN=./target/release/loadgen
AMQP=${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672}

mkdir -p "$DIR"
: >"$OUT"
ulimit -n 20000

wait_up() {
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$1/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server on $1 did not come up" >&2
  return 1
}

gateway() { # name port [flags…]: a RabbitMQ gateway on its own exchange and stream
  local name=$1 port=$2 binary=$GATEWAY
  shift 2
  [[ $name == *_base_* ]] && binary=$BASE_GATEWAY
  RUST_LOG=warn "$binary" --port "$port" --bind 127.0.0.1 \
    --rabbitmq-url "$AMQP" --rabbitmq-exchange "tb_$name" --rabbitmq-stream "tb_$name.s" \
    --rabbitmq-replay-from next --max-connections-per-ip 20000 \
    "$@" >"$DIR/$name.log" 2>&1 &
  echo $!
}

drop_stream() {
  command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl -q delete_queue "tb_$1.s" >/dev/null 2>&1 || true
}

burst() { # kind[@base] round
  local kind=$1 round=$2 name="burst_${1/@/_}_$2_$$" gw
  gw=$(gateway "$name" "$PORT")
  wait_up "$PORT"
  local url="ws://127.0.0.1:$PORT/ws"
  "$LOADGEN" latency --url "$url" --exchange "tb_$name" --client "${kind%@base}" \
    --clients "$CLIENTS" --burst "$BURST" --tour-name-bytes "$NAME_BYTES" --drain 15s \
    --no-probe --pid "$gw" --json >"$DIR/$name.txt"
  tail -1 "$DIR/$name.txt" | sed "s/^{/{\"set\":\"burst\",\"kind\":\"$kind\",\"round\":$round,/" >>"$OUT"
  grep -E 'deliveries|throughput|CPU|wire' "$DIR/$name.txt" | sed "s/^/[$kind r$round] /"
  kill "$gw"; wait "$gw" 2>/dev/null || true
  drop_stream "$name"
}

idle() {
  local gw binary
  for offer in "" "--offer-deflate" ${BASE_GATEWAY:+base}; do
    binary=$GATEWAY
    if [ "$offer" = base ]; then binary=$BASE_GATEWAY; offer=""; echo "[idle: BASE_GATEWAY]"; fi
    RUST_LOG=warn "$binary" --demo --port "$PORT" --bind 127.0.0.1 --max-connections-per-ip 20000 \
      >"$DIR/idle.log" 2>&1 & gw=$!
    wait_up "$PORT"
    echo "[idle gateway ${offer:-plain}]"
    "$LOADGEN" idle --url "ws://127.0.0.1:$PORT/ws" --connections "$IDLE" --pid "$gw" \
      --settle 5s --samples 5 $offer --json | tee -a "$DIR/idle.txt" | grep -E 'per connection|^\{' | tail -2
    kill "$gw"; wait "$gw" 2>/dev/null || true
  done
  "$LOADGEN" bare --mode ws --read-buffer 1024 --listen "127.0.0.1:$((PORT + 1))" --lifetime 150s \
    >"$DIR/bare.log" 2>&1 & gw=$!
  sleep 1
  echo "[idle bare tokio-tungstenite]"
  "$LOADGEN" idle --url "ws://127.0.0.1:$((PORT + 1))/ws" --connections "$IDLE" --pid "$gw" \
    --settle 5s --samples 5 --json | tee -a "$DIR/idle.txt" | grep -E 'per connection|^\{' | tail -2
  kill "$gw"; wait "$gw" 2>/dev/null || true
}

snapshot() {
  local name="snapshot_$$" gw
  gw=$(gateway "$name" "$PORT")
  wait_up "$PORT"
  # One event per tour, through the broker, then the snapshot's bytes.
  "$LOADGEN" latency --url "ws://127.0.0.1:$PORT/ws" --exchange "tb_$name" --clients 1 \
    --burst "$TOURS" --tours "$TOURS" --drain 20s --no-probe >/dev/null
  echo "[snapshot of $TOURS tours]"
  "$LOADGEN" wire --url "ws://127.0.0.1:$PORT/ws" | tee "$DIR/snapshot.txt"
  kill "$gw"; wait "$gw" 2>/dev/null || true
  drop_stream "$name"
}

for part in "${PARTS[@]}"; do
  case $part in
    burst)
      for round in $(seq 1 "$ROUNDS"); do
        n=${#KINDS[@]}
        for i in $(seq 0 $((n - 1))); do
          burst "${KINDS[$(((i + round - 1) % n))]}" "$round"
        done
      done
      ;;
    idle) idle ;;
    snapshot) snapshot ;;
  esac
done
echo "runs: $OUT"
