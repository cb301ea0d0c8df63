//! What a network hub reports about itself: its role on the address, its connection state and
//! its counters, and the [`HubStatus`] line `horus stats` and the end of a run show.
//!
//! Plain data, compiled in every build (with or without the `network` feature), so the control
//! socket ([`crate::control`]) can carry hub status without depending on Zenoh. Does not own
//! measuring any of it: the Zenoh session (`net::NetHub`, feature `network`) does.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How this process took part in the hub's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// It listens on the address (it was the first).
    #[serde(rename = "listen")]
    Listening,
    /// It connected to the process listening there.
    #[serde(rename = "connect")]
    Connected,
}

impl Role {
    /// `"listen"` or `"connect"`, as in the JSON of `horus stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Listening => "listen",
            Role::Connected => "connect",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hub's connection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionState {
    /// At least one peer is connected.
    pub connected: bool,
    /// Connected peers.
    pub peers: usize,
    /// `tcp/<host>:<port>`.
    pub endpoint: String,
    /// Listening or connected.
    pub role: Role,
    /// The last problem: a lost peer, a message of the wrong type, a failed send.
    pub last_error: Option<String>,
}

/// A network hub's counters (exact, over every publisher and subscriber of the hub).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubMetrics {
    /// Messages published.
    pub messages_sent: u64,
    /// Messages received and delivered.
    pub messages_received: u64,
    /// Payload bytes published.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages lost to full queues.
    pub dropped: u64,
    /// Failed sends and rejected messages (wrong type, malformed header).
    pub errors: u64,
}

/// A network hub's connection state and counters, as `horus stats` and the end of a run show
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubStatus {
    /// The hub's name.
    pub name: String,
    /// `tcp/<host>:<port>`.
    pub endpoint: String,
    /// Listening or connected (`"listen"` or `"connect"` in JSON).
    pub role: Role,
    /// At least one peer is connected.
    pub connected: bool,
    /// Connected peers.
    pub peers: usize,
    /// The last problem (a lost peer, a rejected message), if any.
    pub last_error: Option<String>,
    /// Its counters.
    #[serde(flatten)]
    pub metrics: HubMetrics,
}

impl HubStatus {
    /// One line: name, endpoint, role, counters, peers, last error.
    pub fn line(&self) -> String {
        let m = &self.metrics;
        format!(
            "hub `{}` ({}, {}): {}, {} peer(s); sent {} ({} B), received {} ({} B), dropped {}, errors {}{}",
            self.name,
            self.endpoint,
            self.role,
            if self.connected {
                "connected"
            } else {
                "not connected"
            },
            self.peers,
            m.messages_sent,
            m.bytes_sent,
            m.messages_received,
            m.bytes_received,
            m.dropped,
            m.errors,
            self.last_error
                .as_ref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        )
    }
}

/// Reads the hubs' state when a client asks (the control socket calls it per request).
pub type HubProbe = Arc<dyn Fn() -> Vec<HubStatus> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: Role) -> HubStatus {
        HubStatus {
            name: "sensors".into(),
            endpoint: "tcp/127.0.0.1:7450".into(),
            role,
            connected: true,
            peers: 1,
            last_error: None,
            metrics: HubMetrics {
                messages_sent: 3,
                bytes_sent: 12,
                ..HubMetrics::default()
            },
        }
    }

    #[test]
    fn the_json_of_a_hub_status_is_unchanged() {
        // The form `horus stats --json` readers and older clients know: role as a string,
        // counters flattened into the hub's object.
        let json = serde_json::to_value(status(Role::Listening)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "sensors", "endpoint": "tcp/127.0.0.1:7450", "role": "listen",
                "connected": true, "peers": 1, "last_error": null,
                "messages_sent": 3, "messages_received": 0, "bytes_sent": 12,
                "bytes_received": 0, "dropped": 0, "errors": 0
            })
        );
        let connected = serde_json::to_value(status(Role::Connected)).unwrap();
        assert_eq!(connected["role"], "connect");
        let back: HubStatus = serde_json::from_value(connected).unwrap();
        assert_eq!(back, status(Role::Connected));
        assert!(serde_json::from_value::<Role>(serde_json::json!("listening")).is_err());
    }

    #[test]
    fn a_status_line_names_the_role_as_before() {
        let mut s = status(Role::Connected);
        s.last_error = Some("a peer went away (0 still connected)".into());
        assert_eq!(
            s.line(),
            "hub `sensors` (tcp/127.0.0.1:7450, connect): connected, 1 peer(s); sent 3 (12 B), \
             received 0 (0 B), dropped 0, errors 0; last error: a peer went away (0 still connected)"
        );
    }
}
