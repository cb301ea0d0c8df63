//! A simulated IMU on a robot body that rocks in roll and pitch, like a legged robot's trunk or a
//! boat: publishes `horus_plugin_api::msgs::Imu` on `imu` each tick, with Gaussian-ish noise.
//!
//! Config (all optional, declared in `ImuSim::CONFIG`): `amplitude_deg` (10), `period_s` (4),
//! `gyro_noise` (0.01 rad/s), `accel_noise` (0.05 m/s²), `seed` (1). The node logs the values it
//! runs with when it starts.

use horus_plugin_api::msgs::{Imu, Vector3};
use horus_plugin_api::{export_plugin, ConfigKey, Context, Node, NodeError, NodeResult, Port};

const GRAVITY: f64 = 9.80665;

/// The simulated sensor.
pub struct ImuSim {
    amplitude: f64,
    omega: f64,
    gyro_noise: f64,
    accel_noise: f64,
    rng: XorShift,
    published: u64,
}

/// A small deterministic PRNG, so runs are reproducible and the plugin needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (sum of four uniforms, rescaled).
    fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.next_f64()).sum();
        (s - 2.0) * (3.0f64).sqrt()
    }
}

/// A declared key (so the getter returns its default when the manifest leaves it out) that must
/// be ≥ 0.
fn positive(ctx: &Context<'_>, key: &str) -> Result<f64, NodeError> {
    match ctx.config_f64(key)? {
        None => Err(NodeError::new(format!("config `{key}` has no default"))),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Some(v) => Err(NodeError::new(format!(
            "config `{key}` must be a number ≥ 0 (got {v})"
        ))),
    }
}

impl ImuSim {
    /// Roll and pitch (rad) and their rates (rad/s) at time `t` seconds.
    fn motion(&self, t: f64) -> (f64, f64, f64, f64) {
        let (s, c) = (self.omega * t).sin_cos();
        let (s2, c2) = (0.5 * self.omega * t).sin_cos();
        let roll = self.amplitude * s;
        let pitch = 0.5 * self.amplitude * s2;
        (
            roll,
            pitch,
            self.amplitude * self.omega * c,
            0.25 * self.amplitude * self.omega * c2,
        )
    }
}

impl Node for ImuSim {
    const PORTS: &'static [Port] = &[Port::output::<Imu>("imu")];
    const CONFIG: &'static [ConfigKey] = &[
        ConfigKey::f64("amplitude_deg")
            .default(10.0)
            .doc("peak roll in degrees (pitch is half of it)"),
        ConfigKey::f64("period_s")
            .default(4.0)
            .doc("period of the rocking motion in seconds"),
        ConfigKey::f64("gyro_noise")
            .default(0.01)
            .doc("gyro noise, rad/s (1 sigma)"),
        ConfigKey::f64("accel_noise")
            .default(0.05)
            .doc("accelerometer noise, m/s² (1 sigma)"),
        ConfigKey::i64("seed")
            .default(1)
            .doc("noise generator seed (same seed, same run)"),
    ];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let period = positive(ctx, "period_s")?;
        if period == 0.0 {
            return Err(NodeError::new("config `period_s` must be > 0"));
        }
        let seed = ctx.config_i64("seed")?.unwrap_or_default();
        let amplitude_deg = positive(ctx, "amplitude_deg")?;
        let (gyro_noise, accel_noise) = (positive(ctx, "gyro_noise")?, positive(ctx, "accel_noise")?);
        ctx.info(format_args!(
            "config: amplitude_deg={amplitude_deg} period_s={period} gyro_noise={gyro_noise} \
             accel_noise={accel_noise} seed={seed}"
        ));
        Ok(ImuSim {
            amplitude: amplitude_deg.to_radians(),
            omega: std::f64::consts::TAU / period,
            gyro_noise,
            accel_noise,
            rng: XorShift(seed as u64 | 1),
            published: 0,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let now = ctx.now();
        let (roll, pitch, roll_rate, pitch_rate) = self.motion(now.as_secs_f64());
        // Gravity seen in the body frame of a body rolled by `roll` and pitched by `pitch`.
        let accel = Vector3 {
            x: -GRAVITY * pitch.sin() + self.accel_noise * self.rng.normal(),
            y: GRAVITY * roll.sin() * pitch.cos() + self.accel_noise * self.rng.normal(),
            z: GRAVITY * roll.cos() * pitch.cos() + self.accel_noise * self.rng.normal(),
        };
        let gyro = Vector3 {
            x: roll_rate + self.gyro_noise * self.rng.normal(),
            y: pitch_rate + self.gyro_noise * self.rng.normal(),
            z: self.gyro_noise * self.rng.normal(),
        };
        let msg = Imu {
            stamp_ns: now.as_nanos() as u64,
            angular_velocity: gyro,
            linear_acceleration: accel,
        };
        ctx.send("imu", &msg)?;
        self.published += 1;
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!("published {} IMU samples", self.published));
        Ok(())
    }
}

export_plugin!(ImuSim);

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::testing::TestHarness;
    use std::time::Duration;

    #[test]
    fn at_rest_it_measures_gravity() {
        let mut imu = TestHarness::<ImuSim>::builder("imu")
            .config("gyro_noise", 0.0)
            .config("accel_noise", 0.0)
            .start()
            .unwrap();
        imu.tick().unwrap();
        let m = imu.take::<Imu>("imu");
        assert_eq!(m.len(), 1);
        assert!((m[0].linear_acceleration.z - GRAVITY).abs() < 1e-9);
        assert!(m[0].angular_velocity.x > 0.0, "rolling at t=0");
    }

    #[test]
    fn stamps_follow_the_host_clock() {
        let mut imu = TestHarness::<ImuSim>::builder("imu").start().unwrap();
        imu.set_time(Duration::from_millis(1500));
        imu.tick().unwrap();
        assert_eq!(imu.take::<Imu>("imu")[0].stamp_ns, 1_500_000_000);
    }

    #[test]
    fn bad_config_names_the_key() {
        let err = TestHarness::<ImuSim>::builder("imu")
            .config("gyro_noise", -1.0)
            .start()
            .err()
            .unwrap();
        assert!(err.message().contains("`gyro_noise`"), "{err}");
    }
}
