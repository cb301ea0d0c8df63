//! Topics: named, typed channels from one output port to any number of input ports, each
//! subscriber with its own queue and QoS.
//!
//! Owns delivery semantics (fan-out, `keep_last` overwrite with drop counting, `reliable`
//! back-pressure) and per-endpoint metrics. This is the in-process transport; nodes reach it only
//! through the host's `send`/`recv` callbacks, never directly, so another transport (shared
//! memory) can replace it without changing plugin code.

use crate::manifest::Qos;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A `reliable` subscriber's queue is full; nobody received the message. Retry later.
    Full,
}

/// Identity of a topic: its name and message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// `node.port` of the publishing output.
    pub name: String,
    /// Message type name.
    pub type_name: String,
    /// Message type hash.
    pub type_hash: u64,
}

#[derive(Debug, Default)]
struct TopicCounters {
    sent: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Debug)]
struct Queue {
    qos: Qos,
    messages: Mutex<VecDeque<Vec<u8>>>,
    received: AtomicU64,
    dropped: AtomicU64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Vec<u8>>> {
        // A panic while holding this lock cannot leave the deque inconsistent (every operation
        // is a single push or pop), so a poisoned lock is safe to keep using.
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Collects a topic's subscribers while the graph is built, then hands out the publisher.
#[derive(Debug)]
pub struct TopicBuilder {
    info: TopicInfo,
    queues: Vec<Arc<Queue>>,
}

impl TopicBuilder {
    /// A topic with no subscribers yet.
    pub fn new(info: TopicInfo) -> TopicBuilder {
        TopicBuilder {
            info,
            queues: Vec::new(),
        }
    }

    /// Adds a subscriber with its own queue.
    pub fn subscribe(&mut self, qos: Qos) -> Subscriber {
        let queue = Arc::new(Queue {
            qos,
            messages: Mutex::new(VecDeque::with_capacity(qos.depth().min(64))),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        self.queues.push(queue.clone());
        Subscriber {
            topic: self.info.name.clone(),
            queue,
        }
    }

    /// Finishes the topic: its one publisher.
    pub fn publisher(self) -> Publisher {
        Publisher {
            info: self.info,
            queues: self.queues,
            counters: Arc::new(TopicCounters::default()),
        }
    }
}

/// The sending end of a topic.
#[derive(Debug)]
pub struct Publisher {
    info: TopicInfo,
    queues: Vec<Arc<Queue>>,
    counters: Arc<TopicCounters>,
}

impl Publisher {
    /// The topic.
    pub fn info(&self) -> &TopicInfo {
        &self.info
    }

    /// Delivers a copy of `bytes` to every subscriber. With a `reliable` subscriber whose queue
    /// is full, nobody gets it and [`SendError::Full`] is returned.
    pub fn send(&self, bytes: &[u8]) -> Result<(), SendError> {
        // Only this publisher pushes, so room seen here can only grow before the push below.
        for q in &self.queues {
            if let Qos::Reliable(depth) = q.qos {
                if q.lock().len() >= depth {
                    return Err(SendError::Full);
                }
            }
        }
        for q in &self.queues {
            let mut messages = q.lock();
            if let Qos::KeepLast(depth) = q.qos {
                while messages.len() >= depth {
                    messages.pop_front();
                    q.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            messages.push_back(bytes.to_vec());
        }
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Messages accepted so far.
    pub fn messages_sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }

    /// Payload bytes accepted so far.
    pub fn bytes_sent(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }
}

/// The receiving end of one connection.
#[derive(Debug)]
pub struct Subscriber {
    topic: String,
    queue: Arc<Queue>,
}

impl Subscriber {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Moves the oldest unread message into `buf` (replacing its contents). False when empty.
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> bool {
        match self.queue.lock().pop_front() {
            Some(msg) => {
                *buf = msg;
                self.queue.received.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Messages taken so far.
    pub fn messages_received(&self) -> u64 {
        self.queue.received.load(Ordering::Relaxed)
    }

    /// Messages overwritten before they were read (`keep_last`).
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// Messages waiting.
    pub fn pending(&self) -> usize {
        self.queue.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> TopicBuilder {
        TopicBuilder::new(TopicInfo {
            name: "a.out".into(),
            type_name: "u64".into(),
            type_hash: 1,
        })
    }

    fn drain(s: &Subscriber) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while s.recv_into(&mut buf) {
            out.push(buf[0]);
        }
        out
    }

    #[test]
    fn fan_out_in_order() {
        let mut t = topic();
        let a = t.subscribe(Qos::KeepLast(8));
        let b = t.subscribe(Qos::Reliable(8));
        let p = t.publisher();
        for i in 0..5u8 {
            p.send(&[i]).unwrap();
        }
        assert_eq!(drain(&a), vec![0, 1, 2, 3, 4]);
        assert_eq!(drain(&b), vec![0, 1, 2, 3, 4]);
        assert_eq!(p.messages_sent(), 5);
        assert_eq!(a.messages_received(), 5);
    }

    #[test]
    fn keep_last_overwrites_oldest_and_counts() {
        let mut t = topic();
        let s = t.subscribe(Qos::KeepLast(3));
        let p = t.publisher();
        for i in 0..10u8 {
            p.send(&[i]).unwrap();
        }
        assert_eq!(drain(&s), vec![7, 8, 9]);
        assert_eq!(s.dropped(), 7);
    }

    #[test]
    fn reliable_refuses_when_full_and_loses_nothing() {
        let mut t = topic();
        let fast = t.subscribe(Qos::KeepLast(1));
        let slow = t.subscribe(Qos::Reliable(2));
        let p = t.publisher();
        assert_eq!(p.send(&[0]), Ok(()));
        assert_eq!(p.send(&[1]), Ok(()));
        assert_eq!(p.send(&[2]), Err(SendError::Full));
        assert_eq!(p.messages_sent(), 2);
        assert_eq!(drain(&slow), vec![0, 1]);
        assert_eq!(p.send(&[2]), Ok(()));
        assert_eq!(drain(&slow), vec![2]);
        assert_eq!(drain(&fast), vec![2]);
        assert_eq!(slow.dropped(), 0);
    }

    #[test]
    fn no_subscribers_still_counts() {
        let p = topic().publisher();
        p.send(&[1, 2, 3]).unwrap();
        assert_eq!((p.messages_sent(), p.bytes_sent()), (1, 3));
    }
}
