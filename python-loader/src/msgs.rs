//! The standard plain-data messages (`horus_plugin_api::msgs`) as Python classes. On a topic
//! they travel as the Rust type's bytes under the Rust type's name and hash, so a Python node
//! and a Rust node exchange them directly; inside Python-object messages they are an msgpack
//! extension (see [`crate::codec`]).

use horus_plugin_api::message::{pod_bytes, pod_from_bytes};
use horus_plugin_api::msgs;
use horus_plugin_api::Message;
use pyo3::prelude::*;

/// A 3-vector (`horus_plugin_api::msgs::Vector3`).
#[pyclass(module = "horus", name = "Vector3", get_all, set_all, from_py_object)]
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub struct Vector3 {
    x: f64,
    y: f64,
    z: f64,
}

#[pymethods]
impl Vector3 {
    #[new]
    #[pyo3(signature = (x = 0.0, y = 0.0, z = 0.0))]
    fn new(x: f64, y: f64, z: f64) -> Vector3 {
        Vector3 { x, y, z }
    }

    fn __repr__(&self) -> String {
        format!("Vector3(x={}, y={}, z={})", self.x, self.y, self.z)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.extract::<Vector3>().is_ok_and(|o| o == *self)
    }
}

impl From<msgs::Vector3> for Vector3 {
    fn from(v: msgs::Vector3) -> Vector3 {
        Vector3 {
            x: v.x,
            y: v.y,
            z: v.z,
        }
    }
}

impl From<Vector3> for msgs::Vector3 {
    fn from(v: Vector3) -> msgs::Vector3 {
        msgs::Vector3 {
            x: v.x,
            y: v.y,
            z: v.z,
        }
    }
}

/// An orientation as roll, pitch and yaw (`horus_plugin_api::msgs::Attitude`).
#[pyclass(module = "horus", name = "Attitude", get_all, set_all, from_py_object)]
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub struct Attitude {
    stamp_ns: u64,
    roll: f64,
    pitch: f64,
    yaw: f64,
}

#[pymethods]
impl Attitude {
    #[new]
    #[pyo3(signature = (stamp_ns = 0, roll = 0.0, pitch = 0.0, yaw = 0.0))]
    fn new(stamp_ns: u64, roll: f64, pitch: f64, yaw: f64) -> Attitude {
        Attitude {
            stamp_ns,
            roll,
            pitch,
            yaw,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Attitude(stamp_ns={}, roll={}, pitch={}, yaw={})",
            self.stamp_ns, self.roll, self.pitch, self.yaw
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.extract::<Attitude>().is_ok_and(|o| o == *self)
    }
}

/// An inertial measurement (`horus_plugin_api::msgs::Imu`).
#[pyclass(module = "horus", name = "Imu", get_all, set_all, from_py_object)]
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub struct Imu {
    stamp_ns: u64,
    angular_velocity: Vector3,
    linear_acceleration: Vector3,
}

#[pymethods]
impl Imu {
    #[new]
    #[pyo3(signature = (stamp_ns = 0, angular_velocity = Vector3::default(), linear_acceleration = Vector3::default()))]
    fn new(stamp_ns: u64, angular_velocity: Vector3, linear_acceleration: Vector3) -> Imu {
        Imu {
            stamp_ns,
            angular_velocity,
            linear_acceleration,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Imu(stamp_ns={}, angular_velocity={}, linear_acceleration={})",
            self.stamp_ns,
            self.angular_velocity.__repr__(),
            self.linear_acceleration.__repr__()
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.extract::<Imu>().is_ok_and(|o| o == *self)
    }
}

/// A velocity command (`horus_plugin_api::msgs::Twist`).
#[pyclass(module = "horus", name = "Twist", get_all, set_all, from_py_object)]
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub struct Twist {
    stamp_ns: u64,
    linear: Vector3,
    angular: Vector3,
}

#[pymethods]
impl Twist {
    #[new]
    #[pyo3(signature = (stamp_ns = 0, linear = Vector3::default(), angular = Vector3::default()))]
    fn new(stamp_ns: u64, linear: Vector3, angular: Vector3) -> Twist {
        Twist {
            stamp_ns,
            linear,
            angular,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Twist(stamp_ns={}, linear={}, angular={})",
            self.stamp_ns,
            self.linear.__repr__(),
            self.angular.__repr__()
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.extract::<Twist>().is_ok_and(|o| o == *self)
    }
}

/// One typed message class: its Rust type's identity and its conversions.
pub struct Typed {
    /// The Rust type's `TYPE_NAME`.
    pub name: &'static str,
    /// The Rust type's `TYPE_HASH`.
    pub hash: u64,
    /// Its size in bytes.
    pub size: usize,
    /// True if `obj` is of this class.
    pub is: fn(&Bound<'_, PyAny>) -> bool,
    /// Appends `obj`'s bytes to `out` if `obj` is of this class.
    pub encode: fn(&Bound<'_, PyAny>, &mut Vec<u8>) -> bool,
    /// Builds the Python object from exactly `size` bytes.
    pub decode: for<'py> fn(Python<'py>, &[u8]) -> PyResult<Bound<'py, PyAny>>,
}

fn decode_err(e: horus_plugin_api::CodecError) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(e.to_string())
}

macro_rules! typed {
    ($py:ident, $rust:ty, |$v:ident| $to_rust:expr, |$r:ident| $to_py:expr) => {
        Typed {
            name: <$rust as Message>::TYPE_NAME,
            hash: <$rust as Message>::TYPE_HASH,
            size: size_of::<$rust>(),
            is: |obj| obj.is_instance_of::<$py>(),
            encode: |obj, out| match obj.cast::<$py>() {
                Ok(cell) => {
                    let $v: $py = *cell.borrow();
                    let value: $rust = $to_rust;
                    out.extend_from_slice(pod_bytes(&value));
                    true
                }
                Err(_) => false,
            },
            decode: |py, bytes| {
                let $r: $rust = pod_from_bytes(bytes, <$rust as Message>::TYPE_NAME).map_err(decode_err)?;
                let value: $py = $to_py;
                Ok(Bound::new(py, value)?.into_any())
            },
        }
    };
}

/// Every typed message class, looked up by class on send and by hash on receive.
pub static TYPED: [Typed; 4] = [
    typed!(Vector3, msgs::Vector3, |v| v.into(), |r| r.into()),
    typed!(
        Attitude,
        msgs::Attitude,
        |v| msgs::Attitude {
            stamp_ns: v.stamp_ns,
            roll: v.roll,
            pitch: v.pitch,
            yaw: v.yaw
        },
        |r| Attitude {
            stamp_ns: r.stamp_ns,
            roll: r.roll,
            pitch: r.pitch,
            yaw: r.yaw
        }
    ),
    typed!(
        Imu,
        msgs::Imu,
        |v| msgs::Imu {
            stamp_ns: v.stamp_ns,
            angular_velocity: v.angular_velocity.into(),
            linear_acceleration: v.linear_acceleration.into()
        },
        |r| Imu {
            stamp_ns: r.stamp_ns,
            angular_velocity: r.angular_velocity.into(),
            linear_acceleration: r.linear_acceleration.into()
        }
    ),
    typed!(
        Twist,
        msgs::Twist,
        |v| msgs::Twist {
            stamp_ns: v.stamp_ns,
            linear: v.linear.into(),
            angular: v.angular.into()
        },
        |r| Twist {
            stamp_ns: r.stamp_ns,
            linear: r.linear.into(),
            angular: r.angular.into()
        }
    ),
];

/// The typed class `obj` is an instance of, with its bytes appended to `out`.
pub fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Option<&'static Typed> {
    TYPED.iter().find(|t| (t.encode)(obj, out))
}

/// True if `obj` is a typed message.
pub fn is_typed(obj: &Bound<'_, PyAny>) -> bool {
    TYPED.iter().any(|t| (t.is)(obj))
}

/// The typed class with Rust type hash `hash`.
pub fn by_hash(hash: u64) -> Option<&'static Typed> {
    TYPED.iter().find(|t| t.hash == hash)
}

/// Adds the classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Vector3>()?;
    m.add_class::<Attitude>()?;
    m.add_class::<Imu>()?;
    m.add_class::<Twist>()?;
    Ok(())
}
