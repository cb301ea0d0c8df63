//! A complementary filter: fuses gyro rates (smooth, drifting) with the gravity direction from
//! the accelerometer (noisy, drift-free) into roll and pitch; yaw is integrated from the gyro.
//! Reads `msgs::Imu` on `imu`, publishes `msgs::Attitude` on `attitude` for every sample.
//!
//! Config: `alpha` (0.98): weight of the gyro path, 0 < alpha < 1.

use horus_plugin_api::msgs::{Attitude, Imu};
use horus_plugin_api::{export_plugin, ConfigKey, Context, Node, NodeError, NodeResult, Port};

/// The filter state.
pub struct ComplementaryFilter {
    alpha: f64,
    estimate: Attitude,
    last_stamp_ns: Option<u64>,
}

impl Node for ComplementaryFilter {
    const PORTS: &'static [Port] = &[Port::input::<Imu>("imu"), Port::output::<Attitude>("attitude")];
    const CONFIG: &'static [ConfigKey] = &[ConfigKey::f64("alpha")
        .default(0.98)
        .doc("blend of gyro vs accel, between 0 and 1 (closer to 1 trusts the gyro more)")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let alpha = ctx.config_f64("alpha")?.unwrap_or_default();
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(NodeError::new(format!(
                "config `alpha` must be between 0 and 1 (got {alpha})"
            )));
        }
        Ok(ComplementaryFilter {
            alpha,
            estimate: Attitude::default(),
            last_stamp_ns: None,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        while let Some(imu) = ctx.recv::<Imu>("imu")? {
            self.update(&imu);
            ctx.send("attitude", &self.estimate)?;
        }
        Ok(())
    }

    // State handed to a new build on hot reload: the estimate and the last stamp.
    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        let e = &self.estimate;
        let mut out = Vec::with_capacity(40);
        for v in [e.roll, e.pitch, e.yaw] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.last_stamp_ns.unwrap_or(0).to_le_bytes());
        Ok(out)
    }

    fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        if state.len() != 32 {
            return Err(NodeError::new(format!(
                "expected 32 bytes of state, got {}",
                state.len()
            )));
        }
        let f = |i: usize| f64::from_le_bytes(state[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        self.estimate.roll = f(0);
        self.estimate.pitch = f(1);
        self.estimate.yaw = f(2);
        let stamp = u64::from_le_bytes(state[24..32].try_into().expect("8 bytes"));
        self.last_stamp_ns = (stamp != 0).then_some(stamp);
        Ok(())
    }
}

impl ComplementaryFilter {
    fn update(&mut self, imu: &Imu) {
        let a = &imu.linear_acceleration;
        let g = &imu.angular_velocity;
        let roll_acc = a.y.atan2(a.z);
        let pitch_acc = (-a.x).atan2((a.y * a.y + a.z * a.z).sqrt());
        let e = &mut self.estimate;
        match self.last_stamp_ns {
            // First sample: trust gravity.
            None => {
                e.roll = roll_acc;
                e.pitch = pitch_acc;
            }
            Some(last) => {
                let dt = imu.stamp_ns.saturating_sub(last) as f64 * 1e-9;
                e.roll = self.alpha * (e.roll + g.x * dt) + (1.0 - self.alpha) * roll_acc;
                e.pitch = self.alpha * (e.pitch + g.y * dt) + (1.0 - self.alpha) * pitch_acc;
                e.yaw += g.z * dt;
            }
        }
        e.stamp_ns = imu.stamp_ns;
        self.last_stamp_ns = Some(imu.stamp_ns);
    }
}

export_plugin!(ComplementaryFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::msgs::Vector3;
    use horus_plugin_api::testing::TestHarness;

    fn tilted(roll: f64, stamp_ns: u64) -> Imu {
        Imu {
            stamp_ns,
            angular_velocity: Vector3::default(),
            linear_acceleration: Vector3 {
                x: 0.0,
                y: 9.81 * roll.sin(),
                z: 9.81 * roll.cos(),
            },
        }
    }

    #[test]
    fn converges_to_the_gravity_direction() {
        let mut f = TestHarness::<ComplementaryFilter>::builder("f")
            .config("alpha", 0.9)
            .start()
            .unwrap();
        f.push("imu", &tilted(0.0, 1));
        for i in 1..200u64 {
            f.push("imu", &tilted(0.3, i * 10_000_000));
        }
        f.tick().unwrap();
        let out = f.take::<Attitude>("attitude");
        assert_eq!(out.len(), 200, "one estimate per sample");
        assert!((out.last().unwrap().roll - 0.3).abs() < 1e-3, "{:?}", out.last());
    }

    #[test]
    fn state_roundtrip_and_refusal() {
        let mut f = TestHarness::<ComplementaryFilter>::builder("f").start().unwrap();
        f.push("imu", &tilted(0.2, 5));
        f.tick().unwrap();
        let state = f.save_state().unwrap();
        let mut g = TestHarness::<ComplementaryFilter>::builder("g").start().unwrap();
        g.restore_state(&state).unwrap();
        assert_eq!(g.save_state().unwrap(), state);
        assert!(g.restore_state(&[1, 2, 3]).is_err());
    }

    #[test]
    fn alpha_is_validated() {
        let err = TestHarness::<ComplementaryFilter>::builder("f")
            .config("alpha", 1.5)
            .start()
            .err()
            .unwrap();
        assert!(err.message().contains("`alpha`"));
    }
}
