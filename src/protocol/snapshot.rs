//! Splitting a large `snapshot` into frames of bounded size.
//!
//! A `"*"` snapshot of a large catalog is megabytes in one frame: more than
//! a browser or a mobile client wants to buffer, and more than a proxy's
//! frame limit. A snapshot over `max_bytes` (in the connection's encoding)
//! is sent as consecutive `snapshot` messages numbered `part` 1..=`parts`,
//! each with a share of the tours and the same `epoch`, `recovered`,
//! `requestId` and `timestamp`. The client applies them together, at the
//! last part. They are queued as one unit, so nothing comes between them
//! and every later event still follows the whole snapshot.

use super::ServerMessage;
use super::codec::{Encoding, encode_json, encode_proto};
use super::v1::Snapshot;

/// Largest snapshot frame sent by default (`SNAPSHOT_FRAME_BYTES`).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// `snapshot` as messages whose frames, in `encoding`, are at most
/// `max_bytes` each (a single tour larger than that still gets a frame of
/// its own). A snapshot that fits is returned whole, without `part`.
pub fn split(snapshot: Snapshot, encoding: Encoding, max_bytes: usize) -> Vec<ServerMessage> {
    // Measured once, from each tour's own size (this runs under the
    // engine's lock: no whole-snapshot encoding just to measure it).
    let costs: Vec<usize> = snapshot
        .tours
        .iter()
        .map(|tour| tour_len(tour, encoding) + 1)
        .collect();
    let envelope = {
        let empty = Snapshot {
            tours: Vec::new(),
            part: Some(u32::MAX),
            parts: Some(u32::MAX),
            ..snapshot.clone_without_tours()
        };
        frame_len(&empty, encoding)
    };
    if envelope + costs.iter().sum::<usize>() <= max_bytes {
        return vec![ServerMessage::Snapshot(snapshot)];
    }
    let Snapshot {
        tours,
        epoch,
        recovered,
        request_id,
        timestamp,
        ..
    } = snapshot;
    let part_of = |tours| Snapshot {
        tours,
        epoch: epoch.clone(),
        recovered,
        request_id: request_id.clone(),
        timestamp: timestamp.clone(),
        part: Some(u32::MAX),
        parts: Some(u32::MAX),
    };
    // Greedy by measured size: a tour's share of the frame is its own
    // encoding plus a separator, so the parts can be cut in one pass.
    let budget = max_bytes.saturating_sub(envelope).max(1);
    let mut chunks: Vec<Vec<_>> = Vec::new();
    let mut current = Vec::new();
    let mut used = 0usize;
    for (tour, cost) in tours.into_iter().zip(costs) {
        if !current.is_empty() && used + cost > budget {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(tour);
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    let parts = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, tours)| {
            let mut snapshot = part_of(tours);
            snapshot.part = Some(u32::try_from(i + 1).unwrap_or(u32::MAX));
            snapshot.parts = Some(parts);
            ServerMessage::Snapshot(snapshot)
        })
        .collect()
}

fn frame_len(snapshot: &Snapshot, encoding: Encoding) -> usize {
    let message = ServerMessage::Snapshot(snapshot.clone());
    match encoding {
        Encoding::Proto => encode_proto(&message).len(),
        _ => encode_json(&message).len(),
    }
}

fn tour_len(tour: &super::v1::TourState, encoding: Encoding) -> usize {
    match encoding {
        // The field tag and length prefix of a repeated message: ≤ 4 bytes.
        Encoding::Proto => prost::Message::encoded_len(tour) + 4,
        _ => {
            let mut counter = ByteCounter(0);
            // Writing to a counter cannot fail; a tour that could not be
            // serialised would not be sent either.
            let _ = serde_json::to_writer(&mut counter, tour);
            counter.0
        }
    }
}

/// Counts the bytes written to it: a JSON length without the JSON.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Snapshot {
    /// This snapshot's fields but the tours (a cheap template).
    fn clone_without_tours(&self) -> Snapshot {
        Snapshot {
            tours: Vec::new(),
            epoch: self.epoch.clone(),
            recovered: self.recovered,
            request_id: self.request_id.clone(),
            timestamp: self.timestamp.clone(),
            part: self.part,
            parts: self.parts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v1::TourState;

    fn snapshot(tours: usize) -> Snapshot {
        Snapshot {
            tours: (0..tours)
                .map(|i| TourState {
                    tour_id: format!("tour_{i:05}"),
                    tour_name: Some(format!("Tour number {i} with a longish name")),
                    available_seats: (i % 30) as u32,
                    max_group_size: Some(30),
                    seq: i as u64 + 1,
                    updated_at: "2026-11-23T10:30:00.000Z".into(),
                })
                .collect(),
            epoch: "e".into(),
            recovered: Some(false),
            request_id: Some("r1".into()),
            timestamp: "2026-11-23T10:30:00.000Z".into(),
            part: None,
            parts: None,
        }
    }

    fn tours_of(messages: &[ServerMessage]) -> Vec<TourState> {
        messages
            .iter()
            .flat_map(|m| match m {
                ServerMessage::Snapshot(s) => s.tours.clone(),
                other => panic!("not a snapshot: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_small_snapshot_stays_one_frame_without_parts() {
        let parts = split(snapshot(3), Encoding::Json, DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(parts.len(), 1);
        assert!(matches!(&parts[0], ServerMessage::Snapshot(s) if s.part.is_none()));
    }

    #[test]
    fn a_large_one_is_cut_into_bounded_numbered_parts_in_both_encodings() {
        let whole = snapshot(10_000);
        for encoding in [Encoding::Json, Encoding::Proto] {
            let parts = split(whole.clone(), encoding, DEFAULT_MAX_FRAME_BYTES);
            assert!(parts.len() > 1);
            let total = parts.len() as u32;
            for (i, message) in parts.iter().enumerate() {
                let ServerMessage::Snapshot(part) = message else {
                    unreachable!()
                };
                assert!(frame_len(part, encoding) <= DEFAULT_MAX_FRAME_BYTES);
                assert_eq!((part.part, part.parts), (Some(i as u32 + 1), Some(total)));
                assert_eq!(part.request_id.as_deref(), Some("r1"));
                assert_eq!(part.recovered, Some(false));
            }
            assert_eq!(tours_of(&parts), whole.tours, "{encoding:?}");
        }
    }
}
