//! An input-triggered node's trigger (`trigger = "input"` or a list of ports): which inputs
//! make it tick, its `timeout_ms`, and the figures of its input-caused ticks (`wakeups`,
//! input-to-tick latency).
//!
//! The scheduler decides each pass whether the node is due ([`InputTrigger::due`]): it is when
//! one of its trigger inputs has a message — read from the rings directly ([`InputWatch`]), so a
//! node later in priority order sees what an earlier one published in the same pass, and a
//! `thread` node's inputs are seen from the scheduler thread — or when `timeout_ms` passed since
//! its last tick. Between passes the scheduler sleeps on the watches' futex words (see
//! [`crate::shm::wait_for_input`]).
//!
//! The latency is measured from when the scheduler first found the input pending (a pass's
//! start: after a futex wake-up, right after it; the node's turn in the pass; or a pass's end
//! that left input waiting, held by the `rate_hz` cap) to the tick's start; the ring's slots
//! carry no publish time. That wait plus the tick's duration is what an input deadline miss
//! (`input_deadline_misses`) compares with `deadline_ms`.
//!
//! Owns the decision and the figures. Does not own the sleep (see [`super`]) or the tick (see
//! [`super::running`]).

use super::TickTimes;
use crate::shm::InputWatch;
use std::time::{Duration, Instant};

/// The trigger state of one input-triggered node.
pub(super) struct InputTrigger {
    /// The trigger inputs (connected ones only: an unconnected input never has a message).
    pub(super) watches: Vec<InputWatch>,
    /// Tick anyway after this long without input.
    pub(super) timeout: Option<Duration>,
    /// When the node last ticked (or the run started).
    last_tick: Instant,
    /// When the scheduler first found a trigger input pending, while the node has not ticked
    /// for it yet.
    seen: Option<Instant>,
    /// Ticks caused by input.
    pub(super) wakeups: u64,
    /// Tick once without input, as soon as the cap allows (see [`InputTrigger::tick_once`]).
    once: bool,
    /// Input-to-tick latency of those ticks.
    pub(super) latency: TickTimes,
}

/// Why an input-triggered node is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// A trigger input has a message.
    Input,
    /// `timeout_ms` passed without one.
    Timeout,
    /// The tick a node gets once without input ([`InputTrigger::tick_once`]).
    Once,
}

impl InputTrigger {
    pub(super) fn new(watches: Vec<InputWatch>, timeout: Option<Duration>, start: Instant) -> InputTrigger {
        InputTrigger {
            watches,
            timeout,
            last_tick: start,
            seen: None,
            once: false,
            wakeups: 0,
            latency: TickTimes::default(),
        }
    }

    /// Takes over the figures of the trigger this one replaces (a live apply changed it).
    pub(super) fn carry_on(&mut self, old: &InputTrigger) {
        self.wakeups = old.wakeups;
        self.once |= old.once;
        self.latency = old.latency.clone();
        self.last_tick = old.last_tick;
    }

    /// Counts the timeout from `start` (the run's first cycle).
    pub(super) fn start_at(&mut self, start: Instant) {
        self.last_tick = start;
    }

    /// The node ticks once as soon as its cap allows, input or not: a Python node, whose
    /// inputs are the topics it reads, registers them in that tick.
    pub(super) fn tick_once(&mut self) {
        self.once = true;
    }

    /// True when a trigger input has a message (or the node is to tick once).
    pub(super) fn pending(&self) -> bool {
        self.once || self.watches.iter().any(|w| w.pending() > 0)
    }

    /// The scheduler looks at the node's trigger inputs at `now` (a pass's start and end):
    /// input waiting is timed from the first look that found it.
    pub(super) fn look(&mut self, now: Instant) {
        if self.seen.is_none() && self.pending() {
            self.seen = Some(now);
        }
    }

    /// Whether the node is due at `now`, and why. `capped`: its `rate_hz` cap does not let it
    /// tick yet (a pending input then waits, and is timed from when it was first seen).
    pub(super) fn due(&mut self, now: Instant, capped: bool) -> Option<Cause> {
        let pending = self.pending();
        if pending {
            self.seen.get_or_insert(now);
        }
        if capped {
            return None;
        }
        if std::mem::take(&mut self.once) {
            return Some(Cause::Once);
        }
        if pending {
            return Some(Cause::Input);
        }
        self.timeout
            .filter(|t| now.saturating_duration_since(self.last_tick) >= *t)
            .map(|_| Cause::Timeout)
    }

    /// The node ticks at `now` for `cause`; for input, returns how long the input had been
    /// waiting (since it was found pending).
    pub(super) fn ticking(&mut self, now: Instant, cause: Cause) -> Option<Duration> {
        self.last_tick = now;
        let mut waited = None;
        if cause == Cause::Input {
            self.wakeups += 1;
            let seen = self.seen.take().unwrap_or(now);
            let wait = now.saturating_duration_since(seen);
            self.latency.record(wait);
            waited = Some(wait);
        }
        self.seen = None;
        waited
    }

    /// The latest time the scheduler must look at this node again without any input: its
    /// timeout, if it has one.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.timeout.map(|t| self.last_tick + t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_ticks_a_node_without_input() {
        let start = Instant::now();
        let mut t = InputTrigger::new(Vec::new(), Some(Duration::from_millis(50)), start);
        assert_eq!(t.due(start + Duration::from_millis(10), false), None);
        assert_eq!(
            t.due(start + Duration::from_millis(50), true),
            None,
            "the cap holds it"
        );
        assert_eq!(
            t.due(start + Duration::from_millis(50), false),
            Some(Cause::Timeout)
        );
        assert_eq!(t.ticking(start + Duration::from_millis(50), Cause::Timeout), None);
        assert_eq!(t.wakeups, 0);
        assert_eq!(t.next_timeout(), Some(start + Duration::from_millis(100)));
        // An input tick says how long its input waited (found in this very pass: not at all).
        assert_eq!(
            t.ticking(start + Duration::from_millis(65), Cause::Input),
            Some(Duration::ZERO)
        );
        assert_eq!(t.wakeups, 1);
        let mut none = InputTrigger::new(Vec::new(), None, start);
        assert_eq!(none.due(start + Duration::from_secs(3600), false), None);
        // Ticking once (a Python node's first tick) is not an input's wake-up, and happens once.
        none.tick_once();
        assert!(none.pending());
        assert_eq!(none.due(start, true), None, "the cap holds it too");
        assert_eq!(none.due(start, false), Some(Cause::Once));
        assert_eq!(none.ticking(start, Cause::Once), None);
        assert_eq!((none.wakeups, none.pending()), (0, false));
        assert_eq!(none.due(start + Duration::from_secs(1), false), None);
    }
}
