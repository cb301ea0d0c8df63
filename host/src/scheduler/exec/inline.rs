//! The `inline` executor: the node's calls are direct calls on the scheduler thread.
//!
//! Owns nothing but the mapping of the contract onto [`NodeInstance`]'s plugin calls. The
//! scheduler ticks inline nodes through its own fast path (one clock read, its own watchdog
//! record) and uses this impl for everything else; see `super::super::running`.

use super::{Executor, IoSnapshot, RestartStatus, TickOutcome};
use crate::ffi::{CallError, NodeInstance};
use std::time::{Duration, Instant};

impl Executor for NodeInstance {
    fn init(&mut self) -> Result<(), CallError> {
        NodeInstance::init(self)
    }

    #[inline]
    fn tick(&mut self, at_ns: u64) -> TickOutcome {
        let started = Instant::now();
        let r = NodeInstance::tick_at(self, at_ns);
        TickOutcome::Finished(r, started.elapsed())
    }

    fn shutdown(&mut self) -> Result<(), CallError> {
        NodeInstance::shutdown(self)
    }

    fn begin_restart(&mut self) -> RestartStatus {
        // On the scheduler thread, to its end: nothing can abandon it (the scheduler marks the
        // node's health record so a hung run names it).
        match self.recreate().and_then(|()| NodeInstance::init(self)) {
            Ok(()) => RestartStatus::Ready,
            Err(e) => RestartStatus::Failed(e),
        }
    }

    fn poll_restart(&mut self) -> RestartStatus {
        RestartStatus::Ready
    }

    fn hung(&self, _timeout: Duration, _epoch: Instant) -> bool {
        // The scheduler thread is the one in the tick: nothing can notice it from here.
        false
    }

    fn quarantine(&mut self) -> bool {
        false
    }

    fn io_snapshot(&mut self) -> IoSnapshot {
        IoSnapshot::of(self)
    }

    fn pending_input(&mut self) -> usize {
        self.io().pending_input()
    }
}
