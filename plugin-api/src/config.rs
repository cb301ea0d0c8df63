//! A node type's config schema: the keys its `config` table accepts, declared next to its ports
//! as [`Node::CONFIG`](crate::Node::CONFIG).
//!
//! ```
//! use horus_plugin_api::ConfigKey;
//!
//! const CONFIG: &[ConfigKey] = &[
//!     ConfigKey::f64("alpha").default(0.98).doc("blend of gyro vs accel"),
//!     ConfigKey::str("frame").required().doc("the output frame"),
//!     ConfigKey::i64("seed").default(1),
//! ];
//! assert_eq!(CONFIG[0].name(), "alpha");
//! ```
//!
//! A default of another type than its key's stops the build:
//!
//! ```compile_fail
//! use horus_plugin_api::ConfigKey;
//! const SEED: ConfigKey = ConfigKey::i64("seed").default(0.5);
//! fn main() {
//!     let _ = SEED.name();
//! }
//! ```
//!
//! Owns the const builders. The schema travels in the node type's descriptor (see
//! [`crate::abi::ConfigKeyDesc`]); `horus check` verifies every manifest `config` table against
//! it, and [`Context::config_f64`](crate::Context::config_f64) and its siblings return a declared
//! default when the key is absent. Mistakes in a declaration (a default of the wrong type, a
//! required key with a default) stop the plugin's build.

use crate::abi::{self, ConfigKeyDesc, ConfigValue, RawSlice};

/// One key of a node type's `config` table: its name, type, whether it is required or has a
/// default, and one line of documentation. Built with const fns, so a schema is a `const`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct ConfigKey(pub(crate) ConfigKeyDesc);

/// A value that can be a [`ConfigKey`]'s default: `bool`, `i64`, `f64` or `&'static str`.
/// Sealed: these are the types `config` values have.
pub trait ConfigDefault: Copy + sealed::Sealed + 'static {
    /// The `abi::CONFIG_*` kind of the value.
    const KIND: u32;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for bool {}
    impl Sealed for i64 {}
    impl Sealed for f64 {}
    impl Sealed for &'static str {}
}

impl ConfigDefault for bool {
    const KIND: u32 = abi::CONFIG_BOOL;
}
impl ConfigDefault for i64 {
    const KIND: u32 = abi::CONFIG_INT;
}
impl ConfigDefault for f64 {
    const KIND: u32 = abi::CONFIG_FLOAT;
}
impl ConfigDefault for &'static str {
    const KIND: u32 = abi::CONFIG_STRING;
}

/// The value of a key that has no default.
pub(crate) const NO_VALUE: ConfigValue = ConfigValue {
    kind: abi::CONFIG_MISSING,
    reserved: 0,
    int: 0,
    float: 0.0,
    text: RawSlice::EMPTY,
};

impl ConfigKey {
    const fn new(name: &'static str, kind: u32) -> ConfigKey {
        assert!(!name.is_empty(), "ConfigKey: a key needs a name");
        ConfigKey(ConfigKeyDesc {
            name: RawSlice::from_str(name),
            doc: RawSlice::EMPTY,
            kind,
            flags: 0,
            default: NO_VALUE,
        })
    }

    /// A key that holds `true` or `false` (read it with `Context::config_bool`).
    pub const fn bool(name: &'static str) -> ConfigKey {
        ConfigKey::new(name, abi::CONFIG_BOOL)
    }

    /// A key that holds an integer (read it with `Context::config_i64`).
    pub const fn i64(name: &'static str) -> ConfigKey {
        ConfigKey::new(name, abi::CONFIG_INT)
    }

    /// A key that holds a number; an integer is accepted too (read it with
    /// `Context::config_f64`).
    pub const fn f64(name: &'static str) -> ConfigKey {
        ConfigKey::new(name, abi::CONFIG_FLOAT)
    }

    /// A key that holds a string (read it with `Context::config_str`).
    pub const fn str(name: &'static str) -> ConfigKey {
        ConfigKey::new(name, abi::CONFIG_STRING)
    }

    /// A key that holds an array (read it from `Context::config_toml`). Its items are not
    /// checked.
    pub const fn array(name: &'static str) -> ConfigKey {
        ConfigKey::new(name, abi::CONFIG_ARRAY)
    }

    /// A key that holds a table (read nested keys with a dotted name, `pid.kp`). Its keys are
    /// not checked.
    pub const fn table(name: &'static str) -> ConfigKey {
        ConfigKey::new(name, abi::CONFIG_TABLE)
    }

    /// The value the getters return when the manifest does not set the key. Its type must be
    /// the key's (an integer is fine for an `f64` key); a mismatch stops the build.
    pub const fn default<V: ConfigDefault>(mut self, value: V) -> ConfigKey {
        assert!(
            self.0.flags & abi::CONFIG_KEY_REQUIRED == 0,
            "ConfigKey: a required key cannot have a default"
        );
        let mut v = crate::export::config_value_of(value);
        if self.0.kind == abi::CONFIG_FLOAT && v.kind == abi::CONFIG_INT {
            v = ConfigValue {
                kind: abi::CONFIG_FLOAT,
                float: v.int as f64,
                ..v
            };
        }
        assert!(
            v.kind == self.0.kind,
            "ConfigKey: the default's type is not the key's (bool, i64, f64 or &str, as declared)"
        );
        self.0.default = v;
        self
    }

    /// The manifest must set the key; `horus check` reports a node whose `config` lacks it.
    pub const fn required(mut self) -> ConfigKey {
        assert!(
            self.0.default.kind == abi::CONFIG_MISSING,
            "ConfigKey: a key with a default cannot be required"
        );
        self.0.flags |= abi::CONFIG_KEY_REQUIRED;
        self
    }

    /// One line saying what the key does (shown by `horus inspect` and in hints).
    pub const fn doc(mut self, doc: &'static str) -> ConfigKey {
        self.0.doc = RawSlice::from_str(doc);
        self
    }

    /// The key's name.
    pub fn name(&self) -> &'static str {
        crate::export::static_str(self.0.name)
    }

    /// Its one line of documentation (empty when none).
    pub fn doc_text(&self) -> &'static str {
        crate::export::static_str(self.0.doc)
    }

    /// Whether the manifest must set it.
    pub fn is_required(&self) -> bool {
        self.0.flags & abi::CONFIG_KEY_REQUIRED != 0
    }

    /// Its default as the getters see it (`kind` is `CONFIG_MISSING` when it has none).
    pub(crate) fn default_value(&self) -> ConfigValue {
        self.0.default
    }

    /// The key's `abi::CONFIG_*` kind.
    pub fn kind(&self) -> u32 {
        self.0.kind
    }

    /// The key in the ABI's representation.
    pub fn desc(&self) -> &ConfigKeyDesc {
        &self.0
    }
}

impl std::fmt::Debug for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigKey")
            .field("name", &self.name())
            .field("kind", &self.0.kind)
            .field("required", &self.is_required())
            .field("doc", &self.doc_text())
            .finish()
    }
}

/// Checks at compile time that key names are unique within a schema.
pub const fn keys_are_unique(keys: &[ConfigKey]) -> bool {
    let mut i = 0;
    while i < keys.len() {
        let mut j = i + 1;
        while j < keys.len() {
            if crate::export::raw_eq(keys[i].0.name, keys[j].0.name) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[ConfigKey] = &[
        ConfigKey::f64("alpha").default(0.98).doc("blend"),
        ConfigKey::f64("beta").default(2),
        ConfigKey::str("frame").required(),
        ConfigKey::bool("on").default(true),
        ConfigKey::str("mode").default("fast"),
        ConfigKey::i64("n").default(-3),
        ConfigKey::array("list"),
        ConfigKey::table("pid"),
    ];

    #[test]
    fn builders_fill_the_descriptor() {
        assert_eq!(SCHEMA[0].name(), "alpha");
        assert_eq!(SCHEMA[0].doc_text(), "blend");
        assert_eq!(SCHEMA[0].default_value().kind, abi::CONFIG_FLOAT);
        assert_eq!(SCHEMA[0].default_value().float, 0.98);
        // An integer default of a float key is stored as a float.
        assert_eq!(SCHEMA[1].default_value().kind, abi::CONFIG_FLOAT);
        assert_eq!(SCHEMA[1].default_value().float, 2.0);
        assert!(SCHEMA[2].is_required());
        assert_eq!(SCHEMA[2].default_value().kind, abi::CONFIG_MISSING);
        assert_eq!(SCHEMA[3].default_value().int, 1);
        assert_eq!(crate::export::static_str(SCHEMA[4].default_value().text), "fast");
        assert_eq!(SCHEMA[5].default_value().int, -3);
        assert_eq!(SCHEMA[6].kind(), abi::CONFIG_ARRAY);
        assert_eq!(SCHEMA[7].kind(), abi::CONFIG_TABLE);
        assert!(!SCHEMA[7].is_required());
        assert!(keys_are_unique(SCHEMA));
        assert!(!keys_are_unique(&[ConfigKey::i64("a"), ConfigKey::bool("a")]));
    }
}
