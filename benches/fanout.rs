//! Fan-out cost per recipient, in process: `Hub::fan_out` of an encoded event
//! to N subscribers, and `Engine::apply` of a source event (state update,
//! encode once per encoding, history, then the same fan-out). Each recipient
//! is a real outbound queue; no sockets. Run with `cargo bench --bench fanout`;
//! numbers in BENCHMARKS.md.
//!
//! Throughput is reported per recipient (`elem/s`), so time ÷ N is the cost
//! of one delivery. Queues are drained between iterations, outside the timing,
//! so no client is ever kicked as too slow. No task waits on the queues, so
//! waking connection tasks is not counted here (the end-to-end figures of
//! `loadgen latency` include it).
//!
//! `fanout/baseline_mpsc/*` is the floor any design pays: a `try_send` of a
//! shared frame into N bare `tokio::sync::mpsc` channels.
//!
//! `FANOUT_BENCH_CLOCK=cpu` times this thread's CPU time instead of wall time,
//! which is steadier on a machine shared with other builds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput};
use tourcast::engine::{ApplyOutcome, Engine, EngineConfig};
use tourcast::event::{AvailabilityChange, AvailabilityKind};
use tourcast::hub::{ClientHandle, Hub, Subscriptions, Target, outbox};
use tourcast::protocol::codec::{Encoded, Encoding};
use tourcast::protocol::{ServerMessage, v1};

const RECIPIENTS: [usize; 2] = [1_000, 10_000];
/// The gateway's default `--outbound-queue`.
const QUEUE: usize = 256;

/// `n` clients, a quarter of them on protobuf, with their queues.
fn clients(n: usize) -> (Vec<ClientHandle>, Vec<outbox::Receiver>) {
    (0..n)
        .map(|i| {
            let (tx, rx) = outbox::channel(QUEUE);
            let encoding = if i % 4 == 3 {
                Encoding::Proto
            } else {
                Encoding::Json
            };
            let client = ClientHandle::new(i as u64 + 1, encoding, tx);
            (client, rx)
        })
        .unzip()
}

fn drain(receivers: &mut [outbox::Receiver]) {
    for rx in receivers {
        while rx.try_recv().is_ok() {}
    }
}

fn updated() -> ServerMessage {
    ServerMessage::AvailabilityUpdated(v1::AvailabilityUpdated {
        data: Some(v1::TourAvailability {
            tour_id: "tour_paris".into(),
            tour_name: Some("Paris City Tour".into()),
            available_seats: 8,
            max_group_size: Some(20),
        }),
        seq: 42,
        timestamp: "2025-01-08T10:30:00.000Z".into(),
        event_id: Some("evt_1736330000000".into()),
    })
}

/// Wall time, or this thread's CPU time with `FANOUT_BENCH_CLOCK=cpu`.
enum Clock {
    Wall(Instant),
    Cpu(Duration),
}

impl Clock {
    fn now() -> Self {
        if std::env::var("FANOUT_BENCH_CLOCK").as_deref() == Ok("cpu") {
            Clock::Cpu(thread_cpu_time())
        } else {
            Clock::Wall(Instant::now())
        }
    }

    fn elapsed(&self) -> Duration {
        match self {
            Clock::Wall(started) => started.elapsed(),
            Clock::Cpu(started) => thread_cpu_time().saturating_sub(*started),
        }
    }
}

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn baseline_mpsc(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/baseline_mpsc");
    group.measurement_time(Duration::from_secs(4));
    // The queue of a bare tokio channel of axum messages, as before the
    // transport-free frame.
    let json = Encoded::new(&updated()).json.payload().clone();
    let frame = Message::Text(json.try_into().expect("JSON is UTF-8"));
    for n in RECIPIENTS {
        let (senders, mut receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| tokio::sync::mpsc::channel::<Message>(QUEUE))
            .unzip();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let started = Clock::now();
                    for tx in &senders {
                        let _ = tx.try_send(black_box(frame.clone()));
                    }
                    spent += started.elapsed();
                    for rx in &mut receivers {
                        while rx.try_recv().is_ok() {}
                    }
                }
                spent
            })
        });
    }
    group.finish();
}

fn hub_fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/hub_fan_out");
    group.measurement_time(Duration::from_secs(4));
    let encoded = Encoded::new(&updated());
    for n in RECIPIENTS {
        let hub = Hub::new();
        let (clients, mut receivers) = clients(n);
        for client in &clients {
            hub.add(&Target::AllTours, client);
        }
        group.throughput(Throughput::Elements(n as u64));
        let paris = Target::Tour("tour_paris".into());
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let started = Clock::now();
                    let queued = hub.fan_out(&paris, black_box(&encoded));
                    spent += started.elapsed();
                    assert_eq!(queued, n);
                    drain(&mut receivers);
                }
                spent
            })
        });
    }
    group.finish();
}

fn engine_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/engine_apply");
    group.measurement_time(Duration::from_secs(4));
    for n in RECIPIENTS {
        let engine = Engine::new(EngineConfig {
            epoch: "bench".into(),
            history_len: 128,
            dedupe_window: 10_000,
            max_replay: QUEUE / 2,
            max_channels_per_connection: 256,
            max_rooms_per_connection: 32,
            room_history: 50,
            max_rooms: 10_000,
            max_read_back: 100_000,
            notification_history: 10_000,
            snapshot_frame_bytes: tourcast::protocol::snapshot::DEFAULT_MAX_FRAME_BYTES,
            max_tours: usize::MAX,
        });
        let (clients, mut receivers) = clients(n);
        let subs = Subscriptions::default();
        for client in &clients {
            engine.add_connection(client, &subs);
        }
        let mut next_id = 0u64;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    next_id += 1;
                    let event = AvailabilityChange {
                        kind: AvailabilityKind::Updated,
                        event_id: Some(format!("evt_{next_id}")),
                        tour_id: "tour_paris".into(),
                        tour_name: Some("Paris City Tour".into()),
                        available_seats: (next_id % 20) as u32,
                        max_group_size: Some(20),
                        threshold: None,
                        timestamp: Utc::now(),
                        version: None,
                        position: None,
                    };
                    let started = Clock::now();
                    let outcome = engine.apply(black_box(event));
                    spent += started.elapsed();
                    assert!(matches!(outcome, ApplyOutcome::Applied { recipients, .. } if recipients == n));
                    drain(&mut receivers);
                }
                spent
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    baseline_mpsc(&mut criterion);
    hub_fan_out(&mut criterion);
    engine_apply(&mut criterion);
    criterion.final_summary();
}
