//! A connection's outbound queue: bounded, one consumer, and sized by what
//! it holds. It also carries the server's request to close the connection
//! (with its [`CloseReason`]), so that one lock and one waker serve both
//! and a woken connection task checks a single place.
//!
//! `tokio::sync::mpsc::channel` allocates its first block of 32 slots
//! (32 frames) plus a cache-padded channel header up front:
//! about 2.1 KiB per connection, most of the memory of an idle one. This
//! queue starts empty, grows with bursts (up to its capacity), and shrinks
//! back once drained, so an idle connection pays for a few slots only.
//!
//! The API mirrors the subset of `tokio::sync::mpsc` the hub and the
//! connection use, with tokio's error types.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use super::CloseReason;
use crate::protocol::frame::Frame;

/// Capacity kept when a drained queue shrinks.
const IDLE_SLOTS: usize = 4;

struct Shared {
    queue: Mutex<Queue>,
    /// The consumer, waiting for a frame.
    waker: AtomicWaker,
}

struct Queue {
    frames: VecDeque<Frame>,
    capacity: usize,
    /// Frames ever pushed and popped, and the push numbers of every unit
    /// queued whole (a recovery replay, the parts of a large snapshot) not
    /// yet sent: those sit on top of the live capacity, so that a unit
    /// larger than the queue is not a slow consumer, while live frames
    /// still count only against `capacity`. A list, not one range: two
    /// units queued back to back must both stay exempt.
    pushed: u64,
    popped: u64,
    exempt: VecDeque<std::ops::Range<u64>>,
    /// The receiver is gone.
    closed: bool,
    /// Why the connection must close, once asked; the first reason wins.
    close: Option<CloseReason>,
}

impl Queue {
    fn pop(&mut self) -> Option<Frame> {
        let frame = self.frames.pop_front()?;
        self.popped += 1;
        if self.frames.is_empty() && self.frames.capacity() > IDLE_SLOTS {
            self.frames.shrink_to(IDLE_SLOTS);
        }
        Some(frame)
    }
}

impl Queue {
    /// Exempt frames still queued (forgetting the units already sent).
    fn exempt_queued(&mut self) -> u64 {
        let popped = self.popped;
        while self.exempt.front().is_some_and(|unit| unit.end <= popped) {
            self.exempt.pop_front();
        }
        self.exempt
            .iter()
            .map(|unit| unit.end - unit.start.max(popped))
            .sum()
    }
}

/// What the connection task is woken for.
#[derive(Debug)]
pub enum Outbound {
    /// The next frame to send.
    Frame(Frame),
    /// The connection must close, for this reason (ahead of queued frames).
    Close(CloseReason),
    /// Every sender is gone and the queue is empty.
    Closed,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
}

/// The receiving side (one per queue).
pub struct Receiver {
    shared: Arc<Shared>,
}

/// A queue holding at most `capacity` frames.
pub fn channel(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
            pushed: 0,
            popped: 0,
            exempt: VecDeque::new(),
            closed: false,
            close: None,
        }),
        waker: AtomicWaker::new(),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared },
    )
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl Sender {
    /// Queues `frame` without waiting.
    pub fn try_send(&self, frame: Frame) -> Result<(), TrySendError<Frame>> {
        {
            let mut queue = self.shared.queue.lock();
            if queue.closed {
                return Err(TrySendError::Closed(frame));
            }
            let exempt = queue.exempt_queued();
            if queue.frames.len() as u64 - exempt.min(queue.frames.len() as u64)
                >= queue.capacity as u64
            {
                return Err(TrySendError::Full(frame));
            }
            queue.frames.push_back(frame);
            queue.pushed += 1;
        }
        self.shared.waker.wake();
        Ok(())
    }

    /// Queues a unit whole (a recovery replay, the parts of a large
    /// snapshot), on top of the live capacity (its size is bounded by the
    /// caller: the engine's `max_replay`, the snapshot's parts). Fails only
    /// when the receiver is gone (returns false).
    pub fn send_whole(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        {
            let mut queue = self.shared.queue.lock();
            if queue.closed {
                return false;
            }
            let start = queue.pushed;
            for frame in frames {
                queue.frames.push_back(frame);
                queue.pushed += 1;
            }
            if queue.pushed > start {
                let range = start..queue.pushed;
                queue.exempt.push_back(range);
            }
        }
        self.shared.waker.wake();
        true
    }

    /// Asks the connection to close; returns true if this was the first ask.
    pub fn close(&self, reason: CloseReason) -> bool {
        let first = {
            let mut queue = self.shared.queue.lock();
            queue.close.is_none() && {
                queue.close = Some(reason);
                true
            }
        };
        self.shared.waker.wake();
        first
    }

    /// Why the connection was asked to close, if it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.queue.lock().close
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // The last sender: wake the receiver so that `recv` sees the end.
        if Arc::strong_count(&self.shared) == 2 {
            self.shared.waker.wake();
        }
    }
}

impl Receiver {
    /// A request to close if there is one, else the next frame; waits for either.
    pub async fn recv(&mut self) -> Outbound {
        poll_fn(|cx| {
            if let Some(next) = self.poll_once() {
                return Poll::Ready(next);
            }
            self.shared.waker.register(cx.waker());
            self.poll_once().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// What `recv` would return now, under one lock; `None` to wait.
    fn poll_once(&mut self) -> Option<Outbound> {
        let mut queue = self.shared.queue.lock();
        if let Some(reason) = queue.close {
            return Some(Outbound::Close(reason));
        }
        match queue.pop() {
            Some(frame) => Some(Outbound::Frame(frame)),
            None if Arc::strong_count(&self.shared) == 1 => Some(Outbound::Closed),
            None => None,
        }
    }

    /// Resolves once the connection has been asked to close (frames stay
    /// queued).
    pub async fn close_requested(&self) -> CloseReason {
        poll_fn(|cx| {
            if let Some(reason) = self.shared.queue.lock().close {
                return Poll::Ready(reason);
            }
            self.shared.waker.register(cx.waker());
            match self.shared.queue.lock().close {
                Some(reason) => Poll::Ready(reason),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Result<Frame, TryRecvError> {
        match self.shared.queue.lock().pop() {
            Some(frame) => Ok(frame),
            None if Arc::strong_count(&self.shared) == 1 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock();
        queue.closed = true;
        queue.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::ServerMessage;
    use crate::protocol::codec::Encoding;
    use crate::protocol::v1::Pong;

    /// A frame told apart by its request id.
    fn text(s: &'static str) -> Frame {
        let pong = Pong {
            request_id: Some(s.into()),
            timestamp: String::new(),
        };
        Frame::encode(&ServerMessage::Pong(pong), Encoding::Json)
    }

    fn named(frame: &Frame) -> String {
        let json: serde_json::Value = serde_json::from_slice(frame).unwrap();
        json["requestId"].as_str().unwrap_or_default().to_string()
    }

    #[test]
    fn bounded_in_order_and_closed_when_the_receiver_goes() {
        let (tx, rx) = channel(2);
        assert!(tx.try_send(text("a")).is_ok());
        assert!(tx.try_send(text("b")).is_ok());
        assert!(matches!(tx.try_send(text("c")), Err(TrySendError::Full(_))));
        assert!(matches!(rx.try_recv(), Ok(f) if named(&f) == "a"));
        assert!(matches!(rx.try_recv(), Ok(f) if named(&f) == "b"));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        drop(rx);
        assert!(matches!(
            tx.try_send(text("d")),
            Err(TrySendError::Closed(_))
        ));
    }

    #[test]
    fn two_units_queued_back_to_back_both_stay_on_top_of_the_live_capacity() {
        let (tx, _rx) = channel(2);
        assert!(tx.send_whole((0..10).map(|_| text("part"))));
        assert!(tx.send_whole((0..3).map(|_| text("replayed"))));
        assert!(tx.send_whole(std::iter::empty()));
        assert!(tx.try_send(text("live")).is_ok());
        assert!(tx.try_send(text("live")).is_ok());
        assert!(tx.try_send(text("live")).is_err());
    }

    #[test]
    fn a_replay_sits_on_top_of_the_live_capacity() {
        let (tx, rx) = channel(2);
        tx.try_send(text("live")).unwrap();
        assert!(tx.send_whole((0..10).map(|_| text("replayed"))));
        // Still room for one live frame: the replay does not count.
        assert!(tx.try_send(text("live 2")).is_ok());
        assert!(matches!(
            tx.try_send(text("live 3")),
            Err(TrySendError::Full(_))
        ));
        while rx.try_recv().is_ok() {}
        assert!(tx.try_send(text("after")).is_ok());
        assert!(tx.try_send(text("after 2")).is_ok());
        assert!(matches!(
            tx.try_send(text("after 3")),
            Err(TrySendError::Full(_))
        ));
    }

    #[test]
    fn shrinks_once_drained() {
        let (tx, rx) = channel(256);
        for _ in 0..200 {
            tx.try_send(text("x")).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert!(rx.shared.queue.lock().frames.capacity() <= IDLE_SLOTS);
    }

    #[tokio::test]
    async fn recv_waits_for_a_frame_and_ends_with_the_senders() {
        let (tx, mut rx) = channel(4);
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.try_send(text("late")).unwrap();
        });
        assert!(matches!(rx.recv().await, Outbound::Frame(f) if named(&f) == "late"));
        sender.await.unwrap();
        assert!(matches!(rx.recv().await, Outbound::Closed));
    }

    #[tokio::test]
    async fn a_close_wakes_the_receiver_ahead_of_queued_frames_and_the_first_reason_wins() {
        let (tx, mut rx) = channel(4);
        tx.try_send(text("queued")).unwrap();
        let closer = tokio::spawn({
            let tx = tx.clone();
            async move {
                tokio::task::yield_now().await;
                assert!(tx.close(CloseReason::SlowConsumer));
                assert!(!tx.close(CloseReason::ServerShutdown));
            }
        });
        assert_eq!(rx.close_requested().await, CloseReason::SlowConsumer);
        closer.await.unwrap();
        assert!(matches!(
            rx.recv().await,
            Outbound::Close(CloseReason::SlowConsumer)
        ));
        assert_eq!(tx.close_reason(), Some(CloseReason::SlowConsumer));
    }
}
