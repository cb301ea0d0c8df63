//! # horus-plugin-api
//!
//! The stable ABI between the `horus` host and node plugins, and the safe SDK on top of it.
//!
//! A plugin is a `cdylib` crate that implements [`Node`] for one or more types and exports them
//! with [`export_plugin!`]. Plugin code never writes `unsafe` or `extern`:
//!
//! ```
//! use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult, Port};
//!
//! pub struct Counter { count: u64 }
//!
//! impl Node for Counter {
//!     const PORTS: &'static [Port] = &[Port::output::<u64>("count")];
//!
//!     fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
//!         Ok(Counter { count: 0 })
//!     }
//!
//!     fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
//!         self.count += 1;
//!         ctx.send("count", &self.count)?;
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(Counter);
//! ```
//!
//! Layers, bottom-up: [`abi`] (the `#[repr(C)]` types, version and layout hash), [`message`]
//! (typed messages and ports), [`config`] (the config schema a node type declares), [`node`] (the trait and its context), [`export`] (the entry points
//! the macro emits), [`testing`] (a harness to unit-test a node without a host), [`msgs`]
//! (standard message types). Only [`abi`] is the contract; everything above it is compiled into
//! each plugin and may evolve without breaking plugins already built.
#![warn(missing_docs)]

pub mod abi;
pub mod config;
#[expect(
    unsafe_code,
    reason = "the plugin side of the C ABI: entry points and panic containment"
)]
pub mod export;
#[expect(
    unsafe_code,
    reason = "guards over memory the host lends in a topic's shared memory"
)]
pub mod loan;
#[expect(unsafe_code, reason = "plain-data messages are viewed as bytes")]
pub mod message;
pub mod msgs;
#[expect(unsafe_code, reason = "calls through the host's function table")]
pub mod node;
#[expect(unsafe_code, reason = "an in-memory host implementing the C ABI")]
pub mod testing;

pub use config::ConfigKey;
pub use loan::{BytesRef, Loan, LoanBytes, Ref};
pub use message::{CodecError, Message, Pod, Port};
pub use node::{ConfigError, Context, Node, NodeError, NodeResult, RecvError, SendError};

#[doc(hidden)]
pub mod __private {
    use crate::message::Pod;

    /// Compile-time check used by `pod_message!`: every field must be plain data.
    pub const fn assert_pod<T: Pod>() {}

    #[cfg(feature = "serde")]
    pub fn postcard_encode<'a, T: serde::Serialize>(
        value: &T,
        scratch: &'a mut Vec<u8>,
        type_name: &'static str,
    ) -> Result<&'a [u8], crate::CodecError> {
        scratch.clear();
        let taken = std::mem::take(scratch);
        match postcard::to_extend(value, taken) {
            Ok(buf) => {
                *scratch = buf;
                Ok(scratch.as_slice())
            }
            Err(e) => Err(crate::CodecError {
                type_name,
                reason: e.to_string(),
            }),
        }
    }

    #[cfg(feature = "serde")]
    pub fn postcard_decode<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
        type_name: &'static str,
    ) -> Result<T, crate::CodecError> {
        postcard::from_bytes(bytes).map_err(|e| crate::CodecError {
            type_name,
            reason: e.to_string(),
        })
    }
}
