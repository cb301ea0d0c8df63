//! A sink that reports the attitude it receives: once per `report_every_s` (1.0) it logs the
//! latest roll/pitch, the message rate and the largest tilt seen; it warns when the tilt exceeds
//! `max_tilt_deg` (30). On shutdown it logs the totals.

use horus_plugin_api::msgs::Attitude;
use horus_plugin_api::{export_plugin, ConfigKey, Context, Node, NodeError, NodeResult, Port};
use std::time::Duration;

/// The sink.
pub struct TelemetrySink {
    report_every: Duration,
    max_tilt: f64,
    received: u64,
    received_at_last_report: u64,
    last_report: Duration,
    latest: Option<Attitude>,
    peak_tilt: f64,
    over_limit: bool,
}

impl Node for TelemetrySink {
    const PORTS: &'static [Port] = &[Port::input::<Attitude>("attitude")];
    const CONFIG: &'static [ConfigKey] = &[
        ConfigKey::f64("report_every_s")
            .default(1.0)
            .doc("seconds between two report lines"),
        ConfigKey::f64("max_tilt_deg")
            .default(30.0)
            .doc("tilt in degrees above which a warning is logged"),
    ];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let every = ctx.config_f64("report_every_s")?.unwrap_or_default();
        if !(every.is_finite() && every > 0.0) {
            return Err(NodeError::new(format!(
                "config `report_every_s` must be > 0 (got {every})"
            )));
        }
        Ok(TelemetrySink {
            report_every: Duration::from_secs_f64(every),
            max_tilt: ctx.config_f64("max_tilt_deg")?.unwrap_or_default().to_radians(),
            received: 0,
            received_at_last_report: 0,
            last_report: Duration::ZERO,
            latest: None,
            peak_tilt: 0.0,
            over_limit: false,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        while let Some(a) = ctx.recv::<Attitude>("attitude")? {
            self.received += 1;
            let tilt = a.roll.abs().max(a.pitch.abs());
            self.peak_tilt = self.peak_tilt.max(tilt);
            let over = tilt > self.max_tilt;
            if over && !self.over_limit {
                ctx.warn(format_args!(
                    "tilt {:.1}° exceeds the {:.1}° limit",
                    tilt.to_degrees(),
                    self.max_tilt.to_degrees()
                ));
            }
            self.over_limit = over;
            self.latest = Some(a);
        }
        let now = ctx.now();
        if now >= self.last_report + self.report_every {
            let secs = (now - self.last_report).as_secs_f64();
            let rate = (self.received - self.received_at_last_report) as f64 / secs;
            match &self.latest {
                Some(a) => ctx.info(format_args!(
                    "roll {:+6.2}°  pitch {:+6.2}°  yaw {:+6.2}°  ({rate:.0} msg/s, peak tilt {:.1}°)",
                    a.roll.to_degrees(),
                    a.pitch.to_degrees(),
                    a.yaw.to_degrees(),
                    self.peak_tilt.to_degrees(),
                )),
                None => ctx.info("no attitude received yet"),
            }
            self.last_report = now;
            self.received_at_last_report = self.received;
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!(
            "received {} attitude estimates, peak tilt {:.1}°",
            self.received,
            self.peak_tilt.to_degrees()
        ));
        Ok(())
    }
}

export_plugin!(TelemetrySink);

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::testing::TestHarness;

    #[test]
    fn reports_and_warns() {
        let mut s = TestHarness::<TelemetrySink>::builder("sink")
            .config("max_tilt_deg", 10.0)
            .start()
            .unwrap();
        s.push(
            "attitude",
            &Attitude {
                stamp_ns: 1,
                roll: 0.5,
                pitch: 0.0,
                yaw: 0.0,
            },
        );
        s.set_time(Duration::from_secs(2));
        s.tick().unwrap();
        let logs: Vec<&str> = s.logs().iter().map(|(_, m)| m.as_str()).collect();
        assert!(logs[0].starts_with("tilt 28.6°"), "{logs:?}");
        assert!(logs[1].contains("roll +28.65°"), "{logs:?}");
        s.shutdown().unwrap();
        assert!(s.logs().last().unwrap().1.starts_with("received 1 attitude"));
    }
}
