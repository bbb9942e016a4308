//! Caps on concurrent connections: in total, and per client IP address.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds its maximum number of connections.
    Full,
    /// This IP address holds its maximum number of connections.
    TooManyFromIp,
}

/// Counts open connections against the caps.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicUsize,
    max: usize,
    per_ip: DashMap<IpAddr, usize>,
    max_per_ip: usize,
}

/// One admitted connection; frees its slots when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    limit: Arc<ConnectionLimit>,
    ip: IpAddr,
}

impl ConnectionLimit {
    /// At most `max` connections, and `max_per_ip` from one address.
    pub fn new(max: usize, max_per_ip: usize) -> Self {
        ConnectionLimit {
            open: AtomicUsize::new(0),
            max,
            per_ip: DashMap::new(),
            max_per_ip,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a slot for a connection from `ip`.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .map_err(|_| Refusal::Full)?;
        // The entry's shard lock makes check-and-increment atomic per IP.
        let admitted = {
            let mut count = self.per_ip.entry(ip).or_insert(0);
            if *count < self.max_per_ip {
                *count += 1;
                true
            } else {
                false
            }
        };
        if !admitted {
            self.per_ip.remove_if(&ip, |_, count| *count == 0);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyFromIp);
        }
        Ok(ConnectionSlot {
            limit: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limit.open.fetch_sub(1, Ordering::AcqRel);
        // Remove the entry at zero so the map does not grow with every IP ever seen.
        self.limit.per_ip.remove_if_mut(&self.ip, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_ip_and_in_total_and_frees_on_drop() {
        let limit = Arc::new(ConnectionLimit::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.try_acquire(a).unwrap();
        let _second = limit.try_acquire(a).unwrap();
        assert_eq!(limit.try_acquire(a).unwrap_err(), Refusal::TooManyFromIp);
        let _third = limit.try_acquire(b).unwrap();
        assert_eq!(limit.try_acquire(b).unwrap_err(), Refusal::Full);
        drop(first);
        let _again = limit.try_acquire(a).unwrap();
        assert_eq!(limit.open(), 3);
    }
}
