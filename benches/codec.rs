//! Codec throughput: decode + validate of client frames, encode of server
//! messages. Run with `cargo bench --bench codec`; numbers in BENCHMARKS.md.
//!
//! `baseline/*` rows are what any JSON gateway pays anyway (parsing the same
//! text into a `serde_json::Value`), so the codec rows can be quoted as a
//! ratio of that.
//!
//! `CODEC_BENCH_CLOCK=cpu` measures this thread's CPU time instead of wall
//! time: on a small machine shared with other builds, wall time also counts
//! the time the benchmark waited for a core, which says nothing about the codec.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use prost::Message as _;
use tourcast::protocol::codec::{Codec, Encoded, Encoding, encode_json, encode_proto};
use tourcast::protocol::{ClientMessage, ServerMessage, v1};

const SUBSCRIBE: &str = r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1736330000","seq":41},"requestId":"sub-1"}"#;
const SUBSCRIBE_SHORT: &str = r#"{"type":"subscribe","tourId":"tour_paris"}"#;
const PING: &str = r#"{"type":"ping"}"#;

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

fn decode<M: Measurement>(c: &mut Criterion<M>) {
    let codec = Codec::new().expect("the generated schema compiles");
    let subscribe_proto = v1::ClientMessage {
        kind: Some(
            serde_json::from_str::<ClientMessage>(SUBSCRIBE).expect("fixture is a valid message"),
        ),
    }
    .encode_to_vec();
    // Every row must decode successfully, or it would time the error path.
    assert!(codec.decode(Encoding::Json, SUBSCRIBE.as_bytes()).is_ok());
    assert!(codec.decode(Encoding::Proto, &subscribe_proto).is_ok());

    let mut group = c.benchmark_group("decode");
    group.bench_function("baseline/serde_json_value/subscribe", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(SUBSCRIBE)))
    });
    group.bench_function("baseline/serde_typed/subscribe", |b| {
        b.iter(|| serde_json::from_str::<ClientMessage>(black_box(SUBSCRIBE)))
    });
    group.bench_function("json/subscribe", |b| {
        b.iter(|| codec.decode(Encoding::Json, black_box(SUBSCRIBE.as_bytes())))
    });
    group.bench_function("json/subscribe_short", |b| {
        b.iter(|| codec.decode(Encoding::Json, black_box(SUBSCRIBE_SHORT.as_bytes())))
    });
    group.bench_function("json/ping", |b| {
        b.iter(|| codec.decode(Encoding::Json, black_box(PING.as_bytes())))
    });
    group.bench_function("proto/subscribe", |b| {
        b.iter(|| codec.decode(Encoding::Proto, black_box(&subscribe_proto)))
    });
    group.bench_function("json/invalid_tour_id", |b| {
        b.iter(|| {
            codec.decode(
                Encoding::Json,
                black_box(br#"{"type":"subscribe","tourId":"tour paris"}"#),
            )
        })
    });
    group.finish();
}

fn encode<M: Measurement>(c: &mut Criterion<M>) {
    let message = updated();
    let mut group = c.benchmark_group("encode");
    group.bench_function("updated/json", |b| {
        b.iter(|| encode_json(black_box(&message)))
    });
    group.bench_function("updated/proto", |b| {
        b.iter(|| encode_proto(black_box(&message)))
    });
    group.bench_function("updated/both_encoded_new", |b| {
        b.iter(|| Encoded::new(black_box(&message)))
    });
    // What each recipient costs once encoded: two reference-count increments.
    let encoded = Encoded::new(&message);
    group.bench_function("updated/share_encoded_clone", |b| {
        b.iter(|| black_box(&encoded).clone())
    });
    group.finish();
}

/// CPU time consumed by the calling thread (criterion runs routines on it).
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant
    // that Linux always supports, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are durations in nanoseconds, exactly as for wall time.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    decode(&mut c);
    encode(&mut c);
    c.final_summary();
}

fn main() {
    match std::env::var("CODEC_BENCH_CLOCK").as_deref() {
        Ok("cpu") => run(Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args()),
        _ => run(Criterion::default().configure_from_args()),
    }
}
