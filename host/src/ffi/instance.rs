//! A live node object inside a loaded plugin, and the only code that calls its entry points.
//!
//! # Invariants
//! - INVARIANT: `obj` is null or was returned by `vtable.create` of a node type of `plugin`; it
//!   is passed to `vtable.destroy` exactly once (on `recreate` or in `Drop`), before the `Arc`
//!   of the plugin is released, and then replaced (by null or a new object).
//! - INVARIANT: `ctx.host` points at `io` (boxed: its address never moves) and `ctx.api` at
//!   [`HOST_API`]; both outlive every call.
//! - INVARIANT: a `NodeInstance` is `!Send` (it holds raw pointers): it is created, called and
//!   dropped on one thread (the scheduler thread, or the node's worker thread or process), which
//!   the host retires before unloading the plugin.

use super::host_api::HOST_API;
use super::library::PluginLibrary;
use crate::io::{NodeIo, TopicStats};
use horus_plugin_api::abi::{self, ByteSink, NodeContext, NodeVTable, RawSlice};
use std::ffi::c_void;
use std::fmt;
use std::sync::Arc;

/// How a node call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallErrorKind {
    /// The node returned an error.
    Error,
    /// The node panicked (caught inside the plugin).
    Panic,
    /// The plugin returned a status this host does not know.
    Unknown(i32),
    /// The process running the node died (process isolation).
    Crashed,
}

/// A failed node call: what kind, and the node's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// Error, panic, crash or unknown status.
    pub kind: CallErrorKind,
    /// The node's message.
    pub message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CallErrorKind::Error | CallErrorKind::Crashed => write!(f, "{}", self.message),
            CallErrorKind::Panic => write!(f, "{}", self.message),
            CallErrorKind::Unknown(code) => write!(f, "{} ({code}): {}", abi::status_str(code), self.message),
        }
    }
}

impl std::error::Error for CallError {}

/// Appends plugin bytes to the host `Vec<u8>` behind `sink`.
///
/// # Safety
/// `sink` is a `*mut Vec<u8>` made by [`sink_for`] for the current call; `ptr` points at `len`
/// bytes (ABI contract).
unsafe extern "C" fn collect(sink: *mut c_void, ptr: *const u8, len: usize) {
    if len == 0 || ptr.is_null() || sink.is_null() {
        return;
    }
    // SAFETY: see the function's contract.
    unsafe { (*sink.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(ptr, len)) }
}

fn sink_for(buf: &mut Vec<u8>) -> ByteSink {
    ByteSink {
        sink: (buf as *mut Vec<u8>).cast(),
        write: collect,
    }
}

/// Runs one entry point with a fresh error sink and maps its status.
#[inline(always)]
fn call(f: impl FnOnce(ByteSink) -> i32) -> Result<(), CallError> {
    let mut err = Vec::new();
    let code = f(sink_for(&mut err));
    if code == abi::STATUS_OK {
        return Ok(());
    }
    failed(code, &err)
}

#[cold]
#[inline(never)]
fn failed(code: i32, err: &[u8]) -> Result<(), CallError> {
    let message = String::from_utf8_lossy(err).into_owned();
    let kind = match code {
        abi::STATUS_ERROR => CallErrorKind::Error,
        abi::STATUS_PANIC => CallErrorKind::Panic,
        other => CallErrorKind::Unknown(other),
    };
    Err(CallError { kind, message })
}

/// A node object living in a plugin.
pub struct NodeInstance {
    obj: *mut c_void,
    vtable: NodeVTable,
    // Boxed so the addresses handed to the plugin never move.
    ctx: Box<NodeContext>,
    io: Box<NodeIo>,
    type_index: usize,
    /// The argument of the plugin's create entry, for a node made through it.
    arg: Option<Vec<u8>>,
    /// The generation a hot reload replaced, kept (not shut down) until the new code's first
    /// tick succeeds, so a failing first tick can swap back.
    previous: Option<Box<Generation>>,
    // Declared last: released after `Drop::drop` has destroyed `obj`.
    plugin: Arc<PluginLibrary>,
}

impl fmt::Debug for NodeInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeInstance")
            .field("node", &self.io.name())
            .field("plugin", &self.plugin)
            .finish()
    }
}

impl NodeInstance {
    /// Creates node type `type_index` of `plugin` with `io` as its context.
    ///
    /// # Panics
    /// If `type_index` is out of range (the graph builder resolves it from the same library).
    pub fn create(
        plugin: Arc<PluginLibrary>,
        type_index: usize,
        io: NodeIo,
    ) -> Result<NodeInstance, CallError> {
        NodeInstance::create_with_arg(plugin, type_index, io, None)
    }

    /// As [`NodeInstance::create`], through the plugin's create entry that takes an argument
    /// (see [`super::CreateWithArgFn`]) when `arg` is given; every `recreate` hands it the same
    /// argument. A plugin without that entry refuses an argument.
    pub fn create_with_arg(
        plugin: Arc<PluginLibrary>,
        type_index: usize,
        io: NodeIo,
        arg: Option<Vec<u8>>,
    ) -> Result<NodeInstance, CallError> {
        NodeInstance::create_keeping_io(plugin, type_index, io, arg).map_err(|failed| failed.0)
    }

    /// As [`NodeInstance::create_with_arg`], but a failed `create` hands `io` back (hot reload
    /// of a `thread` node returns the endpoints to the old code's worker).
    pub fn create_keeping_io(
        plugin: Arc<PluginLibrary>,
        type_index: usize,
        io: NodeIo,
        arg: Option<Vec<u8>>,
    ) -> Result<NodeInstance, Box<(CallError, NodeIo)>> {
        let vtable = plugin.info().node_types[type_index].vtable;
        let mut io = Box::new(io);
        let ctx = Box::new(NodeContext {
            host: (&mut *io as *mut NodeIo).cast(),
            api: &HOST_API,
        });
        let mut node = NodeInstance {
            obj: std::ptr::null_mut(),
            vtable,
            ctx,
            io,
            type_index,
            arg,
            previous: None,
            plugin,
        };
        match node.new_object() {
            Ok(obj) => {
                node.obj = obj;
                Ok(node)
            }
            Err(e) => {
                let detached = node.io.detached();
                Err(Box::new((e, node.replace_io(detached))))
            }
        }
    }

    /// A new node object of this instance's type on its context: through the vtable's `create`,
    /// or the plugin's create entry with the instance's argument.
    fn new_object(&self) -> Result<*mut c_void, CallError> {
        let mut obj = std::ptr::null_mut();
        let ctx = &*self.ctx as *const NodeContext;
        match &self.arg {
            None => {
                let create = self.vtable.create;
                // SAFETY: the vtable belongs to `self.plugin`, which is loaded (we hold its
                // Arc); `ctx` is a valid context whose host pointer is our boxed `io`; `obj` is
                // writable.
                call(|err| unsafe { create(ctx, &mut obj, err) })?;
            }
            Some(arg) => {
                let Some(create) = self.plugin.create_with_arg() else {
                    return Err(CallError {
                        kind: CallErrorKind::Error,
                        message: format!(
                            "plugin {} has no `horus_loader_create_v1` entry (only the Python loader has one)",
                            self.plugin.info().path.display()
                        ),
                    });
                };
                let node_type = RawSlice::from_bytes(self.type_name().as_bytes());
                let arg = RawSlice::from_bytes(arg);
                // SAFETY: `create` is the entry of `self.plugin`, which is loaded, with the
                // `CreateWithArgFn` signature (see `create_with_arg_of`); the type name and the
                // argument are valid for the call; `ctx` and `obj` as above.
                call(|err| unsafe { create(node_type, ctx, arg, &mut obj, err) })?;
            }
        }
        if obj.is_null() {
            return Err(CallError {
                kind: CallErrorKind::Error,
                message: "create returned no object".into(),
            });
        }
        Ok(obj)
    }

    fn type_name(&self) -> &str {
        &self.plugin.info().node_types[self.type_index].name
    }

    /// Destroys the node object and creates a fresh one of the same type with the same context
    /// (name, config, topic endpoints), for a restart. The new object is not yet initialised.
    /// On error the instance holds no object, and every later call fails until a `recreate`
    /// succeeds.
    #[inline(always)]
    pub fn recreate(&mut self) -> Result<(), CallError> {
        self.destroy_object();
        self.obj = self.new_object()?;
        Ok(())
    }

    fn destroy_object(&mut self) {
        let obj = std::mem::replace(&mut self.obj, std::ptr::null_mut());
        if obj.is_null() {
            return;
        }
        let destroy = self.vtable.destroy;
        // SAFETY: `obj` is live, belongs to this vtable, and is never used again (we just
        // replaced it with null); the plugin is loaded while `self.plugin` lives.
        if let Err(e) = call(|err| unsafe { destroy(obj, err) }) {
            tracing::error!(
                node = self.io.name(),
                "destroy failed, its resources may leak: {e}"
            );
        }
    }

    fn no_object() -> CallError {
        CallError {
            kind: CallErrorKind::Error,
            message: "the node has no object (its restart failed)".into(),
        }
    }

    fn lifecycle(
        &mut self,
        entry: unsafe extern "C" fn(*mut c_void, *const NodeContext, ByteSink) -> i32,
    ) -> Result<(), CallError> {
        if self.obj.is_null() {
            return Err(Self::no_object());
        }
        let (obj, ctx) = (self.obj, &*self.ctx as *const NodeContext);
        // SAFETY: `obj` is live and belongs to this vtable (invariants); `ctx` is valid; we hold
        // `&mut self`, so no other call on this object is running.
        let result = call(|err| unsafe { entry(obj, ctx, err) });
        self.io.end_call();
        result
    }

    /// Runs `init`.
    pub fn init(&mut self) -> Result<(), CallError> {
        self.lifecycle(self.vtable.init)
    }

    /// Runs one `tick`.
    #[inline]
    pub fn tick(&mut self) -> Result<(), CallError> {
        self.lifecycle(self.vtable.tick)
    }

    /// Runs one `tick` with the node's clock standing at `at_ns` (since the scheduler's epoch)
    /// all through it: `ctx.now()` is the tick's time, which `horus run --record` records and
    /// `horus replay --node` gives back, so a node computing from its clock replays exactly.
    #[inline]
    pub fn tick_at(&mut self, at_ns: u64) -> Result<(), CallError> {
        self.io_mut().pin_clock(Some(at_ns));
        let r = self.tick();
        self.io_mut().pin_clock(None);
        r
    }

    /// Runs `shutdown`.
    pub fn shutdown(&mut self) -> Result<(), CallError> {
        self.lifecycle(self.vtable.shutdown)
    }

    /// The node's state as bytes.
    pub fn save_state(&mut self) -> Result<Vec<u8>, CallError> {
        if self.obj.is_null() {
            return Err(Self::no_object());
        }
        let mut state = Vec::new();
        let (obj, save) = (self.obj, self.vtable.save_state);
        let state_sink = sink_for(&mut state);
        // SAFETY: `obj` live (invariants); both sinks are valid for the call.
        call(|err| unsafe { save(obj, state_sink, err) })?;
        Ok(state)
    }

    /// Hands `state` to the node.
    pub fn restore_state(&mut self, state: &[u8]) -> Result<(), CallError> {
        if self.obj.is_null() {
            return Err(Self::no_object());
        }
        let (obj, restore) = (self.obj, self.vtable.restore_state);
        // SAFETY: `obj` live (invariants); `state` is valid for the call.
        call(|err| unsafe { restore(obj, RawSlice::from_bytes(state), err) })
    }

    /// The node's message counters: totals (sent, received, dropped) and per topic, over its
    /// ports (its [`NodeIo`]) and, for a node of a loader plugin, over the topics its code uses
    /// on its own (a Python node's named topics), which the loader reports (see
    /// [`super::IoStatsFn`]). An unreadable report counts nothing: stats are never worth a
    /// failure.
    pub fn io_counts(&self) -> ((u64, u64, u64), Vec<TopicStats>) {
        let mut totals = self.io.message_totals();
        let mut topics = self.io.topic_stats();
        let own = self.own_topic_stats();
        for t in &own {
            match t.direction.as_str() {
                "output" => totals.0 += t.messages,
                _ => {
                    totals.1 += t.messages;
                    totals.2 += t.dropped;
                }
            }
        }
        topics.extend(own);
        (totals, topics)
    }

    fn own_topic_stats(&self) -> Vec<TopicStats> {
        let Some(io_stats) = self.plugin.io_stats() else {
            return Vec::new();
        };
        if self.obj.is_null() {
            return Vec::new();
        }
        let mut report = Vec::new();
        // SAFETY: `io_stats` is the entry of `self.plugin`, which is loaded, with the
        // `IoStatsFn` signature (see `io_stats_of`); `ctx` is this instance's boxed context,
        // valid for the call; the sink appends to `report`, which outlives the call. We are on
        // the instance's thread and not inside another of its calls (`&self`).
        let code = unsafe { io_stats(&*self.ctx, sink_for(&mut report)) };
        if code != abi::STATUS_OK {
            return Vec::new();
        }
        serde_json::from_slice(&report).unwrap_or_default()
    }

    /// The node's host-side state (name, ports, metrics).
    pub fn io(&self) -> &NodeIo {
        &self.io
    }

    /// Swaps the node's host state (name, config, topic endpoints) for `io`, returning the one
    /// it had: hot reload of a `thread` node hands the endpoints from the worker of the old
    /// code to the worker of the new one. The context's address is unchanged.
    pub fn replace_io(&mut self, io: NodeIo) -> NodeIo {
        std::mem::replace(&mut *self.io, io)
    }

    /// The node's host state, mutably (to arrange its ports).
    pub fn io_mut(&mut self) -> &mut NodeIo {
        &mut self.io
    }

    /// The plugin the node lives in.
    pub fn plugin(&self) -> &Arc<PluginLibrary> {
        &self.plugin
    }
}

/// A node's code of one generation: its object, its node type and the plugin it lives in.
struct Generation {
    obj: *mut c_void,
    vtable: NodeVTable,
    type_index: usize,
    plugin: Arc<PluginLibrary>,
    /// The port order of its node type.
    ports: Vec<(String, bool)>,
    /// Its create argument (see [`NodeInstance::create_with_arg`]).
    arg: Option<Vec<u8>>,
    /// Its config, when the swap that replaced it changed the config (a live apply); put back
    /// on a rollback.
    config: Option<toml::Table>,
}

/// The create arguments of a reload's new code, for a node made through the plugin's create
/// entry with an argument (a Python node): one for the new object, one for the later
/// `recreate`s of restarts. They differ for Python: the reload imports the node's file again, a
/// restart uses the module that import left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadArg {
    /// For the new code's object.
    pub create: Vec<u8>,
    /// For every `recreate` after it.
    pub then: Vec<u8>,
}

/// Which step of a hot reload failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadStep {
    /// `save_state` of the running code.
    SaveState,
    /// `create` of the new code.
    Create,
    /// `restore_state` of the new code.
    RestoreState,
    /// `init` of the new code.
    Init,
}

impl ReloadStep {
    /// The step's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            ReloadStep::SaveState => "save_state",
            ReloadStep::Create => "create",
            ReloadStep::RestoreState => "restore_state",
            ReloadStep::Init => "init",
        }
    }
}

impl NodeInstance {
    /// Hot reload, at a tick boundary: saves the running code's state, creates node type
    /// `type_index` of `plugin` on this instance's context (same name, config and topic
    /// endpoints; the ports put in the new type's `ports` order), hands it the state and runs
    /// its `init`. With `arg`, the new object is made with `arg.create` and restarts use
    /// `arg.then`; without it, with the instance's argument as before. On success the new code
    /// is current and the old one is kept, untouched (its argument too), until
    /// [`NodeInstance::commit_reload`] or [`NodeInstance::rollback_reload`], and the size of the
    /// state handed over is returned (0: the old code saved none); on failure nothing changed
    /// (the new object, if made, is destroyed).
    pub fn reload(
        &mut self,
        plugin: Arc<PluginLibrary>,
        type_index: usize,
        ports: &[(String, bool)],
        arg: Option<ReloadArg>,
    ) -> Result<usize, (ReloadStep, CallError)> {
        self.reload_with_config(plugin, type_index, ports, arg, None)
    }

    /// [`NodeInstance::reload`], with the node's context carrying `config` (when given) from
    /// the new object's `create` on: a live apply of a changed `config`. A rollback (of this
    /// call, or [`NodeInstance::rollback_reload`]) puts the old config back.
    pub fn reload_with_config(
        &mut self,
        plugin: Arc<PluginLibrary>,
        type_index: usize,
        ports: &[(String, bool)],
        arg: Option<ReloadArg>,
        config: Option<toml::Table>,
    ) -> Result<usize, (ReloadStep, CallError)> {
        if let Some(old) = self.previous.take() {
            // A reload before the previous one's first tick: that one counts as good.
            self.retire(*old);
        }
        let state = self.save_state().map_err(|e| (ReloadStep::SaveState, e))?;
        let old_ports = self.io.arrange_ports(ports);
        let (create_arg, later_arg) = match arg {
            Some(ReloadArg { create, then }) => (Some(create), Some(then)),
            None => (self.arg.clone(), self.arg.clone()),
        };
        let old = Generation {
            obj: self.obj,
            vtable: self.vtable,
            type_index: self.type_index,
            plugin: std::mem::replace(&mut self.plugin, plugin),
            ports: old_ports,
            arg: std::mem::replace(&mut self.arg, create_arg),
            config: config.map(|c| self.io.replace_config(c)),
        };
        self.vtable = self.plugin.info().node_types[type_index].vtable;
        self.type_index = type_index;
        let made = self
            .new_object()
            .map_err(|e| (ReloadStep::Create, e))
            .and_then(|obj| {
                self.obj = obj;
                self.restore_state(&state)
                    .map_err(|e| (ReloadStep::RestoreState, e))
                    .and_then(|()| self.init().map_err(|e| (ReloadStep::Init, e)))
            });
        match made {
            Ok(()) => {
                self.arg = later_arg;
                self.previous = Some(Box::new(old));
                Ok(state.len())
            }
            Err(e) => {
                if self.obj != old.obj {
                    self.destroy_object();
                }
                self.install(old);
                Err(e)
            }
        }
    }

    /// The new code ticked: shuts the replaced generation down and destroys it. Returns its
    /// plugin, which the caller drops (unloading it if nothing else uses it).
    pub fn commit_reload(&mut self) -> Option<Arc<PluginLibrary>> {
        let old = self.previous.take()?;
        let plugin = old.plugin.clone();
        self.retire(*old);
        Some(plugin)
    }

    /// The new code failed its first tick: destroys it and makes the replaced generation current
    /// again, as it was at the swap (it has not run since). Returns the new code's plugin.
    pub fn rollback_reload(&mut self) -> Option<Arc<PluginLibrary>> {
        let old = self.previous.take()?;
        self.destroy_object();
        Some(self.install(*old))
    }

    /// Sets the argument later `recreate`s hand the plugin's create entry: a hot reload's new
    /// code is made with one argument and restarted with another (see [`ReloadArg`]).
    pub fn set_recreate_arg(&mut self, arg: Option<Vec<u8>>) {
        self.arg = arg;
    }

    /// The node type's index in [`NodeInstance::plugin`].
    pub fn type_index(&self) -> usize {
        self.type_index
    }

    /// True while a reload waits for the new code's first tick.
    pub fn reload_pending(&self) -> bool {
        self.previous.is_some()
    }

    /// Makes `generation` current; returns the plugin it replaced.
    fn install(&mut self, generation: Generation) -> Arc<PluginLibrary> {
        self.io.arrange_ports(&generation.ports);
        self.obj = generation.obj;
        self.vtable = generation.vtable;
        self.type_index = generation.type_index;
        self.arg = generation.arg;
        if let Some(config) = generation.config {
            self.io.replace_config(config);
        }
        std::mem::replace(&mut self.plugin, generation.plugin)
    }

    /// Shuts down and destroys a replaced generation's object.
    fn retire(&mut self, old: Generation) {
        let ctx = &*self.ctx as *const NodeContext;
        let (shutdown, destroy) = (old.vtable.shutdown, old.vtable.destroy);
        // SAFETY: `old.obj` was made by `old.vtable.create` on this context and is live (only
        // `retire` or `rollback` consume a generation, once); its plugin is loaded while
        // `old.plugin` lives (dropped after these calls); `ctx` is valid.
        if let Err(e) = call(|err| unsafe { shutdown(old.obj, ctx, err) }) {
            tracing::warn!(node = self.io.name(), "shutdown of the replaced code failed: {e}");
        }
        // SAFETY: as above; the object is never used again.
        if let Err(e) = call(|err| unsafe { destroy(old.obj, err) }) {
            tracing::error!(
                node = self.io.name(),
                "destroy of the replaced code failed, its resources may leak: {e}"
            );
        }
        drop(old.plugin);
    }
}

impl Drop for NodeInstance {
    fn drop(&mut self) {
        self.destroy_object();
        if let Some(old) = self.previous.take() {
            let destroy = old.vtable.destroy;
            // SAFETY: a replaced generation's live object; its plugin is loaded while
            // `old.plugin` lives (dropped at the end of this block).
            if let Err(e) = call(|err| unsafe { destroy(old.obj, err) }) {
                tracing::error!(
                    node = self.io.name(),
                    "destroy failed, its resources may leak: {e}"
                );
            }
        }
    }
}
