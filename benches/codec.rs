//! Codec throughput: decode + validate of client frames, encode of server
//! messages. Run with `cargo bench --bench codec`; numbers in BENCHMARKS.md.
//!
//! `baseline/*` rows are what any JSON gateway pays anyway (parsing the same
//! text into a `serde_json::Value`), so the codec rows can be quoted as a
//! ratio of that.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
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

fn decode(c: &mut Criterion) {
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

fn encode(c: &mut Criterion) {
    let message = updated();
    let mut group = c.benchmark_group("encode");
    group.bench_function("updated/json", |b| {
        b.iter(|| encode_json(black_box(&message)))
    });
    group.bench_function("updated/proto", |b| {
        b.iter(|| encode_proto(black_box(&message)))
    });
    group.bench_function("updated/both (Encoded::new)", |b| {
        b.iter(|| Encoded::new(black_box(&message)))
    });
    // What each recipient costs once encoded: two reference-count increments.
    let encoded = Encoded::new(&message);
    group.bench_function("updated/share (Encoded::clone)", |b| {
        b.iter(|| black_box(&encoded).clone())
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
