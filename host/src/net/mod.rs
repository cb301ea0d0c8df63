//! Network hubs: the transport under `Hub.tcp` in Python and under the manifest's
//! `mode = "tcp"` hubs.
//!
//! - [`status`] (every build): what a hub reports — its [`Role`], [`ConnectionState`], counters
//!   ([`HubMetrics`]) and the [`HubStatus`] line of `horus stats` — as plain data, so the control
//!   socket carries it without depending on Zenoh.
//! - [`wire`] (every build): the header before each message's bytes, and its parse of
//!   untrusted input.
//! - `hub` (feature `network`): `NetHub`, one Zenoh session per hub, its publishers,
//!   subscribers and monitor thread.
//! - `bridge` (feature `network`): a run's hubs and the bridges between network topics'
//!   private rings and their keys.
//!
//! Does not own which topics are network topics (`graph`) or the hub tables' settings
//! (`manifest::hubs`).

pub mod status;
pub mod wire;

#[cfg(feature = "network")]
pub mod bridge;
#[cfg(feature = "network")]
mod hub;

#[cfg(feature = "network")]
pub use hub::{
    config, session_max_message_size, ConfigError, Delivery, Incoming, NetError, NetHub, NetPublisher,
    NetSubscriber, Tally, CONNECT_TIMEOUT, MONITOR_PERIOD, ZENOH_SLACK,
};
pub use status::{ConnectionState, HubMetrics, HubProbe, HubStatus, Role};
pub use wire::WireType;

/// A hub's counters (exact, over every publisher and subscriber of the hub): the same type
/// `horus stats` carries.
pub type Metrics = HubMetrics;
