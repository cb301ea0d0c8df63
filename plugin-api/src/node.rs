//! The safe face of a node: the [`Node`] trait, its [`Context`] and its error type.
//!
//! Owns what a plugin author sees. It does not own the C entry points (see [`crate::export`]) or
//! the host's side of the context (the host's `ffi` module).

use crate::abi::{self, ConfigValue, NodeContext, PortDesc, RawSlice};
use crate::config::ConfigKey;
use crate::loan::{BytesRef, Loan, LoanBytes, Ref};
use crate::message::{CodecError, Message, Pod, Port};
use std::fmt;
use std::time::Duration;

/// An error returned by a node. Any `std::error::Error` converts into it, so `?` works in node
/// code; plain messages convert from `&str` and `String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeError {
    message: String,
}

impl NodeError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> NodeError {
        NodeError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for NodeError {
    fn from(e: E) -> NodeError {
        NodeError::new(e.to_string())
    }
}

/// What every lifecycle hook returns.
pub type NodeResult = Result<(), NodeError>;

/// A node: the unit the scheduler runs.
///
/// # Lifecycle
/// All hooks run on a scheduler thread of the host, never two at once for one node. None may
/// block for long: a slow hook delays every node scheduled after it in the cycle.
/// - [`create`](Node::create): once, to build the node from its context (name, config). Validate
///   the config here and return an error that names the key.
/// - [`init`](Node::init): once, after `create` and before the first tick.
/// - [`tick`](Node::tick): once per scheduled cycle. Must be fast. An `Err` or a panic counts as a
///   failure in the node's stats; the host keeps running.
/// - [`shutdown`](Node::shutdown): once when the scheduler stops. Release external resources.
/// - [`save_state`](Node::save_state) / [`restore_state`](Node::restore_state): hot reload hands
///   state from the old build to the new as bytes.
///
/// A node must not keep threads of its own running after it is dropped: the host unloads the
/// plugin's code once every node of it is gone.
pub trait Node: Sized + 'static {
    /// The node type's ports. The manifest's `[[connect]]` entries name them.
    const PORTS: &'static [Port] = &[];

    /// The keys the node's `config` table accepts ([`ConfigKey`]): `horus check` and `horus
    /// run` refuse a manifest whose `config` has an unknown key, a value of the wrong type or
    /// lacks a required key, and the `config_*` getters return a declared default when the key
    /// is absent. Empty (the default): the type declares no schema and its `config` is not
    /// checked.
    const CONFIG: &'static [ConfigKey] = &[];

    /// Whether the host checks the node's `config` against [`Node::CONFIG`]. True when
    /// `CONFIG` declares a key; set it to `true` for a type that takes no config keys at all,
    /// so that any key in its `config` is reported.
    const CONFIG_CHECKED: bool = !Self::CONFIG.is_empty();

    /// Builds the node.
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError>;

    /// Prepares for the first tick.
    fn init(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        Ok(())
    }

    /// Does one cycle of work.
    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult;

    /// Cleans up before the node is dropped.
    fn shutdown(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        Ok(())
    }

    /// The state to hand to a new build of this node on hot reload. Default: none.
    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        Ok(Vec::new())
    }

    /// Takes over the state saved by an old build. Return an error to refuse it (the host then
    /// keeps the old build running). Default: accepts and ignores it.
    fn restore_state(&mut self, _state: &[u8]) -> NodeResult {
        Ok(())
    }
}

/// A config key has the wrong type, e.g. `step = "2"` where an integer is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key as asked for.
    pub key: String,
    /// What the node expected ("an integer").
    pub expected: &'static str,
    /// What the manifest has ("a string").
    pub found: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config `{}` must be {} (the manifest has {})",
            self.key, self.expected, self.found
        )
    }
}

impl std::error::Error for ConfigError {}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        abi::CONFIG_BOOL => "a boolean",
        abi::CONFIG_INT => "an integer",
        abi::CONFIG_FLOAT => "a float",
        abi::CONFIG_STRING => "a string",
        abi::CONFIG_OTHER => "an array, table or date",
        _ => "nothing",
    }
}

/// An error from [`Context::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The node type declares no output port with this name. The message lists the output
    /// ports it does declare, with the closest one if the name looks like a typo.
    UnknownPort {
        /// The name passed to `send`.
        port: String,
        /// The node type's output ports, in declaration order.
        declared: Vec<&'static str>,
        /// True when the node type has an *input* port of this name (read it with `recv`).
        other_direction: bool,
    },
    /// The port carries another message type.
    WrongType {
        /// The port.
        port: String,
        /// Its declared type.
        expected: &'static str,
        /// The type passed to `send`.
        got: &'static str,
    },
    /// A `reliable` topic is full: the message was not sent. Retry on a later tick.
    Full(String),
    /// The message is larger than the topic's slot size (topics with fixed-size slots only;
    /// in-process topics take any size).
    TooLarge(String),
    /// The message could not be encoded.
    Codec(CodecError),
    /// The port has an open loan ([`Context::loan`]): send or drop it before sending or
    /// loaning again.
    LoanOpen(String),
    /// The host returned a code this SDK does not know.
    Host(String, i32),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UnknownPort {
                port,
                declared,
                other_direction,
            } => unknown_port(
                f,
                port,
                "output",
                declared,
                other_direction.then_some("input port: `recv` it"),
            ),
            SendError::WrongType { port, expected, got } => {
                write!(f, "port `{port}` carries `{expected}`, not `{got}`")
            }
            SendError::Full(p) => write!(f, "topic of port `{p}` is full (reliable QoS back-pressure)"),
            SendError::TooLarge(p) => write!(f, "message too large for the topic of port `{p}`"),
            SendError::Codec(e) => e.fmt(f),
            SendError::LoanOpen(p) => write!(
                f,
                "port `{p}` has an open loan: send it or drop it before sending or loaning again"
            ),
            SendError::Host(p, c) => write!(f, "host refused a message on port `{p}` (code {c})"),
        }
    }
}

impl std::error::Error for SendError {}

/// An error from [`Context::recv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvError {
    /// The node type declares no input port with this name. The message lists the input ports it
    /// does declare, with the closest one if the name looks like a typo.
    UnknownPort {
        /// The name passed to `recv`.
        port: String,
        /// The node type's input ports, in declaration order.
        declared: Vec<&'static str>,
        /// True when the node type has an *output* port of this name (write it with `send`).
        other_direction: bool,
    },
    /// The port carries another message type.
    WrongType {
        /// The port.
        port: String,
        /// Its declared type.
        expected: &'static str,
        /// The type asked for.
        got: &'static str,
    },
    /// The received bytes do not decode as the port's type.
    Codec(CodecError),
    /// The node already holds as many messages of this input in place ([`Context::recv_ref`])
    /// as it may: half the topic's ring, so its publishers keep free slots. Drop a guard
    /// first, or give the topic a larger depth.
    Held(String),
    /// The host returned a code this SDK does not know.
    Host(String, i32),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::UnknownPort {
                port,
                declared,
                other_direction,
            } => unknown_port(
                f,
                port,
                "input",
                declared,
                other_direction.then_some("output port: `send` to it"),
            ),
            RecvError::WrongType { port, expected, got } => {
                write!(f, "port `{port}` carries `{expected}`, not `{got}`")
            }
            RecvError::Codec(e) => e.fmt(f),
            RecvError::Held(p) => write!(
                f,
                "input `{p}`: this node already holds as many messages in place as it may (half the topic's ring); drop a borrowed message first, or give the topic a larger depth"
            ),
            RecvError::Host(p, c) => write!(f, "host failed to receive on port `{p}` (code {c})"),
        }
    }
}

impl std::error::Error for RecvError {}

/// The text of an unknown port: the ports of that direction the node declares, the closest one
/// if the name looks like a typo, or that the name is a port of the other direction.
fn unknown_port(
    f: &mut fmt::Formatter<'_>,
    port: &str,
    direction: &str,
    declared: &[&str],
    other_direction: Option<&str>,
) -> fmt::Result {
    write!(f, "no {direction} port `{port}`")?;
    if let Some(other) = other_direction {
        write!(f, " (`{port}` is an {other})")?;
    }
    if declared.is_empty() {
        write!(f, "; this node type declares no {direction} ports")?;
    } else {
        let list: Vec<String> = declared.iter().map(|p| format!("`{p}`")).collect();
        write!(f, "; its {direction} ports: {}", list.join(", "))?;
        if let Some(close) = closest(port, declared) {
            write!(f, "; did you mean `{close}`?")?;
        }
    }
    if other_direction.is_none() {
        write!(f, " (declare new ports in Node::PORTS)")?;
    }
    Ok(())
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo (the host's
/// rule for did-you-mean: at most 2 edits, or a third of the candidate's length).
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters (port names are short: a row at a time is plenty).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A node's window on the host during one call: its name, config, clock, logger and ports.
pub struct Context<'a> {
    raw: &'a NodeContext,
    ports: &'static [Port],
    config: &'static [ConfigKey],
    scratch: &'a mut Vec<u8>,
}

impl<'a> Context<'a> {
    /// Wraps the host's context. Used by the export glue and the test harness.
    ///
    /// # Safety
    /// `raw.api` must point at a valid [`abi::HostApi`] whose functions accept `raw.host`, for
    /// the lifetime `'a`.
    pub(crate) unsafe fn new(
        raw: &'a NodeContext,
        ports: &'static [Port],
        config: &'static [ConfigKey],
        scratch: &'a mut Vec<u8>,
    ) -> Self {
        Context {
            raw,
            ports,
            config,
            scratch,
        }
    }

    fn api(&self) -> &abi::HostApi {
        // SAFETY: `Context::new`'s contract: `api` is valid for `'a`.
        unsafe { &*self.raw.api }
    }

    /// The node's instance name from the manifest.
    pub fn name(&self) -> &str {
        // SAFETY: the host function is valid (contract of `new`) and returns a UTF-8 slice that
        // stays valid while the node exists; `&self` bounds our borrow well within that.
        unsafe {
            let s = (self.api().node_name)(self.raw.host);
            slice_to_str(s)
        }
    }

    /// Time since the scheduler started, on the host's monotonic clock. In `tick` it is the
    /// tick's time (when the scheduler started the node's tick) and does not move during the
    /// tick, so a recording of the run can give a re-run the same clock; elsewhere it is the
    /// moment of the call. To time work inside a tick, use `std::time::Instant`.
    pub fn now(&self) -> Duration {
        // SAFETY: valid host function and pointer (contract of `new`).
        let ns = unsafe { (self.api().now_ns)(self.raw.host) };
        Duration::from_nanos(ns)
    }

    fn log(&self, level: u32, msg: &dyn fmt::Display) {
        let text = msg.to_string();
        // SAFETY: valid host function and pointer; `text` outlives the call.
        unsafe { (self.api().log)(self.raw.host, level, RawSlice::from_str(&text)) }
    }

    /// Logs at ERROR under the node's name (only when something was lost).
    pub fn error(&self, msg: impl fmt::Display) {
        self.log(abi::LOG_ERROR, &msg)
    }

    /// Logs at WARN under the node's name.
    pub fn warn(&self, msg: impl fmt::Display) {
        self.log(abi::LOG_WARN, &msg)
    }

    /// Logs at INFO under the node's name.
    pub fn info(&self, msg: impl fmt::Display) {
        self.log(abi::LOG_INFO, &msg)
    }

    /// Logs at DEBUG under the node's name.
    pub fn debug(&self, msg: impl fmt::Display) {
        self.log(abi::LOG_DEBUG, &msg)
    }

    /// Logs at TRACE under the node's name (per-tick detail).
    pub fn trace(&self, msg: impl fmt::Display) {
        self.log(abi::LOG_TRACE, &msg)
    }

    fn config_value(&self, key: &str) -> ConfigValue {
        let mut out = ConfigValue {
            kind: abi::CONFIG_MISSING,
            reserved: 0,
            int: 0,
            float: 0.0,
            text: RawSlice::EMPTY,
        };
        // SAFETY: valid host function and pointer; `key` outlives the call and `out` is a
        // valid, initialised `ConfigValue`.
        unsafe { (self.api().config_get)(self.raw.host, RawSlice::from_str(key), &mut out) };
        out
    }

    fn config_typed<T>(
        &self,
        key: &str,
        expected: &'static str,
        pick: impl FnOnce(&ConfigValue) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let mut v = self.config_value(key);
        if v.kind == abi::CONFIG_MISSING {
            // The declared default, if any (its type matches the key's: the builders check it).
            match self.config.iter().find(|k| k.name() == key) {
                Some(k) if k.default_value().kind != abi::CONFIG_MISSING => v = k.default_value(),
                _ => return Ok(None),
            }
        }
        pick(&v).map(Some).ok_or_else(|| ConfigError {
            key: key.to_owned(),
            expected,
            found: kind_name(v.kind),
        })
    }

    /// A number from the node's `config` table (an integer converts). `key` may be dotted
    /// (`pid.kp`). When absent: the default [`Node::CONFIG`] declares for it, else `Ok(None)`.
    /// An error naming the key when it has another type.
    pub fn config_f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.config_typed(key, "a number", |v| {
            matches!(v.kind, abi::CONFIG_FLOAT | abi::CONFIG_INT).then_some(v.float)
        })
    }

    /// An integer from the node's `config` table (or its declared default, as
    /// [`config_f64`](Context::config_f64)).
    pub fn config_i64(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        self.config_typed(key, "an integer", |v| {
            (v.kind == abi::CONFIG_INT).then_some(v.int)
        })
    }

    /// A boolean from the node's `config` table (or its declared default).
    pub fn config_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.config_typed(key, "true or false", |v| {
            (v.kind == abi::CONFIG_BOOL).then_some(v.int != 0)
        })
    }

    /// A string from the node's `config` table (or its declared default).
    pub fn config_str(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        self.config_typed(key, "a string", |v| {
            // SAFETY: the host keeps config strings alive and unchanged for the node's lifetime,
            // which outlives `&self`; a declared default's text is `'static`.
            (v.kind == abi::CONFIG_STRING).then(|| unsafe { slice_to_str(v.text) })
        })
    }

    /// The node's whole `config` table as TOML text, to parse with a crate of your choice.
    pub fn config_toml(&self) -> &str {
        // SAFETY: valid host function and pointer; the text lives as long as the node.
        unsafe { slice_to_str((self.api().config_toml)(self.raw.host)) }
    }

    fn port_index(&self, name: &str, output: bool) -> Option<(u32, &'static Port)> {
        self.ports
            .iter()
            .enumerate()
            .find(|(_, p)| p.is_output() == output && p.name() == name)
            .map(|(i, p)| (i as u32, p))
    }

    /// For an unknown port's error: the declared ports of that direction, and whether `name`
    /// is a port of the other direction.
    fn port_names(&self, name: &str, output: bool) -> (Vec<&'static str>, bool) {
        let declared = self
            .ports
            .iter()
            .filter(|p| p.is_output() == output)
            .map(|p| p.name())
            .collect();
        let other = self
            .ports
            .iter()
            .any(|p| p.is_output() != output && p.name() == name);
        (declared, other)
    }

    fn unknown_output(&self, port: &str) -> SendError {
        let (declared, other_direction) = self.port_names(port, true);
        SendError::UnknownPort {
            port: port.to_owned(),
            declared,
            other_direction,
        }
    }

    fn unknown_input(&self, port: &str) -> RecvError {
        let (declared, other_direction) = self.port_names(port, false);
        RecvError::UnknownPort {
            port: port.to_owned(),
            declared,
            other_direction,
        }
    }

    /// Publishes `msg` on output port `port`.
    pub fn send<M: Message>(&mut self, port: &str, msg: &M) -> Result<(), SendError> {
        let (index, _) = self.typed_output::<M>(port)?;
        let (send, host) = (self.api().send, self.raw.host);
        let bytes = msg.encode(self.scratch).map_err(SendError::Codec)?;
        // SAFETY: valid host function and pointer; `bytes` outlives the call (the host copies).
        let code = unsafe { send(host, index, bytes.as_ptr(), bytes.len()) };
        send_result(code, port)
    }

    /// The declared output `port` of message type `M`.
    fn typed_output<M: Message>(&self, port: &str) -> Result<(u32, &'static Port), SendError> {
        let (index, decl) = self
            .port_index(port, true)
            .ok_or_else(|| self.unknown_output(port))?;
        if decl.type_hash() != M::TYPE_HASH {
            return Err(SendError::WrongType {
                port: port.to_owned(),
                expected: decl.type_name(),
                got: M::TYPE_NAME,
            });
        }
        Ok((index, decl))
    }

    /// The declared input `port` of message type `M`.
    fn typed_input<M: Message>(&self, port: &str) -> Result<(u32, &'static Port), RecvError> {
        let (index, decl) = self
            .port_index(port, false)
            .ok_or_else(|| self.unknown_input(port))?;
        if decl.type_hash() != M::TYPE_HASH {
            return Err(RecvError::WrongType {
                port: port.to_owned(),
                expected: decl.type_name(),
                got: M::TYPE_NAME,
            });
        }
        Ok((index, decl))
    }

    /// Asks the host to lend `len` bytes of output `index`.
    fn loan_raw(&self, index: u32, decl: &'static Port, len: usize) -> Result<*mut u8, SendError> {
        let mut out = RawSlice::EMPTY;
        // SAFETY: valid host function and pointer; `out` is a valid `RawSlice` to write to.
        let code = unsafe { (self.api().loan)(self.raw.host, index, len, &mut out) };
        send_result(code, decl.name())?;
        Ok(out.ptr.cast_mut())
    }

    /// Borrows the next message of output `port` in place, in the topic's shared memory: write
    /// it through the guard (it starts as whatever the slot held: set every field), then
    /// [`Loan::send`] publishes it with no copy; dropping the guard discards it. For
    /// plain-data messages ([`pod_message!`](crate::pod_message)); one loan per port at a time,
    /// within the call that made it (subscribers wait at an open loan). See [`crate::loan`].
    pub fn loan<M: Message + Pod>(&self, port: &str) -> Result<Loan<'_, M>, SendError> {
        let (index, decl) = self.typed_output::<M>(port)?;
        let ptr = self.loan_raw(index, decl, size_of::<M>())?;
        if !ptr.cast::<M>().is_aligned() {
            // SAFETY: the loan just opened; nothing holds its memory.
            unsafe { (self.api().close_loan)(self.raw.host, index, abi::LOAN_DISCARD) };
            return Err(SendError::Codec(CodecError {
                type_name: M::TYPE_NAME,
                reason: format!("the host lent memory not aligned to {} bytes", align_of::<M>()),
            }));
        }
        // SAFETY: the host lent `size_of::<M>()` writable bytes, aligned (checked), until the
        // loan of `index` is closed, which only the guard does.
        Ok(unsafe { Loan::new(self.raw, index, decl.name(), ptr.cast::<M>()) })
    }

    /// Borrows `len` bytes of output `port`'s next message in place (any port type: the bytes
    /// are the message as it travels, e.g. a camera frame on a `Vec<u8>` port). Fill them,
    /// then [`LoanBytes::send`] (or [`LoanBytes::send_prefix`]); dropping the guard discards
    /// them. Rules as for [`loan`](Context::loan).
    pub fn loan_bytes(&self, port: &str, len: usize) -> Result<LoanBytes<'_>, SendError> {
        let (index, decl) = self
            .port_index(port, true)
            .ok_or_else(|| self.unknown_output(port))?;
        let ptr = self.loan_raw(index, decl, len)?;
        // SAFETY: the host lent `len` writable bytes until the loan of `index` is closed, which
        // only the guard does.
        Ok(unsafe { LoanBytes::new(self.raw, index, decl.name(), ptr, len) })
    }

    /// Takes input `index`'s next message in place: its bytes and handle.
    fn recv_ref_raw(&self, index: u32, decl: &'static Port) -> Result<Option<(RawSlice, u64)>, RecvError> {
        let (mut out, mut pin) = (RawSlice::EMPTY, 0u64);
        // SAFETY: valid host function and pointer; `out` and `pin` are valid to write to.
        let code = unsafe { (self.api().recv_ref)(self.raw.host, index, &mut out, &mut pin) };
        match code {
            abi::RECV_MESSAGE => Ok(Some((out, pin))),
            abi::RECV_EMPTY => Ok(None),
            abi::RECV_HELD => Err(RecvError::Held(decl.name().to_owned())),
            other => Err(RecvError::Host(decl.name().to_owned(), other)),
        }
    }

    /// Takes the oldest unread message of input `port` without copying it: the guard reads it
    /// in the topic's shared memory, and no publisher writes it until the guard is dropped (a
    /// `reliable` topic's publishers wait; others skip its slot). A node may hold up to half
    /// its input's ring at once ([`RecvError::Held`] beyond). For plain-data messages; see
    /// [`crate::loan`].
    pub fn recv_ref<M: Message + Pod>(&self, port: &str) -> Result<Option<Ref<'_, M>>, RecvError> {
        let (index, decl) = self.typed_input::<M>(port)?;
        let Some((bytes, pin)) = self.recv_ref_raw(index, decl)? else {
            return Ok(None);
        };
        let ptr = bytes.ptr.cast::<M>();
        if bytes.len != size_of::<M>() || !ptr.is_aligned() {
            // SAFETY: `pin` was just handed out; nothing refers to its bytes.
            unsafe { (self.api().release_ref)(self.raw.host, pin) };
            return Err(RecvError::Codec(CodecError {
                type_name: M::TYPE_NAME,
                reason: format!(
                    "expected {} bytes aligned to {}, got {} bytes",
                    size_of::<M>(),
                    align_of::<M>(),
                    bytes.len
                ),
            }));
        }
        // SAFETY: the host keeps the message's bytes (size and alignment checked) unchanged
        // until `pin` is released, which only the guard does.
        Ok(Some(unsafe { Ref::new(self.raw, pin, ptr) }))
    }

    /// Takes the oldest unread message of input `port` without copying it, as raw bytes (any
    /// port type). Rules as for [`recv_ref`](Context::recv_ref).
    pub fn recv_bytes_ref(&self, port: &str) -> Result<Option<BytesRef<'_>>, RecvError> {
        let (index, decl) = self
            .port_index(port, false)
            .ok_or_else(|| self.unknown_input(port))?;
        let Some((bytes, pin)) = self.recv_ref_raw(index, decl)? else {
            return Ok(None);
        };
        // SAFETY: the host keeps the bytes unchanged until `pin` is released (by the guard).
        Ok(Some(unsafe { BytesRef::new(self.raw, pin, bytes) }))
    }

    /// Takes the oldest unread message of input port `port`, or `None` when none is waiting.
    pub fn recv<M: Message>(&mut self, port: &str) -> Result<Option<M>, RecvError> {
        let (index, _) = self.typed_input::<M>(port)?;
        match self.recv_raw(index, port)? {
            Some(bytes) => M::decode(bytes).map(Some).map_err(RecvError::Codec),
            None => Ok(None),
        }
    }

    /// Borrows the next raw message of input port `port` without copying it. The borrow ends at
    /// the next use of the context.
    pub fn recv_bytes(&mut self, port: &str) -> Result<Option<&[u8]>, RecvError> {
        let (index, _) = self
            .port_index(port, false)
            .ok_or_else(|| self.unknown_input(port))?;
        self.recv_raw(index, port)
    }

    fn recv_raw(&mut self, index: u32, port: &str) -> Result<Option<&[u8]>, RecvError> {
        let mut out = RawSlice::EMPTY;
        // SAFETY: valid host function and pointer; `out` is a valid `RawSlice` to write to.
        let code = unsafe { (self.api().recv)(self.raw.host, index, &mut out) };
        match code {
            abi::RECV_MESSAGE => {
                // SAFETY: the host keeps the message bytes valid until its next call for this
                // node; the returned borrow is tied to `&mut self`, which every such call needs.
                let bytes = unsafe { slice_to_bytes(out) };
                Ok(Some(bytes))
            }
            abi::RECV_EMPTY => Ok(None),
            other => Err(RecvError::Host(port.to_owned(), other)),
        }
    }

    /// The ports the node type declared.
    pub fn ports(&self) -> &'static [Port] {
        self.ports
    }

    /// The config keys the node type declared ([`Node::CONFIG`]).
    pub fn config_schema(&self) -> &'static [ConfigKey] {
        self.config
    }
}

/// The result of a host `SEND_*` code for port `port`.
pub(crate) fn send_result(code: i32, port: &str) -> Result<(), SendError> {
    match code {
        abi::SEND_OK => Ok(()),
        abi::SEND_FULL => Err(SendError::Full(port.to_owned())),
        abi::SEND_TOO_LARGE => Err(SendError::TooLarge(port.to_owned())),
        abi::SEND_LOAN_STATE => Err(SendError::LoanOpen(port.to_owned())),
        other => Err(SendError::Host(port.to_owned(), other)),
    }
}

/// # Safety
/// `s` must point at `s.len` initialised bytes that stay valid for `'b`.
unsafe fn slice_to_bytes<'b>(s: RawSlice) -> &'b [u8] {
    if s.len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
}

/// # Safety
/// As [`slice_to_bytes`]. Invalid UTF-8 is replaced by an empty string rather than trusted.
unsafe fn slice_to_str<'b>(s: RawSlice) -> &'b str {
    // SAFETY: guaranteed by the caller.
    std::str::from_utf8(unsafe { slice_to_bytes(s) }).unwrap_or("")
}

/// The port descriptors of a node type, in the ABI's representation.
pub(crate) fn port_descs(ports: &'static [Port]) -> &'static [PortDesc] {
    // SAFETY: `Port` is `#[repr(transparent)]` over `PortDesc`, so a slice of one is a valid slice
    // of the other with the same length and lifetime.
    unsafe { std::slice::from_raw_parts(ports.as_ptr().cast::<PortDesc>(), ports.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("imu", "imu"), 0);
        assert_eq!(edit_distance("imu", "imu_out"), 4);
        assert_eq!(edit_distance("attitude", "atitude"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("atitude", &["imu", "attitude"]), Some("attitude"));
        assert_eq!(closest("lidar", &["imu", "attitude"]), None);
    }

    #[test]
    fn unknown_port_messages() {
        let e = SendError::UnknownPort {
            port: "x".into(),
            declared: vec![],
            other_direction: false,
        };
        assert_eq!(
            e.to_string(),
            "no output port `x`; this node type declares no output ports (declare new ports in Node::PORTS)"
        );
    }
}
