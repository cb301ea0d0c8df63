//! Standard message types that robotics nodes share, so that plugins from different authors
//! connect without agreeing on a crate of their own. All are `#[repr(C)]` plain data: they
//! cross topics as their bytes. Units are SI (m, m/s, rad, rad/s, m/s²); `stamp_ns` is the
//! sender's [`Context::now`](crate::Context::now) in nanoseconds.

crate::pod_message! {
    /// A 3-vector.
    pub struct Vector3 {
        /// x component.
        pub x: f64,
        /// y component.
        pub y: f64,
        /// z component.
        pub z: f64,
    }

    /// An inertial measurement: angular velocity and linear acceleration in the sensor frame.
    pub struct Imu {
        /// Time of measurement.
        pub stamp_ns: u64,
        /// Angular velocity (rad/s).
        pub angular_velocity: Vector3,
        /// Linear acceleration including gravity (m/s²).
        pub linear_acceleration: Vector3,
    }

    /// An orientation as roll, pitch and yaw (rad).
    pub struct Attitude {
        /// Time of the measurement it was estimated from.
        pub stamp_ns: u64,
        /// Rotation about x (rad).
        pub roll: f64,
        /// Rotation about y (rad).
        pub pitch: f64,
        /// Rotation about z (rad).
        pub yaw: f64,
    }

    /// A velocity command: linear (m/s) and angular (rad/s).
    pub struct Twist {
        /// Time the command was issued.
        pub stamp_ns: u64,
        /// Linear velocity.
        pub linear: Vector3,
        /// Angular velocity.
        pub angular: Vector3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn sizes_have_no_padding() {
        assert_eq!(size_of::<Imu>(), 8 + 48);
        assert_eq!(size_of::<Attitude>(), 32);
        assert_ne!(Imu::TYPE_HASH, Twist::TYPE_HASH);
    }
}
