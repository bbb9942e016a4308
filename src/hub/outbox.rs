//! A connection's outbound queue: bounded, one consumer, and sized by what
//! it holds.
//!
//! `tokio::sync::mpsc::channel` allocates its first block of 32 slots
//! (32 × 48-byte `Message`s) plus a cache-padded channel header up front:
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

use axum::extract::ws::Message;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

/// Capacity kept when a drained queue shrinks.
const IDLE_SLOTS: usize = 4;

struct Shared {
    queue: Mutex<Queue>,
    /// The consumer, waiting for a frame.
    waker: AtomicWaker,
}

struct Queue {
    frames: VecDeque<Message>,
    capacity: usize,
    /// The receiver is gone.
    closed: bool,
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
            closed: false,
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
    pub fn try_send(&self, frame: Message) -> Result<(), TrySendError<Message>> {
        {
            let mut queue = self.shared.queue.lock();
            if queue.closed {
                return Err(TrySendError::Closed(frame));
            }
            if queue.frames.len() >= queue.capacity {
                return Err(TrySendError::Full(frame));
            }
            queue.frames.push_back(frame);
        }
        self.shared.waker.wake();
        Ok(())
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
    /// The next frame; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Message> {
        poll_fn(|cx| {
            if let Ok(frame) = self.try_recv() {
                return Poll::Ready(Some(frame));
            }
            self.shared.waker.register(cx.waker());
            match self.try_recv() {
                Ok(frame) => Poll::Ready(Some(frame)),
                Err(TryRecvError::Disconnected) => Poll::Ready(None),
                Err(TryRecvError::Empty) => Poll::Pending,
            }
        })
        .await
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Result<Message, TryRecvError> {
        let mut queue = self.shared.queue.lock();
        match queue.frames.pop_front() {
            Some(frame) => {
                if queue.frames.is_empty() && queue.frames.capacity() > IDLE_SLOTS {
                    queue.frames.shrink_to(IDLE_SLOTS);
                }
                Ok(frame)
            }
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

    fn text(s: &'static str) -> Message {
        Message::Text(s.into())
    }

    #[test]
    fn bounded_in_order_and_closed_when_the_receiver_goes() {
        let (tx, mut rx) = channel(2);
        assert!(tx.try_send(text("a")).is_ok());
        assert!(tx.try_send(text("b")).is_ok());
        assert!(matches!(tx.try_send(text("c")), Err(TrySendError::Full(_))));
        assert!(matches!(rx.try_recv(), Ok(Message::Text(t)) if t == "a"));
        assert!(matches!(rx.try_recv(), Ok(Message::Text(t)) if t == "b"));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        drop(rx);
        assert!(matches!(
            tx.try_send(text("d")),
            Err(TrySendError::Closed(_))
        ));
    }

    #[test]
    fn shrinks_once_drained() {
        let (tx, mut rx) = channel(256);
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
        assert!(matches!(rx.recv().await, Some(Message::Text(t)) if t == "late"));
        sender.await.unwrap();
        assert!(rx.recv().await.is_none());
    }
}
