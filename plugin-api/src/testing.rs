//! A test harness that runs one node through its real ABI entry points against an in-memory
//! host, so plugin authors can unit-test nodes with `cargo test` and no `horus` binary.
//!
//! Owns the mock host (config, a settable clock, recorded logs, per-port queues). It does not
//! model scheduling, QoS or supervision: that is the host's job and is tested there.
//!
//! ```
//! use horus_plugin_api::{testing::TestHarness, Context, Node, NodeError, NodeResult, Port};
//!
//! struct Doubler;
//! impl Node for Doubler {
//!     const PORTS: &'static [Port] = &[Port::input::<u64>("in"), Port::output::<u64>("out")];
//!     fn create(_: &mut Context<'_>) -> Result<Self, NodeError> { Ok(Doubler) }
//!     fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
//!         while let Some(v) = ctx.recv::<u64>("in")? { ctx.send("out", &(v * 2))?; }
//!         Ok(())
//!     }
//! }
//!
//! let mut h = TestHarness::<Doubler>::builder("doubler").start().unwrap();
//! h.push("in", &21u64);
//! h.tick().unwrap();
//! assert_eq!(h.take::<u64>("out"), vec![42]);
//! ```

use crate::abi::{self, ByteSink, ConfigValue, HostApi, NodeContext, NodeVTable, PortDesc, RawSlice};
use crate::message::Message;
use crate::node::{Context, Node, NodeError, NodeResult};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::time::Duration;

/// A config value for [`HarnessBuilder::config`].
#[derive(Debug, Clone, PartialEq)]
pub enum TestValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl From<bool> for TestValue {
    fn from(v: bool) -> Self {
        TestValue::Bool(v)
    }
}
impl From<i64> for TestValue {
    fn from(v: i64) -> Self {
        TestValue::Int(v)
    }
}
impl From<i32> for TestValue {
    fn from(v: i32) -> Self {
        TestValue::Int(v.into())
    }
}
impl From<f64> for TestValue {
    fn from(v: f64) -> Self {
        TestValue::Float(v)
    }
}
impl From<&str> for TestValue {
    fn from(v: &str) -> Self {
        TestValue::Str(v.to_owned())
    }
}

struct MockHost {
    name: String,
    config: Vec<(String, TestValue)>,
    config_toml: String,
    now: Duration,
    ports: &'static [PortDesc],
    queues: Vec<VecDeque<Vec<u8>>>,
    current: Vec<u8>,
    logs: Vec<(u32, String)>,
    /// Open loans, by port: 8-aligned memory of the loaned length, like a topic's slot.
    loans: Vec<Option<(Vec<u64>, usize)>>,
    /// Messages taken by `recv_ref`, by handle, in 8-aligned memory.
    held: Vec<(u64, Vec<u64>, usize)>,
    next_pin: u64,
}

/// `len` bytes of 8-aligned, zeroed memory.
fn aligned(len: usize) -> Vec<u64> {
    vec![0; len.div_ceil(8)]
}

fn words_as_bytes(words: &mut [u64], len: usize) -> &mut [u8] {
    // SAFETY: `u64` has no padding and every byte of it is initialised; `len` is at most the
    // words' size (every caller sized them with `aligned(len)`).
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len.min(words.len() * 8)) }
}

/// # Safety
/// `host` is the `MockHost` owned by a live `TestHarness`, which is the only caller, and no
/// other reference to it is live for `'a`. Every `mock_*` function below requires the same of
/// its `host` (and of its other pointers what the ABI says, as noted on each).
unsafe fn mock<'a>(host: *mut c_void) -> &'a mut MockHost {
    // SAFETY: see the function's contract.
    unsafe { &mut *host.cast::<MockHost>() }
}

/// # Safety
/// `host` as for [`mock`].
unsafe extern "C" fn mock_name(host: *mut c_void) -> RawSlice {
    // SAFETY: see `mock`.
    RawSlice::from_str(unsafe { &mock(host).name })
}

/// # Safety
/// `host` as for [`mock`].
unsafe extern "C" fn mock_now(host: *mut c_void) -> u64 {
    // SAFETY: see `mock`.
    unsafe { mock(host).now.as_nanos() as u64 }
}

/// # Safety
/// `host` as for [`mock`]; `msg` points at `msg.len` readable bytes (non-null, as the SDK's
/// `&str`s are).
unsafe extern "C" fn mock_log(host: *mut c_void, level: u32, msg: RawSlice) {
    // SAFETY: see `mock`; `msg` is valid for the call (SDK contract).
    unsafe {
        let text = String::from_utf8_lossy(std::slice::from_raw_parts(msg.ptr, msg.len)).into_owned();
        mock(host).logs.push((level, text));
    }
}

/// # Safety
/// `host` as for [`mock`]; `key` points at `key.len` readable bytes; `out` is writable.
unsafe extern "C" fn mock_config_get(host: *mut c_void, key: RawSlice, out: *mut ConfigValue) {
    // SAFETY: see `mock`; `key` valid for the call and `out` writable (SDK contract).
    unsafe {
        let key = std::str::from_utf8(std::slice::from_raw_parts(key.ptr, key.len)).unwrap_or("");
        let out = &mut *out;
        out.kind = abi::CONFIG_MISSING;
        if let Some((_, v)) = mock(host).config.iter().find(|(k, _)| k == key) {
            match v {
                TestValue::Bool(b) => {
                    out.kind = abi::CONFIG_BOOL;
                    out.int = (*b).into();
                }
                TestValue::Int(i) => {
                    out.kind = abi::CONFIG_INT;
                    out.int = *i;
                    out.float = *i as f64;
                }
                TestValue::Float(f) => {
                    out.kind = abi::CONFIG_FLOAT;
                    out.float = *f;
                }
                TestValue::Str(s) => {
                    out.kind = abi::CONFIG_STRING;
                    out.text = RawSlice::from_str(s);
                }
            }
        }
    }
}

/// # Safety
/// `host` as for [`mock`].
unsafe extern "C" fn mock_config_toml(host: *mut c_void) -> RawSlice {
    // SAFETY: see `mock`.
    RawSlice::from_str(unsafe { &mock(host).config_toml })
}

/// # Safety
/// `host` as for [`mock`]; `ptr` points at `len` readable bytes (or `len` is 0).
unsafe extern "C" fn mock_send(host: *mut c_void, port: u32, ptr: *const u8, len: usize) -> i32 {
    // SAFETY: see `mock`; `ptr` points at `len` bytes for the call (SDK contract).
    unsafe {
        let host = mock(host);
        match host.ports.get(port as usize) {
            Some(p) if p.direction == abi::PORT_OUTPUT => {
                let bytes = if len == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(ptr, len).to_vec()
                };
                host.queues[port as usize].push_back(bytes);
                abi::SEND_OK
            }
            _ => abi::SEND_BAD_PORT,
        }
    }
}

/// # Safety
/// `host` as for [`mock`]; `out` is writable.
unsafe extern "C" fn mock_recv(host: *mut c_void, port: u32, out: *mut RawSlice) -> i32 {
    // SAFETY: see `mock`; `out` writable (SDK contract).
    unsafe {
        let host = mock(host);
        match host.ports.get(port as usize) {
            Some(p) if p.direction == abi::PORT_INPUT => match host.queues[port as usize].pop_front() {
                Some(msg) => {
                    host.current = msg;
                    *out = RawSlice::from_bytes(&host.current);
                    abi::RECV_MESSAGE
                }
                None => abi::RECV_EMPTY,
            },
            _ => abi::RECV_BAD_PORT,
        }
    }
}

/// # Safety
/// `host` as for [`mock`]; `out` is writable.
unsafe extern "C" fn mock_loan(host: *mut c_void, port: u32, len: usize, out: *mut RawSlice) -> i32 {
    // SAFETY: see `mock`; `out` writable (SDK contract).
    unsafe {
        let host = mock(host);
        match host.ports.get(port as usize) {
            Some(p) if p.direction == abi::PORT_OUTPUT => {
                let slot = &mut host.loans[port as usize];
                if slot.is_some() {
                    return abi::SEND_LOAN_STATE;
                }
                let (words, len) = slot.insert((aligned(len), len));
                *out = RawSlice::from_bytes(words_as_bytes(words, *len));
                abi::SEND_OK
            }
            _ => abi::SEND_BAD_PORT,
        }
    }
}

/// # Safety
/// `host` as for [`mock`].
unsafe extern "C" fn mock_close_loan(host: *mut c_void, port: u32, len: usize) -> i32 {
    // SAFETY: see `mock`.
    let host = unsafe { mock(host) };
    let Some(slot) = host.loans.get_mut(port as usize) else {
        return abi::SEND_BAD_PORT;
    };
    let Some((mut words, loaned)) = slot.take() else {
        return abi::SEND_LOAN_STATE;
    };
    if len == abi::LOAN_DISCARD {
        return abi::SEND_OK;
    }
    if len > loaned {
        return abi::SEND_TOO_LARGE;
    }
    let msg = words_as_bytes(&mut words, len).to_vec();
    host.queues[port as usize].push_back(msg);
    abi::SEND_OK
}

/// # Safety
/// `host` as for [`mock`]; `out` and `pin` are writable.
unsafe extern "C" fn mock_recv_ref(host: *mut c_void, port: u32, out: *mut RawSlice, pin: *mut u64) -> i32 {
    // SAFETY: see `mock`; `out` and `pin` writable (SDK contract).
    unsafe {
        let host = mock(host);
        match host.ports.get(port as usize) {
            Some(p) if p.direction == abi::PORT_INPUT => match host.queues[port as usize].pop_front() {
                Some(msg) => {
                    let mut words = aligned(msg.len());
                    words_as_bytes(&mut words, msg.len()).copy_from_slice(&msg);
                    let handle = host.next_pin;
                    host.next_pin += 1;
                    host.held.push((handle, words, msg.len()));
                    let (_, words, len) = host.held.last_mut().expect("pushed");
                    *out = RawSlice::from_bytes(words_as_bytes(words, *len));
                    *pin = handle;
                    abi::RECV_MESSAGE
                }
                None => abi::RECV_EMPTY,
            },
            _ => abi::RECV_BAD_PORT,
        }
    }
}

/// # Safety
/// `host` as for [`mock`].
unsafe extern "C" fn mock_release_ref(host: *mut c_void, pin: u64) {
    // SAFETY: see `mock`.
    let host = unsafe { mock(host) };
    host.held.retain(|(h, _, _)| *h != pin);
}

static MOCK_API: HostApi = HostApi {
    node_name: mock_name,
    now_ns: mock_now,
    log: mock_log,
    config_get: mock_config_get,
    config_toml: mock_config_toml,
    send: mock_send,
    recv: mock_recv,
    loan: mock_loan,
    close_loan: mock_close_loan,
    recv_ref: mock_recv_ref,
    release_ref: mock_release_ref,
};

/// Builds a [`TestHarness`]: name, config, then [`start`](HarnessBuilder::start).
pub struct HarnessBuilder<N: Node> {
    name: String,
    config: Vec<(String, TestValue)>,
    _node: PhantomData<N>,
}

impl<N: Node> HarnessBuilder<N> {
    /// Sets a config key, as the manifest's `config = { key = value }` would.
    pub fn config(mut self, key: &str, value: impl Into<TestValue>) -> Self {
        self.config.push((key.to_owned(), value.into()));
        self
    }

    /// Creates and initialises the node through its ABI entry points.
    pub fn start(self) -> Result<TestHarness<N>, NodeError> {
        let ports = crate::export::ports_of::<N>();
        let config_toml = self
            .config
            .iter()
            .map(|(k, v)| match v {
                TestValue::Bool(b) => format!("{k} = {b}\n"),
                TestValue::Int(i) => format!("{k} = {i}\n"),
                TestValue::Float(f) => format!("{k} = {f:?}\n"),
                TestValue::Str(s) => format!("{k} = {s:?}\n"),
            })
            .collect();
        let mut host = Box::new(MockHost {
            name: self.name,
            config: self.config,
            config_toml,
            now: Duration::ZERO,
            ports,
            queues: vec![VecDeque::new(); ports.len()],
            current: Vec::new(),
            logs: Vec::new(),
            loans: vec![None; ports.len()],
            held: Vec::new(),
            next_pin: 1,
        });
        let ctx = Box::new(NodeContext {
            host: (&mut *host as *mut MockHost).cast(),
            api: &MOCK_API,
        });
        let vtable = crate::export::vtable::<N>("test");
        let mut obj = std::ptr::null_mut();
        // SAFETY: `ctx` is valid and outlives the call; `obj` is writable.
        call(|err| unsafe { (vtable.create)(&*ctx, &mut obj, err) })?;
        let harness = TestHarness {
            host,
            ctx,
            obj,
            vtable,
            _node: PhantomData,
        };
        let (obj, ctx) = (harness.obj, &*harness.ctx as *const NodeContext);
        // SAFETY: `obj` was just created by this vtable; `ctx` is valid for the harness's life.
        call(|err| unsafe { (harness.vtable.init)(obj, ctx, err) })?;
        Ok(harness)
    }
}

/// One node, created through its ABI entry points and driven by hand.
pub struct TestHarness<N: Node> {
    // Declared before `host` so a panic in drop order can never leave `ctx` dangling first.
    ctx: Box<NodeContext>,
    host: Box<MockHost>,
    obj: *mut c_void,
    vtable: NodeVTable,
    _node: PhantomData<N>,
}

/// Appends plugin bytes to the harness's `Vec<u8>` behind `sink`.
///
/// # Safety
/// `sink` is a `*mut Vec<u8>` made by [`sink_for`] for the current call; `ptr` points at `len`
/// readable bytes.
unsafe extern "C" fn collect(sink: *mut c_void, ptr: *const u8, len: usize) {
    // SAFETY: `sink` is the `Vec<u8>` passed by `call`; `ptr` points at `len` bytes.
    unsafe {
        if len > 0 {
            (*sink.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(ptr, len));
        }
    }
}

fn sink_for(buf: &mut Vec<u8>) -> ByteSink {
    ByteSink {
        sink: (buf as *mut Vec<u8>).cast(),
        write: collect,
    }
}

fn call(f: impl FnOnce(ByteSink) -> i32) -> NodeResult {
    let mut err = Vec::new();
    let code = f(sink_for(&mut err));
    let msg = String::from_utf8_lossy(&err).into_owned();
    match code {
        abi::STATUS_OK => Ok(()),
        abi::STATUS_PANIC => Err(NodeError::new(format!("panic: {msg}"))),
        _ => Err(NodeError::new(msg)),
    }
}

impl<N: Node> TestHarness<N> {
    /// Starts building a harness for a node named `name`.
    pub fn builder(name: &str) -> HarnessBuilder<N> {
        HarnessBuilder {
            name: name.to_owned(),
            config: Vec::new(),
            _node: PhantomData,
        }
    }

    fn port(&self, name: &str, direction: u32) -> usize {
        self.host
            .ports
            .iter()
            .position(|p| {
                p.direction == direction
                    // SAFETY: port names are `'static` strings (see `Port::new`).
                    && unsafe { std::slice::from_raw_parts(p.name.ptr, p.name.len) } == name.as_bytes()
            })
            .unwrap_or_else(|| panic!("node type declares no such port `{name}`"))
    }

    /// Queues a message on input port `port`.
    pub fn push<M: Message>(&mut self, port: &str, msg: &M) {
        let index = self.port(port, abi::PORT_INPUT);
        let mut scratch = Vec::new();
        let bytes = msg.encode(&mut scratch).expect("message encodes").to_vec();
        self.host.queues[index].push_back(bytes);
    }

    /// Ticks the node once through its ABI entry point (with panic containment).
    pub fn tick(&mut self) -> NodeResult {
        let (obj, ctx, tick) = (self.obj, &*self.ctx as *const NodeContext, self.vtable.tick);
        // SAFETY: `obj` is live and was created by this vtable; `ctx` is valid.
        let result = call(|err| unsafe { tick(obj, ctx, err) });
        // As the host does: a loan left open when the call returns is discarded.
        self.host.loans.iter_mut().for_each(|l| *l = None);
        result
    }

    /// Messages the node holds in place now (taken by `Context::recv_ref` and not released).
    pub fn held(&self) -> usize {
        self.host.held.len()
    }

    /// Ticks the node by a direct trait call, bypassing the ABI. For comparisons in benchmarks.
    pub fn tick_direct(&mut self) -> NodeResult {
        // SAFETY: `obj` was boxed as `Instance<N>` by `create::<N>`; `ctx` is valid.
        let (node, scratch) = unsafe { crate::export::instance_parts::<N>(self.obj) };
        // SAFETY: `ctx` points at the mock API, valid for the harness's lifetime.
        let mut cx = unsafe { Context::new(&self.ctx, N::PORTS, N::CONFIG, scratch) };
        node.tick(&mut cx)
    }

    /// Drains what the node sent on output port `port`, decoded.
    pub fn take<M: Message>(&mut self, port: &str) -> Vec<M> {
        let index = self.port(port, abi::PORT_OUTPUT);
        self.host.queues[index]
            .drain(..)
            .map(|b| M::decode(&b).expect("output decodes"))
            .collect()
    }

    /// Sets the clock the node sees through `Context::now`.
    pub fn set_time(&mut self, now: Duration) {
        self.host.now = now;
    }

    /// Everything the node logged, as `(abi::LOG_* level, message)`.
    pub fn logs(&self) -> &[(u32, String)] {
        &self.host.logs
    }

    /// The node's saved state (hot-reload handover).
    pub fn save_state(&mut self) -> Result<Vec<u8>, NodeError> {
        let mut state = Vec::new();
        let (obj, save) = (self.obj, self.vtable.save_state);
        let sink = sink_for(&mut state);
        // SAFETY: `obj` live; both sinks valid for the call.
        call(|err| unsafe { save(obj, sink, err) })?;
        Ok(state)
    }

    /// Hands `state` to the node (hot-reload handover).
    pub fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        let (obj, restore) = (self.obj, self.vtable.restore_state);
        // SAFETY: `obj` live; `state` valid for the call.
        call(|err| unsafe { restore(obj, RawSlice::from_bytes(state), err) })
    }

    /// Runs the node's shutdown hook.
    pub fn shutdown(&mut self) -> NodeResult {
        let (obj, ctx, shutdown) = (self.obj, &*self.ctx as *const NodeContext, self.vtable.shutdown);
        // SAFETY: `obj` live; `ctx` valid.
        call(|err| unsafe { shutdown(obj, ctx, err) })
    }
}

impl<N: Node> Drop for TestHarness<N> {
    fn drop(&mut self) {
        let (obj, destroy) = (self.obj, self.vtable.destroy);
        // SAFETY: `obj` was created by this vtable and is never used after this call.
        let _ = call(|err| unsafe { destroy(obj, err) });
    }
}
