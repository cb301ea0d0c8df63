//! Everything `unsafe` about plugins: opening libraries, reading their descriptors, calling their
//! entry points, and the C callbacks the host offers them. Everything above this module is safe
//! Rust: [`PluginLibrary`] and [`NodeInstance`] are its whole interface.

pub mod host_api;
mod instance;
mod library;

pub use instance::{CallError, CallErrorKind, NodeInstance, ReloadArg, ReloadStep};
pub use library::{
    ConfigKeyInfo, ConfigKind, CreateWithArgFn, IoStatsFn, LoadError, NodeTypeInfo, NotALibraryKind,
    PluginInfo, PluginLibrary, PortInfo, CREATE_WITH_ARG_SYMBOL,
};
