//! Fault injection: a node that panics on every `every`-th tick (config, default 5) and
//! succeeds otherwise. The host must count each panic as a failure and keep running.
//!
//! It formats its panic message in a per-thread scratch buffer (`thread_local!` with a
//! destructor), as many crates do. That registers a thread-local destructor in this library on
//! every thread that ticks it, which keeps glibc from unmapping the library while such a thread
//! lives: the unload tests rely on it to prove that the host retires the threads that call
//! plugins.

use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult};
use std::cell::RefCell;
use std::fmt::Write;

thread_local! {
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Panics on ticks `every`, `2·every`, …
pub struct PanicEvery {
    every: u64,
    ticks: u64,
}

impl Node for PanicEvery {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let every = ctx.config_i64("every")?.unwrap_or(5);
        if every < 1 {
            return Err(NodeError::new(format!(
                "config `every` must be ≥ 1 (got {every})"
            )));
        }
        Ok(PanicEvery {
            every: every as u64,
            ticks: 0,
        })
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        self.ticks += 1;
        if self.ticks.is_multiple_of(self.every) {
            let message = SCRATCH.with_borrow_mut(|buf| {
                buf.clear();
                let _ = write!(buf, "injected panic at tick {}", self.ticks);
                buf.clone()
            });
            panic!("{message}");
        }
        Ok(())
    }
}

export_plugin!(PanicEvery);
