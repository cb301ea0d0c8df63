//! Fault-injection nodes for the supervision tests. Each misbehaves in one way, on purpose:
//!
//! | type | does | config |
//! |---|---|---|
//! | `AlwaysError` | returns an error from every tick | — |
//! | `Hang` | never returns from a tick, from tick `after` on | `after` (default 10) |
//! | `Slow` | sleeps `sleep_ms` in every tick | `sleep_ms` (default 20) |
//! | `FlakyStart` | a dependency that comes up late: fails until the host clock passes `ready_after_ms` (works across restarts and processes), or else its first `k` ticks counted across restarts in this process | `ready_after_ms`, or `k` (default 8) |
//! | `SlowInit` | sleeps `init_ms` in `init` | `init_ms` (default 300) |
//! | `Segfault` | dereferences a null pointer in tick `after` (run it with `isolation = "process"`) | `after` (default 10) |
//! | `HangingSink` | reads numbers (`u64`) on `in`, then never returns from tick `after` | `after` (default 10) |
//! | `Abort` | calls `std::process::abort` in tick `after` (run it with `isolation = "process"`) | `after` (default 10) |
//! | `SlowRestart` | fails every tick; an `init` once the run's clock has passed `after_ms` (a restart's, not the start-up one) sleeps `init_ms`, or never returns if `init_ms` < 0 (works across restarts and processes) | `init_ms` (default 3000), `after_ms` (default 1000) |

use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult, Port};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn ms(ctx: &Context<'_>, key: &str, default: i64) -> Result<u64, NodeError> {
    match ctx.config_i64(key)?.unwrap_or(default) {
        v if v >= 0 => Ok(v as u64),
        v => Err(NodeError::new(format!("config `{key}` must be ≥ 0 (got {v})"))),
    }
}

/// Fails every tick.
pub struct AlwaysError {
    ticks: u64,
}

impl Node for AlwaysError {
    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(AlwaysError { ticks: 0 })
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        self.ticks += 1;
        Err(NodeError::new(format!("injected error at tick {}", self.ticks)))
    }
}

/// Hangs forever in tick `after`.
pub struct Hang {
    after: u64,
    ticks: u64,
}

impl Node for Hang {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Hang {
            after: ms(ctx, "after", 10)?,
            ticks: 0,
        })
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        self.ticks += 1;
        if self.ticks >= self.after {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Ok(())
    }
}

/// Reads its input, then hangs in tick `after`.
pub struct HangingSink {
    after: u64,
    ticks: u64,
}

impl Node for HangingSink {
    const PORTS: &'static [Port] = &[Port::input::<u64>("in")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(HangingSink {
            after: ms(ctx, "after", 10)?,
            ticks: 0,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        self.ticks += 1;
        while ctx.recv::<u64>("in")?.is_some() {}
        if self.ticks >= self.after {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Ok(())
    }
}

/// Sleeps in every tick.
pub struct Slow {
    sleep: Duration,
}

impl Node for Slow {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Slow {
            sleep: Duration::from_millis(ms(ctx, "sleep_ms", 20)?),
        })
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        std::thread::sleep(self.sleep);
        Ok(())
    }
}

/// Ticks of `FlakyStart` in this process, across restarts (a static, not a thread-local, so it
/// pins nothing).
static FLAKY_TICKS: AtomicU64 = AtomicU64::new(0);

/// Fails until the host clock passes `ready_after_ms`, or until `k` ticks have been attempted
/// in this process.
pub struct FlakyStart {
    k: u64,
    ready_after: Option<Duration>,
}

impl Node for FlakyStart {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let ready_after = ctx
            .config_i64("ready_after_ms")?
            .map(|_| ms(ctx, "ready_after_ms", 0))
            .transpose()?;
        Ok(FlakyStart {
            k: ms(ctx, "k", 8)?,
            ready_after: ready_after.map(Duration::from_millis),
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        if let Some(ready) = self.ready_after {
            let now = ctx.now();
            if now < ready {
                return Err(NodeError::new(format!(
                    "not ready yet ({} ms of {} ms)",
                    now.as_millis(),
                    ready.as_millis()
                )));
            }
            return Ok(());
        }
        let n = FLAKY_TICKS.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= self.k {
            return Err(NodeError::new(format!(
                "not ready yet ({n} of {} failing ticks)",
                self.k
            )));
        }
        Ok(())
    }
}

/// Takes its time to initialise.
pub struct SlowInit {
    init: Duration,
}

impl Node for SlowInit {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(SlowInit {
            init: Duration::from_millis(ms(ctx, "init_ms", 300)?),
        })
    }

    fn init(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        std::thread::sleep(self.init);
        Ok(())
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        Ok(())
    }
}

/// Crashes its process with SIGSEGV in tick `after`.
pub struct Segfault {
    after: u64,
    ticks: u64,
}

impl Node for Segfault {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Segfault {
            after: ms(ctx, "after", 10)?,
            ticks: 0,
        })
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        self.ticks += 1;
        if self.ticks >= self.after {
            let null = std::hint::black_box(std::ptr::null_mut::<u64>());
            #[expect(
                unsafe_code,
                reason = "the deliberate null write this fault injector exists for"
            )]
            // SAFETY: none. This is deliberately undefined behaviour: a write through a null
            // pointer, which the OS answers with SIGSEGV. It exists to prove that process
            // isolation survives a crashing node; never run it inline.
            unsafe {
                null.write_volatile(1)
            };
        }
        Ok(())
    }
}

/// Aborts its process in tick `after`.
pub struct Abort {
    after: u64,
    ticks: u64,
}

impl Node for Abort {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Abort {
            after: ms(ctx, "after", 10)?,
            ticks: 0,
        })
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        self.ticks += 1;
        if self.ticks >= self.after {
            std::process::abort();
        }
        Ok(())
    }
}

/// Fails every tick; its restarts (an `init` after `after_ms` of the run) are slow or hang.
pub struct SlowRestart {
    /// `None`: never return.
    init: Option<Duration>,
    after: Duration,
    ticks: u64,
}

impl Node for SlowRestart {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let init = ctx.config_i64("init_ms")?.unwrap_or(3000);
        Ok(SlowRestart {
            init: u64::try_from(init).ok().map(Duration::from_millis),
            after: Duration::from_millis(ms(ctx, "after_ms", 1000)?),
            ticks: 0,
        })
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        if ctx.now() < self.after {
            return Ok(());
        }
        match self.init {
            Some(d) => std::thread::sleep(d),
            None => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
        Ok(())
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        self.ticks += 1;
        Err(NodeError::new(format!("injected error at tick {}", self.ticks)))
    }
}

export_plugin!(
    AlwaysError,
    Hang,
    HangingSink,
    Slow,
    FlakyStart,
    SlowInit,
    Segfault,
    Abort,
    SlowRestart
);
