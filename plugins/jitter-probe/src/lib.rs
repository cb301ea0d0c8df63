//! A benchmark node: records when each of its ticks starts (the host clock) and, at shutdown,
//! logs how far the intervals between ticks strayed from the expected period:
//! `jitter period_ns=… samples=… p50_ns=… p99_ns=… max_ns=…`. `./scripts/bench.sh host` runs it
//! at 1 kHz and compares it with a bare `clock_nanosleep` loop.
//!
//! Config: `period_us` (expected period, default 1000), `skip` (first intervals ignored, 100).
//!
//! The chain latency nodes of `./scripts/bench.sh latency` (all `u64` messages):
//! `StampSource` sends the CLOCK_MONOTONIC time in ns at each tick on `out`; `StampRelay`
//! forwards every message of `in` to `out`; `LatencySink` records `now − stamp` of every
//! message of `in` (CLOCK_MONOTONIC is one clock for every process of the machine) and at
//! shutdown logs `latency samples=… p50_ns=… p99_ns=… max_ns=…`, ignoring the first `skip`
//! messages (config, default 0).

use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult, Port};

/// The probe.
pub struct JitterProbe {
    period_ns: i64,
    skip: usize,
    last: Option<u64>,
    deviations: Vec<u64>,
}

impl Node for JitterProbe {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let period_us = ctx.config_i64("period_us")?.unwrap_or(1000);
        if period_us <= 0 {
            return Err(NodeError::new(format!(
                "config `period_us` must be > 0 (got {period_us})"
            )));
        }
        let skip = ctx.config_i64("skip")?.unwrap_or(100).max(0) as usize;
        Ok(JitterProbe {
            period_ns: period_us * 1000,
            skip,
            last: None,
            deviations: Vec::with_capacity(100_000),
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let now = ctx.now().as_nanos() as u64;
        if let Some(last) = self.last {
            if self.deviations.len() < self.deviations.capacity() {
                self.deviations
                    .push(((now - last) as i64 - self.period_ns).unsigned_abs());
            }
        }
        self.last = Some(now);
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let mut d: Vec<u64> = self.deviations.iter().skip(self.skip).copied().collect();
        if d.is_empty() {
            return Err(NodeError::new("too few ticks to measure jitter"));
        }
        d.sort_unstable();
        let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
        ctx.info(format_args!(
            "jitter period_ns={} samples={} p50_ns={} p99_ns={} max_ns={}",
            self.period_ns,
            d.len(),
            at(0.5),
            at(0.99),
            d[d.len() - 1]
        ));
        Ok(())
    }
}

/// CLOCK_MONOTONIC, ns: the same clock in every process of the machine.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Sends the monotonic time at each tick.
pub struct StampSource;

impl Node for StampSource {
    const PORTS: &'static [Port] = &[Port::output::<u64>("out")];

    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(StampSource)
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.send("out", &monotonic_ns())?;
        Ok(())
    }
}

/// Forwards every stamp it reads, unchanged.
pub struct StampRelay;

impl Node for StampRelay {
    const PORTS: &'static [Port] = &[Port::input::<u64>("in"), Port::output::<u64>("out")];

    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(StampRelay)
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        while let Some(stamp) = ctx.recv::<u64>("in")? {
            ctx.send("out", &stamp)?;
        }
        Ok(())
    }
}

/// Records how old each stamp is when it arrives.
pub struct LatencySink {
    skip: usize,
    latencies: Vec<u64>,
}

impl Node for LatencySink {
    const PORTS: &'static [Port] = &[Port::input::<u64>("in")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(LatencySink {
            skip: ctx.config_i64("skip")?.unwrap_or(0).max(0) as usize,
            latencies: Vec::with_capacity(100_000),
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        while let Some(stamp) = ctx.recv::<u64>("in")? {
            let age = monotonic_ns().saturating_sub(stamp);
            if self.latencies.len() < self.latencies.capacity() {
                self.latencies.push(age);
            }
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let mut d: Vec<u64> = self.latencies.iter().skip(self.skip).copied().collect();
        if d.is_empty() {
            return Err(NodeError::new("no stamps received"));
        }
        d.sort_unstable();
        let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
        ctx.info(format_args!(
            "latency samples={} p50_ns={} p99_ns={} max_ns={}",
            d.len(),
            at(0.5),
            at(0.99),
            d[d.len() - 1]
        ));
        Ok(())
    }
}

export_plugin!(JitterProbe, StampSource, StampRelay, LatencySink);

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::testing::TestHarness;
    use std::time::Duration;

    #[test]
    fn reports_the_deviation_from_the_period() {
        let mut p = TestHarness::<JitterProbe>::builder("probe")
            .config("skip", 0)
            .start()
            .unwrap();
        // Ticks at 0, 1.0, 2.1, 3.1, 4.1 ms: deviations 0, 100, 0, 0 µs.
        for us in [0u64, 1000, 2100, 3100, 4100] {
            p.set_time(Duration::from_micros(us));
            p.tick().unwrap();
        }
        p.shutdown().unwrap();
        let line = &p.logs().last().unwrap().1;
        assert_eq!(
            line,
            "jitter period_ns=1000000 samples=4 p50_ns=0 p99_ns=100000 max_ns=100000"
        );
    }

    #[test]
    fn the_sink_reports_the_age_of_each_stamp() {
        let mut s = TestHarness::<LatencySink>::builder("sink")
            .config("skip", 1)
            .start()
            .unwrap();
        let now = monotonic_ns();
        for stamp in [now, now - 1_000_000_000, now] {
            s.push("in", &stamp);
        }
        s.tick().unwrap();
        s.shutdown().unwrap();
        let line = &s.logs().last().unwrap().1;
        assert!(line.starts_with("latency samples=2 p50_ns="), "{line}");
        let max: u64 = line.rsplit("max_ns=").next().unwrap().parse().unwrap();
        assert!((1_000_000_000..2_000_000_000).contains(&max), "{line}");
    }

    #[test]
    fn too_few_ticks_is_an_error() {
        let mut p = TestHarness::<JitterProbe>::builder("probe").start().unwrap();
        p.tick().unwrap();
        assert!(p.shutdown().is_err());
    }
}
