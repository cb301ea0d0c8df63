//! A benchmark node: records when each of its ticks starts (the host clock) and, at shutdown,
//! logs how far the intervals between ticks strayed from the expected period:
//! `jitter period_ns=… samples=… p50_ns=… p99_ns=… max_ns=…`. `./scripts/bench.sh host` runs it
//! at 1 kHz and compares it with a bare `clock_nanosleep` loop.
//!
//! Config: `period_us` (expected period, default 1000), `skip` (first intervals ignored, 100).

use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult};

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

export_plugin!(JitterProbe);

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
    fn too_few_ticks_is_an_error() {
        let mut p = TestHarness::<JitterProbe>::builder("probe").start().unwrap();
        p.tick().unwrap();
        assert!(p.shutdown().is_err());
    }
}
