//! The host's side of one node's context: its name, config, clock, logger and port bindings.
//!
//! Owns what the C callbacks in [`crate::ffi::host_api`] do, in safe Rust: every callback is a
//! thin shim over a method here. It does not own delivery (see [`crate::shm`]), topic policy
//! (see [`crate::topic`]) or scheduling.

use crate::shm::{InputWatch, Pinned, Publisher, SendError, Subscriber};
use horus_plugin_api::abi;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Counters of one port's topic endpoint, as the stats show them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicStats {
    /// The node's port.
    pub port: String,
    /// The topic (as other processes name it).
    pub topic: String,
    /// `output` or `input`.
    pub direction: String,
    /// Messages sent (output) or received (input).
    pub messages: u64,
    /// Payload bytes sent or received.
    pub bytes: u64,
    /// Input: messages overwritten before they were read. Output: sends refused because a
    /// reliable subscriber was full.
    pub dropped: u64,
    /// The last sequence number handled (sent or received), if any.
    pub last_sequence: Option<u64>,
    /// An input's queues — its ring's, then those of the rings it still drains after a live
    /// apply moved its topic —, so the scheduler can watch them for an input trigger (the only
    /// way it sees a `process` worker's and a Python node's). Carried from the executor to the
    /// scheduler only: the scheduler's snapshot of the node takes them out before the stats
    /// show the port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<crate::shm::InputPeer>,
}

/// What one port of a node is bound to.
#[derive(Debug)]
pub enum PortBinding {
    /// An output with its topic.
    Output(Publisher),
    /// An input with its connection's queue.
    Input(Subscriber),
    /// Declared by the node type but not connected: sends are accepted and go nowhere;
    /// receives find nothing.
    Unconnected {
        /// True for an output.
        output: bool,
        /// Messages sent to nowhere (outputs only).
        sent: u64,
    },
}

impl PortBinding {
    /// An input's (segment, peer entry): see [`NodeIo::input_peers`].
    pub fn input_peer(&self) -> Option<(String, usize)> {
        match self {
            PortBinding::Input(s) => Some((s.segment().shm_name().to_owned(), s.segment().peer_index())),
            _ => None,
        }
    }
}

/// The `abi::SEND_*` code of a refused send.
fn send_code(e: SendError) -> i32 {
    match e {
        // Every slot held by readers is back-pressure too: it passes when they let go.
        SendError::Full | SendError::Pinned => abi::SEND_FULL,
        SendError::TooLarge { .. } => abi::SEND_TOO_LARGE,
        SendError::LoanOpen | SendError::NoLoan => abi::SEND_LOAN_STATE,
        // The output was handed to the node's replacement (this instance was abandoned) or its
        // topic is corrupt: for this instance it is no output any more.
        SendError::Revoked | SendError::Corrupt => abi::SEND_BAD_PORT,
    }
}

/// A watch of `binding` if it is a connected input (see [`NodeIo::input_watches`]); logs why
/// not if it cannot be mapped.
pub fn watch_input(node: &str, port: &str, binding: &PortBinding) -> Option<InputWatch> {
    let PortBinding::Input(s) = binding else {
        return None;
    };
    s.watch()
        .map_err(
            |e| tracing::warn!(node = %node, port = %port, "cannot watch the input for its trigger: {e}"),
        )
        .ok()
}

/// A config value found by [`NodeIo::config_get`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigLookup<'a> {
    /// Not present.
    Missing,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(&'a str),
    /// An array or table, rendered as TOML.
    Other(&'a str),
}

/// Per-node host state; one per node instance, owned by the scheduler thread.
#[derive(Debug)]
pub struct NodeIo {
    name: String,
    port_names: Vec<String>,
    /// Whether non-error log lines are shown; shared with the executor that runs the node, so
    /// a live apply sets it in place ([`NodeIo::set_logging`]).
    logging: Arc<AtomicBool>,
    config: toml::Table,
    config_toml: String,
    /// TOML renderings of non-scalar config values, kept for the node's lifetime because the
    /// node may hold the returned string.
    rendered: Vec<(String, Box<str>)>,
    /// Configs replaced by a live apply ([`NodeIo::replace_config`]), kept for the node's
    /// lifetime like `rendered`: a string the old object was handed may still be read by it
    /// (its `shutdown` runs after the swap).
    replaced: Vec<(toml::Table, String)>,
    epoch: Instant,
    /// A clock fixed by `horus replay --node` ([`NodeIo::pin_clock`]): the recorded time of
    /// the tick being replayed, which [`now_ns`](NodeIo::now_ns) returns instead of the epoch's
    /// elapsed time. Never set in a live run.
    pinned: Option<u64>,
    ports: Vec<PortBinding>,
    /// Inputs whose topic a live apply moved to a new ring: each one's subscriber of the ring
    /// it left (`port`, subscriber), oldest first, read until it is empty and its publisher
    /// has switched to the next ring ([`NodeIo::rebind`]).
    draining: Vec<(String, Subscriber)>,
    /// The counts (sent, received, dropped) of endpoints a live apply released (a port
    /// disconnected or moved to another topic): the node's totals go on.
    released: (u64, u64, u64),
    current: Vec<u8>,
    /// Messages the node holds in place ([`NodeIo::recv_ref`]), by handle.
    held: Vec<(u64, Held)>,
    next_pin: u64,
    /// The memory lent for loans on unconnected outputs, by port: what is written there goes
    /// nowhere, like a send to such a port.
    idle_loans: Vec<(u32, Vec<u8>)>,
}

/// A message a node holds by [`NodeIo::recv_ref`].
#[derive(Debug)]
enum Held {
    /// In its topic's ring.
    InPlace(Pinned),
    /// A copy: a message of a ring a live apply moved the input away from, which is read
    /// through the port's receive buffer.
    Copied(Vec<u8>),
}

impl NodeIo {
    /// State for node `name` with its config and port bindings (indexed like the node type's
    /// ports). `epoch` is the scheduler's clock origin.
    pub fn new(
        name: String,
        logging: bool,
        config: toml::Table,
        port_names: Vec<String>,
        ports: Vec<PortBinding>,
        epoch: Instant,
    ) -> NodeIo {
        let config_toml = toml::to_string(&config).unwrap_or_default();
        NodeIo {
            name,
            port_names,
            logging: Arc::new(AtomicBool::new(logging)),
            config,
            config_toml,
            rendered: Vec::new(),
            replaced: Vec::new(),
            epoch,
            pinned: None,
            ports,
            draining: Vec::new(),
            released: (0, 0, 0),
            current: Vec::new(),
            held: Vec::new(),
            next_pin: 1,
            idle_loans: Vec::new(),
        }
    }

    /// A stand-in with this node's name, config and clock and every port unconnected, in the
    /// same order: what a hot reload's replaced generation keeps once the real endpoints moved
    /// on to the new code (its `shutdown` may log and read config; what it sends goes nowhere).
    pub fn detached(&self) -> NodeIo {
        let ports = self
            .port_order()
            .into_iter()
            .map(|(_, output)| PortBinding::Unconnected { output, sent: 0 })
            .collect();
        let mut io = NodeIo::new(
            self.name.clone(),
            false,
            self.config.clone(),
            self.port_names.clone(),
            ports,
            self.epoch,
        );
        io.logging = self.logging.clone();
        io
    }

    /// The flag that says whether the node's log lines are shown, to set it from elsewhere
    /// (see [`NodeIo::set_logging`]).
    pub fn logging_flag(&self) -> Arc<AtomicBool> {
        self.logging.clone()
    }

    /// Makes this node's logging follow `flag` (a node's endpoints bound afresh, for the
    /// executor that holds the flag).
    pub fn share_logging(&mut self, flag: Arc<AtomicBool>) {
        self.logging = flag;
    }

    /// Shows (or hides) the node's non-error log lines from now on: a live apply of
    /// `logging`, in place.
    pub fn set_logging(&self, on: bool) {
        self.logging.store(on, Ordering::Relaxed);
    }

    /// The ports, in their current order: each one's name and whether it is an output.
    pub fn port_order(&self) -> Vec<(String, bool)> {
        self.port_names
            .iter()
            .zip(&self.ports)
            .map(|(name, binding)| {
                let output = match binding {
                    PortBinding::Output(_) => true,
                    PortBinding::Input(_) => false,
                    PortBinding::Unconnected { output, .. } => *output,
                };
                (name.clone(), output)
            })
            .collect()
    }

    /// Puts the ports in `order` (a new generation's node type, hot reload): each binding moves
    /// to its port's new index, a port new in `order` is unconnected, and a port `order` lacks is
    /// kept after the others (never dropped: its endpoint and cursor belong to the host, and a
    /// rollback puts it back). Returns the previous order, which undoes this.
    pub fn arrange_ports(&mut self, order: &[(String, bool)]) -> Vec<(String, bool)> {
        let previous = self.port_order();
        let mut old: Vec<Option<PortBinding>> =
            std::mem::take(&mut self.ports).into_iter().map(Some).collect();
        let old_names = std::mem::take(&mut self.port_names);
        let mut names = Vec::with_capacity(order.len());
        let mut ports = Vec::with_capacity(order.len());
        for (name, output) in order {
            let found = old_names
                .iter()
                .position(|n| n == name)
                .and_then(|i| old[i].take());
            ports.push(found.unwrap_or(PortBinding::Unconnected {
                output: *output,
                sent: 0,
            }));
            names.push(name.clone());
        }
        for (name, binding) in old_names.into_iter().zip(old) {
            // An unconnected port holds no endpoint: nothing to keep.
            if let Some(binding) = binding.filter(|b| !matches!(b, PortBinding::Unconnected { .. })) {
                names.push(name);
                ports.push(binding);
            }
        }
        self.port_names = names;
        self.ports = ports;
        previous
    }

    /// Binds `port` to `binding` instead (a live apply that connects, disconnects or re-binds
    /// it); the endpoint it had goes once the new one has taken its place. False (and
    /// `binding` is dropped) when the node has no such port.
    ///
    /// An input re-bound on the same ring (its queue depth or `reliable` flag changed) reads
    /// on from where the old endpoint stopped ([`Subscriber::resume_from`]): the messages
    /// already queued for the node are neither lost nor read twice. One put back onto a ring it
    /// is still draining (an apply undone) reads on from there.
    ///
    /// `drain`: the input's topic moved to a new, larger ring (a live apply): the old
    /// subscriber stays, draining. [`recv`](Self::recv) reads it until it is empty and the
    /// publisher has switched — the topic is a Link, so once the new ring holds a message (or
    /// the old one has no publisher left) nothing more comes to the old one; after one more
    /// look it is dropped, its counts added to the new one's. So the port reads every message
    /// once, in order, however late the publisher switches.
    pub fn rebind(&mut self, port: &str, mut binding: PortBinding, drain: bool) -> bool {
        let Some(i) = self.port_names.iter().position(|n| n == port) else {
            return false;
        };
        let mut resumed = false;
        if let PortBinding::Input(new) = &mut binding {
            if let PortBinding::Input(old) = &self.ports[i] {
                resumed = new.resume_from(old);
            }
            if !resumed {
                if let Some(j) = (self.draining.iter()).position(|(p, old)| p == port && new.resume_from(old))
                {
                    // Back onto a ring it was draining: that endpoint's place is taken.
                    self.draining.remove(j);
                }
            }
        }
        match std::mem::replace(&mut self.ports[i], binding) {
            PortBinding::Input(old) if drain && !resumed => self.draining.push((port.to_owned(), old)),
            // Its counts went on with the new endpoint.
            PortBinding::Input(_) if resumed => {}
            PortBinding::Input(old) => {
                self.released.1 += old.messages_received();
                self.released.2 += old.dropped();
            }
            PortBinding::Output(old) => self.released.0 += old.messages_sent(),
            PortBinding::Unconnected { sent, .. } => self.released.0 += sent,
        }
        true
    }

    /// A message from the oldest ring input `port` is draining, copied into `current`: true,
    /// or false when it has none (drained rings are dropped on the way, see
    /// [`rebind`](Self::rebind)).
    fn drain(&mut self, port: usize) -> bool {
        let Some(name) = self.port_names.get(port) else {
            return false;
        };
        loop {
            let Some(i) = self.draining.iter().position(|(p, _)| p == name) else {
                return false;
            };
            if self.draining[i].1.try_recv(&mut self.current).is_some() {
                return true;
            }
            // Empty. Has the publisher switched to the next ring (or left)? Then it wrote its
            // last message to this one before, and one more look sees it.
            let next = match self.draining[i + 1..].iter().find(|(p, _)| p == name) {
                Some((_, s)) => Some(s),
                None => match &self.ports[port] {
                    PortBinding::Input(s) => Some(s),
                    _ => None,
                },
            };
            let switched = next.is_none_or(|s| s.pending() > 0) || !self.draining[i].1.has_publisher();
            if self.draining[i].1.try_recv(&mut self.current).is_some() {
                return true;
            }
            if !switched {
                return false;
            }
            let (_, old) = self.draining.remove(i);
            let next = match self.draining[i..].iter_mut().find(|(p, _)| p == name) {
                Some((_, s)) => Some(s),
                None => match &mut self.ports[port] {
                    PortBinding::Input(s) => Some(s),
                    _ => None,
                },
            };
            if let Some(next) = next {
                next.add_counts(&old);
            }
            tracing::debug!(node = %self.name, port = %name, topic = %old.segment().topic(), "live apply: the input's old ring is drained and released");
        }
    }
    /// True when the node has a port named `port`.
    pub fn has_port(&self, port: &str) -> bool {
        self.port_names.iter().any(|n| n == port)
    }

    /// Takes every output's Link back from whoever took it over (a node that moved to another
    /// executor and moved back, [`crate::shm::Publisher::take_over`]).
    pub fn take_over_outputs(&mut self) {
        for p in &mut self.ports {
            if let PortBinding::Output(p) = p {
                p.take_over();
            }
        }
    }

    /// Takes the input endpoints out (unconnected in their place), in port order; the
    /// others are left.
    pub fn take_inputs(&mut self) -> Vec<PortBinding> {
        self.ports
            .iter_mut()
            .filter(|p| matches!(p, PortBinding::Input(_)))
            .map(|p| {
                std::mem::replace(
                    p,
                    PortBinding::Unconnected {
                        output: false,
                        sent: 0,
                    },
                )
            })
            .collect()
    }

    /// Each input's next sequence (`None` for outputs and unconnected ports), in port order:
    /// where the node stopped reading, for the executor it moves to.
    pub fn input_cursors(&self) -> Vec<Option<u64>> {
        self.ports
            .iter()
            .map(|p| match p {
                PortBinding::Input(s) => Some(s.cursor()),
                _ => None,
            })
            .collect()
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The config table.
    pub fn config(&self) -> &toml::Table {
        &self.config
    }

    /// Replaces the config (a live apply of a changed `config`, before the new object's
    /// `create`); returns the one it had. The old table and its TOML stay alive with this
    /// `NodeIo`, so nothing handed out from them dangles.
    pub fn replace_config(&mut self, config: toml::Table) -> toml::Table {
        let config_toml = toml::to_string(&config).unwrap_or_default();
        let old = std::mem::replace(&mut self.config, config);
        let old_toml = std::mem::replace(&mut self.config_toml, config_toml);
        self.replaced.push((old.clone(), old_toml));
        old
    }

    /// The whole config table as TOML.
    pub fn config_toml(&self) -> &str {
        &self.config_toml
    }

    /// Nanoseconds since the scheduler's epoch, or the pinned time ([`pin_clock`](Self::pin_clock)).
    pub fn now_ns(&self) -> u64 {
        match self.pinned {
            Some(ns) => ns,
            None => self.epoch.elapsed().as_nanos() as u64,
        }
    }

    /// Fixes the node's clock at `ns` (since the scheduler's epoch) until the next call; `None`
    /// lets it run again. Only `horus replay --node` pins it: each replayed tick reads the
    /// recorded tick's start, however long the replay takes (see [`crate::rerun`]).
    pub fn pin_clock(&mut self, ns: Option<u64>) {
        self.pinned = ns;
    }

    /// Sets the clock origin (the scheduler's start).
    pub fn set_epoch(&mut self, epoch: Instant) {
        self.epoch = epoch;
    }

    /// Logs a node's message under its name. With `logging = false` only errors are shown.
    pub fn log(&self, level: u32, msg: &str) {
        let node = self.name.as_str();
        match level {
            abi::LOG_ERROR => tracing::error!(target: "horus::node", node, "{msg}"),
            _ if !self.logging.load(Ordering::Relaxed) => {}
            abi::LOG_WARN => tracing::warn!(target: "horus::node", node, "{msg}"),
            abi::LOG_INFO => tracing::info!(target: "horus::node", node, "{msg}"),
            abi::LOG_DEBUG => tracing::debug!(target: "horus::node", node, "{msg}"),
            _ => tracing::trace!(target: "horus::node", node, "{msg}"),
        }
    }

    /// Looks up `key` (dotted for nested tables) in the config.
    pub fn config_get(&mut self, key: &str) -> ConfigLookup<'_> {
        let rendering = match lookup(&self.config, key) {
            None => return ConfigLookup::Missing,
            Some(toml::Value::Boolean(b)) => return ConfigLookup::Bool(*b),
            Some(toml::Value::Integer(i)) => return ConfigLookup::Int(*i),
            Some(toml::Value::Float(f)) => return ConfigLookup::Float(*f),
            Some(toml::Value::String(_)) => None,
            Some(other) => Some(other.to_string()),
        };
        match rendering {
            None => match lookup(&self.config, key) {
                Some(toml::Value::String(s)) => ConfigLookup::Str(s),
                _ => ConfigLookup::Missing,
            },
            Some(text) => {
                // The same key may render differently after a config change (a live apply).
                let index = match self.rendered.iter().position(|(k, t)| k == key && **t == *text) {
                    Some(i) => i,
                    None => {
                        self.rendered.push((key.to_owned(), text.into_boxed_str()));
                        self.rendered.len() - 1
                    }
                };
                ConfigLookup::Other(&self.rendered[index].1)
            }
        }
    }

    /// Publishes on output `port`; returns an `abi::SEND_*` code.
    pub fn send(&mut self, port: u32, bytes: &[u8]) -> i32 {
        match self.ports.get_mut(port as usize) {
            Some(PortBinding::Output(p)) => match p.send(bytes) {
                Ok(()) => abi::SEND_OK,
                Err(e) => send_code(e),
            },
            Some(PortBinding::Unconnected { output: true, sent }) => {
                *sent += 1;
                abi::SEND_OK
            }
            _ => abi::SEND_BAD_PORT,
        }
    }

    /// Takes the next message of input `port`; the bytes stay valid until the next call.
    pub fn recv(&mut self, port: u32) -> Result<Option<&[u8]>, i32> {
        if !self.draining.is_empty() && self.drain(port as usize) {
            return Ok(Some(&self.current));
        }
        match self.ports.get_mut(port as usize) {
            Some(PortBinding::Input(s)) => {
                if s.try_recv(&mut self.current).is_some() {
                    Ok(Some(&self.current))
                } else {
                    Ok(None)
                }
            }
            Some(PortBinding::Unconnected { output: false, .. }) => Ok(None),
            _ => Err(abi::RECV_BAD_PORT),
        }
    }

    /// Lends `len` bytes of output `port`'s next message, in place in the topic's ring (see
    /// [`Publisher::loan`]); an `abi::SEND_*` code when refused.
    pub fn loan(&mut self, port: u32, len: usize) -> Result<&mut [u8], i32> {
        match self.ports.get_mut(port as usize) {
            Some(PortBinding::Output(p)) => {
                let max = p.segment().slot_size() as usize;
                if len > max {
                    return Err(abi::SEND_TOO_LARGE);
                }
                p.loan().map_err(send_code)?;
                let bytes = p.loan_bytes().expect("a loan was just opened");
                Ok(&mut bytes[..len])
            }
            Some(PortBinding::Unconnected { output: true, .. }) => {
                if self.idle_loans.iter().any(|(p, _)| *p == port) {
                    return Err(abi::SEND_LOAN_STATE);
                }
                self.idle_loans.push((port, vec![0; len]));
                Ok(&mut self.idle_loans.last_mut().expect("pushed").1)
            }
            _ => Err(abi::SEND_BAD_PORT),
        }
    }

    /// Publishes the first `len` bytes of output `port`'s loan, or discards it
    /// (`abi::LOAN_DISCARD`); an `abi::SEND_*` code.
    pub fn close_loan(&mut self, port: u32, len: usize) -> i32 {
        match self.ports.get_mut(port as usize) {
            Some(PortBinding::Output(p)) if len == abi::LOAN_DISCARD => {
                if !p.has_loan() {
                    return abi::SEND_LOAN_STATE;
                }
                p.discard_loan();
                abi::SEND_OK
            }
            Some(PortBinding::Output(p)) => match p.send_loan(len) {
                Ok(()) => abi::SEND_OK,
                Err(e) => send_code(e),
            },
            Some(PortBinding::Unconnected { output: true, sent }) => {
                let Some(i) = self.idle_loans.iter().position(|(p, _)| *p == port) else {
                    return abi::SEND_LOAN_STATE;
                };
                let (_, bytes) = self.idle_loans.swap_remove(i);
                if len == abi::LOAN_DISCARD {
                    return abi::SEND_OK;
                }
                if len > bytes.len() {
                    return abi::SEND_TOO_LARGE;
                }
                *sent += 1;
                abi::SEND_OK
            }
            _ => abi::SEND_BAD_PORT,
        }
    }

    /// Discards the loans a node call left open (a node that leaked its loan guard): readers
    /// wait at an open loan, so none outlives the call that opened it.
    pub fn end_call(&mut self) {
        self.idle_loans.clear();
        for (binding, name) in self.ports.iter_mut().zip(&self.port_names) {
            if let PortBinding::Output(p) = binding {
                if p.has_loan() {
                    p.discard_loan();
                    tracing::warn!(node = %self.name, port = %name, "a loaned message was left open when the node's call returned: discarded (send it, or drop its guard, within the call)");
                }
            }
        }
    }

    /// Takes the next message of input `port` without copying it: its bytes and the handle
    /// that [`release_ref`](Self::release_ref) takes. The bytes stay valid and unchanged
    /// until then (or until this `NodeIo` is dropped). `Err` is an `abi::RECV_*` code.
    pub fn recv_ref(&mut self, port: u32) -> Result<Option<(&[u8], u64)>, i32> {
        let pin = self.next_pin;
        if !self.draining.is_empty() && self.drain(port as usize) {
            self.next_pin += 1;
            self.held.push((pin, Held::Copied(self.current.clone())));
        } else {
            match self.ports.get_mut(port as usize) {
                Some(PortBinding::Input(s)) => match s.try_recv_pinned() {
                    Ok(Some((pinned, _))) => {
                        self.next_pin += 1;
                        self.held.push((pin, Held::InPlace(pinned)));
                    }
                    Ok(None) => return Ok(None),
                    Err(_) => return Err(abi::RECV_HELD),
                },
                Some(PortBinding::Unconnected { output: false, .. }) => return Ok(None),
                _ => return Err(abi::RECV_BAD_PORT),
            }
        }
        let bytes = match &self.held.last().expect("pushed").1 {
            Held::InPlace(p) => p.bytes(),
            Held::Copied(v) => v,
        };
        Ok(Some((bytes, pin)))
    }

    /// Releases a message taken by [`recv_ref`](Self::recv_ref); an unknown handle is ignored.
    pub fn release_ref(&mut self, pin: u64) {
        if let Some(i) = self.held.iter().position(|(p, _)| *p == pin) {
            self.held.swap_remove(i);
        }
    }

    /// Messages the node holds in place now.
    pub fn held_refs(&self) -> usize {
        self.held.len()
    }

    /// A watch of every connected input, by port name, for the scheduler thread to see its
    /// messages and sleep on them ([`crate::shm::InputWatch`], an input trigger). An input whose
    /// watch cannot be mapped is left out, with a warning: an input trigger then notices its
    /// messages only with other input or its timeout.
    pub fn input_watches(&self) -> Vec<(String, InputWatch)> {
        self.ports
            .iter()
            .zip(&self.port_names)
            .filter_map(|(binding, name)| Some((name.clone(), watch_input(&self.name, name, binding)?)))
            .collect()
    }

    /// Messages waiting in the node's input queues.
    pub fn pending_input(&self) -> usize {
        let pending = |p: &PortBinding| {
            if let PortBinding::Input(s) = p {
                s.pending() as usize
            } else {
                0
            }
        };
        let draining: usize = self.draining.iter().map(|(_, s)| s.pending() as usize).sum();
        self.ports.iter().map(pending).sum::<usize>() + draining
    }

    /// The counts of the rings input `port` is still draining: (messages, bytes, dropped).
    fn drained(&self, port: &str) -> (u64, u64, u64) {
        self.draining
            .iter()
            .filter(|(p, _)| p == port)
            .fold((0, 0, 0), |(m, b, d), (_, s)| {
                (m + s.messages_received(), b + s.bytes_received(), d + s.dropped())
            })
    }

    /// Each input's port and (segment, peer entry), so the host can release a reliable input
    /// whose node it abandons.
    pub fn input_peers(&self) -> Vec<(String, (String, usize))> {
        self.port_names
            .iter()
            .zip(&self.ports)
            .filter_map(|(name, p)| p.input_peer().map(|peer| (name.clone(), peer)))
            .collect()
    }

    /// Per-port topic counters (connected ports only).
    pub fn topic_stats(&self) -> Vec<TopicStats> {
        self.ports
            .iter()
            .zip(&self.port_names)
            .filter_map(|(p, name)| match p {
                PortBinding::Output(p) => Some(TopicStats {
                    port: name.clone(),
                    topic: p.segment().topic().to_owned(),
                    direction: "output".into(),
                    messages: p.messages_sent(),
                    bytes: p.bytes_sent(),
                    dropped: p.refused(),
                    last_sequence: p.last_sequence(),
                    watch: Vec::new(),
                }),
                PortBinding::Input(s) => {
                    let (messages, bytes, dropped) = self.drained(name);
                    Some(TopicStats {
                        port: name.clone(),
                        topic: s.segment().topic().to_owned(),
                        direction: "input".into(),
                        messages: s.messages_received() + messages,
                        bytes: s.bytes_received() + bytes,
                        dropped: s.dropped() + dropped,
                        last_sequence: s.last_sequence(),
                        watch: std::iter::once(s)
                            .chain(self.draining.iter().filter(|(p, _)| p == name).map(|(_, d)| d))
                            .map(Subscriber::input_peer)
                            .collect(),
                    })
                }
                PortBinding::Unconnected { .. } => None,
            })
            .collect()
    }

    /// Totals over the node's ports: (messages sent, messages received, dropped).
    pub fn message_totals(&self) -> (u64, u64, u64) {
        let mut totals = self.released;
        for p in &self.ports {
            match p {
                PortBinding::Output(p) => totals.0 += p.messages_sent(),
                PortBinding::Input(s) => {
                    totals.1 += s.messages_received();
                    totals.2 += s.dropped();
                }
                PortBinding::Unconnected { sent, .. } => totals.0 += sent,
            }
        }
        for (_, s) in &self.draining {
            totals.1 += s.messages_received();
            totals.2 += s.dropped();
        }
        totals
    }
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut value: Option<&toml::Value> = None;
    let mut t = Some(table);
    for part in key.split('.') {
        value = t.and_then(|t| t.get(part));
        t = value.and_then(toml::Value::as_table);
    }
    value
}

#[cfg(test)]
mod tests {
    #[test]
    fn arranging_ports_moves_bindings_by_name_and_undoes() {
        let mut io = NodeIo::new(
            "n".into(),
            false,
            toml::Table::new(),
            vec!["a".into(), "b".into()],
            vec![
                PortBinding::Unconnected {
                    output: true,
                    sent: 3,
                },
                PortBinding::Unconnected {
                    output: false,
                    sent: 0,
                },
            ],
            Instant::now(),
        );
        let before = io.port_order();
        let undo = io.arrange_ports(&[("new".into(), true), ("b".into(), false), ("a".into(), true)]);
        assert_eq!(undo, before);
        assert_eq!(
            io.port_order(),
            vec![("new".into(), true), ("b".into(), false), ("a".into(), true)]
        );
        assert!(
            matches!(io.ports[2], PortBinding::Unconnected { sent: 3, .. }),
            "a's binding moved with it"
        );
        io.arrange_ports(&undo);
        assert_eq!(io.port_order(), before);
        assert!(matches!(io.ports[0], PortBinding::Unconnected { sent: 3, .. }));
    }

    use super::*;
    use crate::shm::{self, TopicSpec};

    fn io(config: &str, ports: Vec<PortBinding>) -> NodeIo {
        let names = (0..ports.len()).map(|i| format!("p{i}")).collect();
        NodeIo::new(
            "n".into(),
            true,
            config.parse().unwrap(),
            names,
            ports,
            Instant::now(),
        )
    }

    #[test]
    fn a_pinned_clock_reads_the_same_until_it_is_let_go() {
        let mut io = io("", vec![]);
        io.pin_clock(Some(1_234));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(io.now_ns(), 1_234);
        io.pin_clock(None);
        assert!(io.now_ns() >= 2_000_000, "the epoch's clock again");
    }

    #[test]
    fn config_lookup_by_dotted_key() {
        let mut io = io(
            "rate = 5\ngain = 0.5\nname = \"x\"\non = true\n[pid]\nkp = 2.0\n",
            vec![],
        );
        assert_eq!(io.config_get("rate"), ConfigLookup::Int(5));
        assert_eq!(io.config_get("gain"), ConfigLookup::Float(0.5));
        assert_eq!(io.config_get("name"), ConfigLookup::Str("x"));
        assert_eq!(io.config_get("on"), ConfigLookup::Bool(true));
        assert_eq!(io.config_get("pid.kp"), ConfigLookup::Float(2.0));
        assert_eq!(io.config_get("pid.ki"), ConfigLookup::Missing);
        assert_eq!(io.config_get("missing"), ConfigLookup::Missing);
        assert_eq!(io.config_get("pid"), ConfigLookup::Other("{ kp = 2.0 }"));
    }

    #[test]
    fn send_recv_through_bindings() {
        let ns = format!("io{}", std::process::id());
        let spec = TopicSpec {
            topic: "a.out".into(),
            type_name: "bytes".into(),
            type_hash: 0,
            slot_size: 8,
            capacity: 4,
            single_producer: true,
        };
        let sub = shm::subscriber(&ns, &spec, 4, false).unwrap();
        let publ = shm::publisher(&ns, &spec).unwrap();
        let mut a = io("", vec![PortBinding::Output(publ)]);
        let mut b = io(
            "",
            vec![
                PortBinding::Input(sub),
                PortBinding::Unconnected {
                    output: true,
                    sent: 0,
                },
            ],
        );
        assert_eq!(a.send(0, b"hi"), abi::SEND_OK);
        assert_eq!(a.send(0, b"too large!"), abi::SEND_TOO_LARGE);
        assert_eq!(a.send(1, b"hi"), abi::SEND_BAD_PORT);
        assert_eq!(b.pending_input(), 1);
        assert_eq!(b.recv(0), Ok(Some(&b"hi"[..])));
        assert_eq!(b.recv(0), Ok(None));
        assert_eq!(b.recv(1), Err(abi::RECV_BAD_PORT));
        assert_eq!(b.send(1, b"x"), abi::SEND_OK);
        assert_eq!(a.message_totals(), (1, 0, 0));
        assert_eq!(b.message_totals(), (1, 1, 0));
        let stats = b.topic_stats();
        assert_eq!(stats.len(), 1);
        assert_eq!(
            (stats[0].topic.as_str(), stats[0].messages, stats[0].last_sequence),
            ("a.out", 1, Some(0))
        );
    }

    /// Issue #16: an input whose topic moved to a new ring reads the old ring's messages
    /// first, then the new one's, every one once and in order, whether the publisher switches
    /// while messages wait in the old ring or leaves without writing to the new one; the old
    /// ring goes once drained, and an apply undone puts the input back where it stopped.
    #[test]
    fn a_moved_input_drains_its_old_ring_first() {
        let ns = format!("io{}-drain", std::process::id());
        let spec = |topic: &str, capacity| TopicSpec {
            topic: topic.into(),
            type_name: "u64".into(),
            type_hash: 0,
            slot_size: 8,
            capacity,
            single_producer: true,
        };
        let (small, large) = (spec("a.out", 4), spec("a.out~2", 16));
        let exists = |s: &TopicSpec| {
            std::path::Path::new(&format!("/dev/shm{}", shm::shm_name(&ns, &s.topic))).exists()
        };
        let mut old_pub = shm::publisher(&ns, &small).unwrap();
        let mut b = io(
            "",
            vec![PortBinding::Input(shm::subscriber(&ns, &small, 4, true).unwrap())],
        );
        let got = |b: &mut NodeIo| -> Vec<u64> {
            std::iter::from_fn(|| {
                b.recv(0)
                    .unwrap()
                    .map(|m| u64::from_le_bytes(m.try_into().unwrap()))
            })
            .collect()
        };
        for i in 0..3u64 {
            old_pub.send(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(b.recv(0).unwrap(), Some(&0u64.to_le_bytes()[..]));
        // The new ring's subscriber, attached before its publisher (as the applier does).
        let new_sub = shm::subscriber(&ns, &large, 16, true).unwrap();
        assert!(b.rebind("p0", PortBinding::Input(new_sub), true));
        let mut new_pub = shm::publisher(&ns, &large).unwrap();
        old_pub.send(&3u64.to_le_bytes()).unwrap();
        assert_eq!(
            got(&mut b),
            vec![1, 2, 3],
            "the old ring, while the publisher is on it"
        );
        for i in 4..6u64 {
            new_pub.send(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(b.pending_input(), 2);
        assert_eq!(got(&mut b), vec![4, 5], "then the new one");
        assert!(
            b.draining.is_empty(),
            "the old ring's subscriber is dropped once drained"
        );
        assert_eq!(b.message_totals(), (0, 6, 0), "the counts go on");
        drop(old_pub);
        assert!(!exists(&small), "the old ring's last endpoint removed it");

        // A publisher that leaves without writing to the new ring: drained all the same.
        let mut next_pub = shm::publisher(&ns, &spec("a.out~3", 32)).unwrap();
        let next_sub = shm::subscriber(&ns, &spec("a.out~3", 32), 32, true).unwrap();
        assert!(b.rebind("p0", PortBinding::Input(next_sub), true));
        new_pub.send(&6u64.to_le_bytes()).unwrap();
        drop(new_pub);
        assert_eq!(b.pending_input(), 1);
        assert_eq!(got(&mut b), vec![6]);
        assert!(b.draining.is_empty());
        assert!(!exists(&large));

        // Undone: moved on, then put back onto the ring it still drains, where it stopped.
        let next = spec("a.out~3", 32);
        let undone = spec("a.out~4", 64);
        next_pub.send(&7u64.to_le_bytes()).unwrap();
        next_pub.send(&8u64.to_le_bytes()).unwrap();
        assert_eq!(b.recv(0).unwrap(), Some(&7u64.to_le_bytes()[..]));
        let moved_sub = shm::subscriber(&ns, &undone, 64, true).unwrap();
        assert!(b.rebind("p0", PortBinding::Input(moved_sub), true));
        let back = shm::subscriber(&ns, &next, 32, true).unwrap();
        assert!(b.rebind("p0", PortBinding::Input(back), false));
        assert!(b.draining.is_empty(), "back on the ring it drained");
        assert!(!exists(&undone), "the new ring went with its endpoint");
        assert_eq!(got(&mut b), vec![8]);
        assert!(!b.rebind(
            "nope",
            PortBinding::Unconnected {
                output: false,
                sent: 0
            },
            false
        ));
    }
}
