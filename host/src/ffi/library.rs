//! Opening a plugin library: private copy, `dlopen`, header checks, and a host-owned copy of the
//! descriptor.
//!
//! # Rationale
//! `dlopen` caches by path (and inode): opening a rebuilt plugin at the same path can return the
//! old image. Every load therefore opens a **private copy at a unique path** (in a fresh 0700
//! directory, unlinked right after `dlopen`), so two builds of one plugin can be loaded side by
//! side and each unloads on its own. Libraries are opened with `RTLD_NOW | RTLD_LOCAL`: missing
//! symbols are reported at load, and two plugins never interpose each other's symbols.
//!
//! # Invariants
//! - INVARIANT: a [`PluginLibrary`] holds the `dlopen` handle; dropping it is the `dlclose`.
//! - INVARIANT: every string of the descriptor is copied into [`PluginInfo`] at load, so nothing
//!   the host keeps points into the image except the entry points in [`NodeTypeInfo::vtable`],
//!   which are called only through a [`super::NodeInstance`] that holds an `Arc` of the library.
//! - INVARIANT: the header is checked (magic, ABI version, layout hash) before anything else of
//!   the plugin is read or called.

use horus_plugin_api::abi::{self, EntryFn, NodeVTable, PluginHeader, RawSlice};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LOCAL, RTLD_NOW};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No file at the path.
    #[error("plugin file not found: {path}")]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// The file is not a loadable shared library.
    #[error("{path} is not a loadable shared library: {kind}")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// Which check refused it.
        kind: NotALibraryKind,
    },
    /// The file exists but could not be read (to check its ELF header).
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A shared library without [`abi::ENTRY_SYMBOL`].
    #[error("{path} is a shared library but not a HORUS plugin: it has no `horus_plugin_entry` symbol")]
    NoEntrySymbol {
        /// The file.
        path: PathBuf,
    },
    /// Built against another ABI version.
    #[error(
        "{path} was built against HORUS plugin ABI v{found}, but this host speaks ABI v{expected}{}",
        if found < expected {
            " (the plugin is older than this host: rebuild it against the current horus-plugin-api)"
        } else {
            " (the plugin is newer than this host)"
        }
    )]
    AbiVersion {
        /// The file.
        path: PathBuf,
        /// The plugin's version.
        found: u32,
        /// The host's version.
        expected: u32,
    },
    /// Built against another layout of the ABI types.
    #[error(
        "{path} was built against a different layout of the HORUS plugin ABI (layout hash {found:#018x}, \
         this host has {expected:#018x}) although both say v{version}"
    )]
    LayoutHash {
        /// The file.
        path: PathBuf,
        /// ABI version both claim.
        version: u32,
        /// The plugin's hash.
        found: u64,
        /// The host's hash.
        expected: u64,
    },
    /// The descriptor is malformed.
    #[error("{path} has a malformed plugin descriptor: {reason}")]
    BadDescriptor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The private copy could not be made.
    #[error("cannot make a private copy of {path} to load it from: {source}")]
    Copy {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a file that exists is not a loadable shared library. Its `Display` is the reason the
/// user reads after "is not a loadable shared library: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotALibraryKind {
    /// A folder, device, socket or other non-regular file.
    NotRegularFile,
    /// A regular file that does not start with an ELF header: a source file, a script, a text
    /// file, an empty one.
    NoElfHeader,
    /// An ELF file the dynamic loader refused, with its own words (`dlerror`), which name the
    /// file as the manifest does, the missing symbol or the wrong format.
    Refused(String),
}

impl std::fmt::Display for NotALibraryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotALibraryKind::NotRegularFile => f.write_str("it is not a regular file"),
            NotALibraryKind::NoElfHeader => f.write_str(
                "the file has no ELF header (is it a source file or a build script rather than the built .so?)",
            ),
            NotALibraryKind::Refused(reason) => f.write_str(reason),
        }
    }
}

/// A port as the host keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Port name.
    pub name: String,
    /// Message type name.
    pub type_name: String,
    /// Message type hash.
    pub type_hash: u64,
    /// True for an output.
    pub output: bool,
    /// `abi::ENCODING_*`.
    pub encoding: u32,
    /// Largest message in bytes, 0 when unbounded.
    pub max_size: u64,
}

/// What a declared config key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `true` or `false`.
    Bool,
    /// An integer.
    Int,
    /// A number: a float, or an integer (converted).
    Float,
    /// A string.
    Str,
    /// An array (items unchecked).
    Array,
    /// A table (keys unchecked).
    Table,
}

impl ConfigKind {
    /// The kind for an `abi::CONFIG_*` value of a key descriptor.
    pub fn from_abi(kind: u32) -> Option<ConfigKind> {
        Some(match kind {
            abi::CONFIG_BOOL => ConfigKind::Bool,
            abi::CONFIG_INT => ConfigKind::Int,
            abi::CONFIG_FLOAT => ConfigKind::Float,
            abi::CONFIG_STRING => ConfigKind::Str,
            abi::CONFIG_ARRAY => ConfigKind::Array,
            abi::CONFIG_TABLE => ConfigKind::Table,
            _ => return None,
        })
    }

    /// The schema's name for it (`horus inspect`, Python's `ConfigKey(float)`): bool, int,
    /// float, str, array, table.
    pub fn name(self) -> &'static str {
        match self {
            ConfigKind::Bool => "bool",
            ConfigKind::Int => "int",
            ConfigKind::Float => "float",
            ConfigKind::Str => "str",
            ConfigKind::Array => "array",
            ConfigKind::Table => "table",
        }
    }

    /// Parses [`ConfigKind::name`].
    pub fn from_name(name: &str) -> Option<ConfigKind> {
        [
            ConfigKind::Bool,
            ConfigKind::Int,
            ConfigKind::Float,
            ConfigKind::Str,
            ConfigKind::Array,
            ConfigKind::Table,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// A config key a node type declares, as the host keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigKeyInfo {
    /// The key.
    pub name: String,
    /// What it holds.
    pub kind: ConfigKind,
    /// The manifest must set it.
    pub required: bool,
    /// The value used when it is absent.
    pub default: Option<toml::Value>,
    /// One line of documentation (may be empty).
    pub doc: String,
}

/// A node type as the host keeps it.
#[derive(Clone)]
pub struct NodeTypeInfo {
    /// Type name.
    pub name: String,
    /// Ports, in declaration order (the index is the port number in `send`/`recv`).
    pub ports: Vec<PortInfo>,
    /// The config keys the type accepts; `None` when it declares no schema (its `config` is
    /// not checked).
    pub config: Option<Vec<ConfigKeyInfo>>,
    /// Entry points; valid only while the library is loaded.
    pub(crate) vtable: NodeVTable,
}

impl std::fmt::Debug for NodeTypeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTypeInfo")
            .field("name", &self.name)
            .field("ports", &self.ports)
            .field("config", &self.config)
            .finish()
    }
}

/// What a plugin offers, copied out of its image.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The file the manifest named.
    pub path: PathBuf,
    /// The plugin crate's name.
    pub name: String,
    /// The plugin crate's version.
    pub version: String,
    /// Node types.
    pub node_types: Vec<NodeTypeInfo>,
}

/// An opened plugin. Dropping it unloads the library (see the module's invariants).
pub struct PluginLibrary {
    info: PluginInfo,
    loaded_path: PathBuf,
    /// The plugin's create entry that takes an argument, if it exports one.
    create_with_arg: Option<CreateWithArgFn>,
    /// The plugin's report of the topics its nodes use on their own, if it exports one.
    io_stats: Option<IoStatsFn>,
    // Declared last: dropped (dlclose) after everything else. `None` for a library that is
    // never unloaded (built into this process, or resident).
    _lib: Option<Library>,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("info", &self.info)
            .field("loaded_path", &self.loaded_path)
            .finish()
    }
}

// SAFETY: the only non-thread-safe parts are the raw pointers inside the copied vtables. They
// point at immutable static data and functions of the image, which stays mapped while this value
// lives; reading them from any thread is sound. Calling the entry points from several threads is
// part of the ABI contract (a plugin's node objects are independent; one object is only ever
// used by one thread at a time, see `NodeInstance`).
unsafe impl Send for PluginLibrary {}
// SAFETY: as for `Send`: shared access only reads immutable data.
unsafe impl Sync for PluginLibrary {}

static LOAD_SEQ: AtomicU64 = AtomicU64::new(0);

const MAX_NODE_TYPES: usize = 1024;
const MAX_PORTS: usize = 1024;
const MAX_CONFIG_KEYS: usize = 4096;
const MAX_NAME: usize = 4096;

impl PluginLibrary {
    /// Loads the plugin at `path` from a private copy and checks its header.
    pub fn open(path: &Path) -> Result<PluginLibrary, LoadError> {
        let meta = std::fs::metadata(path).map_err(|_| LoadError::NotFound {
            path: path.to_path_buf(),
        })?;
        if !meta.is_file() {
            return Err(LoadError::NotALibrary {
                path: path.to_path_buf(),
                kind: NotALibraryKind::NotRegularFile,
            });
        }
        check_elf(path)?;
        let (dir, copy) = private_copy(path)?;
        let opened = {
            // SAFETY: loading a library runs its initialisers. HORUS plugins are Rust cdylibs
            // with no load-time constructors of their own; any other library is refused right
            // after by the entry-symbol and header checks. The path comes from the manifest,
            // which the operator controls, and the copy sits in a fresh 0700 directory.
            unsafe { Library::open(Some(&copy), RTLD_NOW | RTLD_LOCAL) }
        };
        // The mapping outlives the name: remove the copy now so a crash leaves no file behind.
        let _ = std::fs::remove_file(&copy);
        let _ = std::fs::remove_dir(&dir);
        let lib = opened.map_err(|e| LoadError::NotALibrary {
            path: path.to_path_buf(),
            // dlerror names the private copy; the user knows the file by its own name.
            kind: NotALibraryKind::Refused(
                dl_reason(&e).replace(&*copy.to_string_lossy(), &path.to_string_lossy()),
            ),
        })?;
        let entry = entry_of(&lib, path)?;
        // SAFETY: `entry` is the library's `horus_plugin_entry` (see `entry_of` for why its type
        // is trusted), and `lib` is kept in the returned value, so the image stays mapped while
        // the copied vtables are used (module invariants).
        let info = unsafe { read_descriptor(entry, path)? };
        Ok(PluginLibrary {
            info,
            loaded_path: copy,
            create_with_arg: create_with_arg_of(&lib),
            io_stats: io_stats_of(&lib),
            _lib: Some(lib),
        })
    }

    /// Loads a **resident** plugin: opened from its own path (no private copy, so a library the
    /// process already has — e.g. the `horus` Python extension, imported — is the same image),
    /// never unloaded. `preload` libraries are first opened with `RTLD_GLOBAL` and kept, so the
    /// plugin's undefined symbols (libpython's, for the Python loader) resolve against them.
    /// This is how the Python loader is loaded: pyo3 keeps pointers into its image (type
    /// objects, interned strings) inside the interpreter, which outlives any node.
    pub fn open_resident(path: &Path, preload: &[PathBuf]) -> Result<PluginLibrary, LoadError> {
        if !path.is_file() {
            return Err(LoadError::NotFound {
                path: path.to_path_buf(),
            });
        }
        check_elf(path)?;
        for lib in preload {
            // SAFETY: a shared library the operator's Python installation provides (libpython);
            // its initialisers are the usual C runtime ones. It is never closed (forgotten
            // below), so nothing can outlive it.
            let opened = unsafe { Library::open(Some(lib), RTLD_NOW | RTLD_GLOBAL) };
            let opened = opened.map_err(|e| LoadError::NotALibrary {
                path: lib.clone(),
                kind: NotALibraryKind::Refused(dl_reason(&e)),
            })?;
            std::mem::forget(opened);
        }
        // SAFETY: as in `open`; the library is never closed (forgotten after its descriptor is
        // copied), so the copied entry points stay valid for the life of the process.
        let opened = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) };
        let lib = opened.map_err(|e| LoadError::NotALibrary {
            path: path.to_path_buf(),
            kind: NotALibraryKind::Refused(dl_reason(&e)),
        })?;
        let entry = entry_of(&lib, path)?;
        // SAFETY: as in `open`; the image is never unloaded (`lib` is forgotten below).
        let info = unsafe { read_descriptor(entry, path)? };
        let create_with_arg = create_with_arg_of(&lib);
        let io_stats = io_stats_of(&lib);
        std::mem::forget(lib);
        Ok(PluginLibrary {
            info,
            loaded_path: path.to_path_buf(),
            create_with_arg,
            io_stats,
            _lib: None,
        })
    }

    /// A plugin linked into this process (its entry function called directly), with the same
    /// header checks as a loaded one. `label` names it in errors and stats. The Python package
    /// runs its Python nodes through the loader's own entry this way.
    ///
    /// `create_with_arg` is the plugin's create entry taking an argument, if it has one, and
    /// `io_stats` its report of the topics its nodes use on their own (see [`IoStatsFn`]).
    ///
    /// # Safety
    /// `entry` is called, and the header and descriptor it returns are read and kept: it must be
    /// a HORUS plugin entry (as `export_plugin!` emits) of code that is never unloaded, since
    /// the returned library's node types call into it for as long as they are used. The same
    /// holds for `create_with_arg`, which must create objects of the descriptor's node types
    /// (see [`CreateWithArgFn`]), and for `io_stats` (see [`IoStatsFn`]).
    pub unsafe fn builtin(
        entry: EntryFn,
        create_with_arg: Option<CreateWithArgFn>,
        io_stats: Option<IoStatsFn>,
        label: &Path,
    ) -> Result<PluginLibrary, LoadError> {
        Ok(PluginLibrary {
            // SAFETY: the caller's contract is ours (see `# Safety`).
            info: unsafe { read_descriptor(entry, label)? },
            loaded_path: label.to_path_buf(),
            create_with_arg,
            io_stats,
            _lib: None,
        })
    }

    /// The plugin's report of the topics its nodes use on their own (see [`IoStatsFn`]), if it
    /// exports one.
    pub(crate) fn io_stats(&self) -> Option<IoStatsFn> {
        self.io_stats
    }

    /// The plugin's create entry that takes an argument (see [`CreateWithArgFn`]), if it
    /// exports one.
    pub(crate) fn create_with_arg(&self) -> Option<CreateWithArgFn> {
        self.create_with_arg
    }

    /// What the plugin offers.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The unique path the library image was loaded from (it appears in `/proc/self/maps`
    /// while loaded).
    pub fn loaded_path(&self) -> &Path {
        &self.loaded_path
    }

    /// The node type named `name`.
    pub fn node_type(&self, name: &str) -> Option<(usize, &NodeTypeInfo)> {
        self.info
            .node_types
            .iter()
            .enumerate()
            .find(|(_, t)| t.name == name)
    }
}

/// The loader's own words (`dlerror`), which name the missing symbol or the wrong format.
/// libloading keeps them in the error's `source`, behind a generic "dlopen failed".
fn dl_reason(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

/// Refuses a file that does not start with the ELF magic before `dlopen` sees it, with a reason
/// that says what the file probably is rather than the loader's bare "invalid ELF header".
fn check_elf(path: &Path) -> Result<(), LoadError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Ok(()) if &magic == b"\x7fELF" => Ok(()),
        Ok(()) => Err(no_elf_header(path)),
        // Shorter than the magic (an empty file included): not ELF either.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(no_elf_header(path)),
        Err(source) => Err(LoadError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn no_elf_header(path: &Path) -> LoadError {
    LoadError::NotALibrary {
        path: path.to_path_buf(),
        kind: NotALibraryKind::NoElfHeader,
    }
}

/// Copies `path` into a fresh owner-only directory under the temp dir; returns (dir, copy).
fn private_copy(path: &Path) -> Result<(PathBuf, PathBuf), LoadError> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |source| LoadError::Copy {
        path: path.to_path_buf(),
        source,
    };
    let seq = LOAD_SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("horus-load-{}-{seq}-{nanos}", std::process::id()));
    // `create` (not `create_all`) fails if the name exists, so nobody else owns this directory.
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(err)?;
    let stem = path
        .file_name()
        .map_or_else(|| "plugin.so".into(), |n| n.to_string_lossy().into_owned());
    let copy = dir.join(format!("{seq}-{stem}"));
    if let Err(e) = std::fs::copy(path, &copy) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(err(e));
    }
    Ok((dir, copy))
}

/// The name of the optional create entry taking an argument.
pub const CREATE_WITH_ARG_SYMBOL: &[u8] = b"horus_loader_create_v1\0";

/// A loader plugin's create entry that takes an argument besides the context: the Python
/// loader exports one (`horus_loader_create_v1`) so the host can hand a Python node its source
/// (a file and class, or a registered object) through a channel of its own, not through keys of
/// the user's `config`. Ordinary plugins do not export it, and it is not part of the plugin ABI
/// (`ABI_VERSION` and the layout hash do not cover it): only our own loader has it, built with
/// this host's code.
///
/// Arguments: the node type's name, the context, the argument's bytes (valid for the call),
/// where to write the object, and the error sink; returns a `STATUS_*` code like a vtable's
/// `create`. The object must be one the entries of that node type's vtable accept.
pub type CreateWithArgFn = unsafe extern "C" fn(
    node_type: RawSlice,
    ctx: *const horus_plugin_api::abi::NodeContext,
    arg: RawSlice,
    out: *mut *mut std::ffi::c_void,
    err: horus_plugin_api::abi::ByteSink,
) -> i32;

/// The name of the optional report of a node's own topics.
pub const IO_STATS_SYMBOL: &[u8] = b"horus_loader_io_stats_v1\0";

/// A loader plugin's report of the topics a node's code uses on its own, not through the ports
/// of its node type: a Python node's `self.send("demo/attitude", …)` goes to a named topic the
/// loader opens itself, which the host's `NodeIo` never sees. The Python loader exports one
/// (`horus_loader_io_stats_v1`) so that these counts reach the stats table and `--stats-json`
/// like a Rust node's. Like [`CreateWithArgFn`], it is not part of the plugin ABI: only our own
/// loader has it, built with this host's code.
///
/// Arguments: the context the node was created with (the loader only compares its address with
/// the contexts of the nodes it made; it does not read it) and a sink for the report, JSON of a
/// list of `crate::io::TopicStats`. Returns `STATUS_OK`, or another `STATUS_*` code with no report
/// (no such node). Called on the thread that calls the node's other entries, never during one.
pub type IoStatsFn = unsafe extern "C" fn(
    ctx: *const horus_plugin_api::abi::NodeContext,
    out: horus_plugin_api::abi::ByteSink,
) -> i32;

fn io_stats_of(lib: &Library) -> Option<IoStatsFn> {
    // SAFETY: as in `create_with_arg_of`: the symbol's type is `IoStatsFn`, and the name is
    // specific to HORUS's own loader.
    unsafe { lib.get::<IoStatsFn>(IO_STATS_SYMBOL) }.ok().map(|f| *f)
}

fn create_with_arg_of(lib: &Library) -> Option<CreateWithArgFn> {
    // SAFETY: the symbol's type is `CreateWithArgFn`; the name is specific to HORUS and only
    // our own loader (built from this repository with the same definition) exports it. As
    // with the entry symbol, a hostile library exporting the name with another type cannot be
    // detected.
    unsafe { lib.get::<CreateWithArgFn>(CREATE_WITH_ARG_SYMBOL) }
        .ok()
        .map(|f| *f)
}

fn entry_of(lib: &Library, path: &Path) -> Result<EntryFn, LoadError> {
    // SAFETY: the symbol's type is the ABI's `EntryFn`; if a library exports the name with
    // another type, calling it is undefined behaviour we cannot detect. The name is specific
    // to HORUS, so only HORUS plugins (or deliberately hostile libraries) export it.
    let entry = unsafe { lib.get::<EntryFn>(abi::ENTRY_SYMBOL) }.map_err(|_| LoadError::NoEntrySymbol {
        path: path.to_path_buf(),
    })?;
    Ok(*entry)
}

/// Reads and checks the header and descriptor `entry` returns; `path` names the plugin in errors.
///
/// # Safety
/// `entry` must be a function of the `EntryFn` signature that returns null or a pointer to a
/// static [`PluginHeader`] (the header is checked before anything else of it is trusted), and
/// it must belong to an image that stays loaded while the returned info's vtables are used.
unsafe fn read_descriptor(entry: EntryFn, path: &Path) -> Result<PluginInfo, LoadError> {
    let bad = |reason: &str| LoadError::BadDescriptor {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    // SAFETY: `entry` has the `EntryFn` signature and belongs to a loaded image (the caller's
    // contract); it takes no arguments and returns a pointer to a static header.
    let header_ptr = unsafe { entry() };
    if header_ptr.is_null() || !header_ptr.is_aligned() {
        return Err(bad("the entry symbol returned a null or misaligned header"));
    }
    // SAFETY: non-null and aligned (checked); the header's layout is frozen across ABI
    // versions, so reading it is valid for any HORUS plugin.
    let header: PluginHeader = unsafe { std::ptr::read(header_ptr) };
    if header.magic != abi::PLUGIN_MAGIC {
        return Err(bad("the header has no HORUS magic number"));
    }
    if header.abi_version != abi::ABI_VERSION {
        return Err(LoadError::AbiVersion {
            path: path.to_path_buf(),
            found: header.abi_version,
            expected: abi::ABI_VERSION,
        });
    }
    if header.layout_hash != abi::LAYOUT_HASH {
        return Err(LoadError::LayoutHash {
            path: path.to_path_buf(),
            version: header.abi_version,
            found: header.layout_hash,
            expected: abi::LAYOUT_HASH,
        });
    }
    if header.descriptor.is_null() || !header.descriptor.is_aligned() {
        return Err(bad("the descriptor pointer is null or misaligned"));
    }
    // SAFETY: version and layout match ours, so the descriptor has our layout; the pointer is
    // non-null, aligned and points at a static in the loaded image.
    let desc = unsafe { &*header.descriptor };
    let count = desc.node_type_count;
    if count == 0 || count > MAX_NODE_TYPES || desc.node_types.is_null() {
        return Err(bad(&format!(
            "it declares {count} node types (1 to {MAX_NODE_TYPES} expected)"
        )));
    }
    // SAFETY: `node_types` points at `count` vtables in a static of the image (checked non-null,
    // count bounded); the layout matches ours.
    let vtables = unsafe { std::slice::from_raw_parts(desc.node_types, count) };
    let mut node_types = Vec::with_capacity(count);
    for vt in vtables {
        let name = copy_str(vt.type_name).ok_or_else(|| bad("a node type name is not valid UTF-8"))?;
        if vt.port_count > MAX_PORTS || (vt.port_count > 0 && vt.ports.is_null()) {
            return Err(bad(&format!(
                "node type `{name}` declares {} ports",
                vt.port_count
            )));
        }
        let ports = if vt.port_count == 0 {
            &[][..]
        } else {
            // SAFETY: non-null, bounded count, static data of the image with our layout.
            unsafe { std::slice::from_raw_parts(vt.ports, vt.port_count) }
        };
        let ports = ports
            .iter()
            .map(|p| {
                Some(PortInfo {
                    name: copy_str(p.name)?,
                    type_name: copy_str(p.type_name)?,
                    type_hash: p.type_hash,
                    output: p.direction == abi::PORT_OUTPUT,
                    encoding: p.encoding,
                    max_size: p.max_size,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                bad(&format!(
                    "node type `{name}` has a port name that is not valid UTF-8"
                ))
            })?;
        let config = if vt.config_keys.is_null() {
            None
        } else {
            if vt.config_key_count > MAX_CONFIG_KEYS || !vt.config_keys.is_aligned() {
                return Err(bad(&format!(
                    "node type `{name}` declares {} config keys",
                    vt.config_key_count
                )));
            }
            let keys = if vt.config_key_count == 0 {
                &[][..]
            } else {
                // SAFETY: non-null and aligned (checked), bounded count, static data of the image
                // with our layout (version and layout hash matched).
                unsafe { std::slice::from_raw_parts(vt.config_keys, vt.config_key_count) }
            };
            let keys = keys
                .iter()
                .map(|k| {
                    config_key(k)
                        .ok_or_else(|| bad(&format!("node type `{name}` has a malformed config key")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(keys)
        };
        node_types.push(NodeTypeInfo {
            name,
            ports,
            config,
            vtable: *vt,
        });
    }
    Ok(PluginInfo {
        path: path.to_path_buf(),
        name: copy_str(desc.plugin_name).unwrap_or_default(),
        version: copy_str(desc.plugin_version).unwrap_or_default(),
        node_types,
    })
}

/// Copies one config key descriptor; `None` when a string or the kind is malformed.
fn config_key(k: &abi::ConfigKeyDesc) -> Option<ConfigKeyInfo> {
    let kind = ConfigKind::from_abi(k.kind)?;
    let d = &k.default;
    let default = match d.kind {
        abi::CONFIG_MISSING => None,
        abi::CONFIG_BOOL => Some(toml::Value::Boolean(d.int != 0)),
        abi::CONFIG_INT => Some(toml::Value::Integer(d.int)),
        abi::CONFIG_FLOAT => Some(toml::Value::Float(d.float)),
        abi::CONFIG_STRING => Some(toml::Value::String(copy_str(d.text)?)),
        _ => return None,
    };
    Some(ConfigKeyInfo {
        name: copy_str(k.name).filter(|n| !n.is_empty())?,
        kind,
        required: k.flags & abi::CONFIG_KEY_REQUIRED != 0,
        default,
        doc: copy_str(k.doc)?,
    })
}

/// Copies a plugin string into host memory; `None` if it is too long, null or not UTF-8.
fn copy_str(s: RawSlice) -> Option<String> {
    if s.len == 0 {
        return Some(String::new());
    }
    if s.ptr.is_null() || s.len > MAX_NAME {
        return None;
    }
    // SAFETY: the plugin's descriptor strings point at `len` bytes of static data in its image
    // (ABI contract); null and oversized slices are refused above.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn open_err(path: &Path) -> LoadError {
        match PluginLibrary::open(path) {
            Ok(_) => panic!("{} was loaded", path.display()),
            Err(e) => e,
        }
    }

    fn kind_of(path: &Path) -> NotALibraryKind {
        match open_err(path) {
            LoadError::NotALibrary { path: p, kind } => {
                assert_eq!(p, path, "the error names the file asked for");
                kind
            }
            other => panic!("expected NotALibrary for {}, got {other:?}", path.display()),
        }
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libnope.so");
        assert!(matches!(open_err(&path), LoadError::NotFound { path: p } if p == path));
    }

    #[test]
    fn a_folder_or_a_device_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(kind_of(dir.path()), NotALibraryKind::NotRegularFile);
        assert_eq!(kind_of(Path::new("/dev/null")), NotALibraryKind::NotRegularFile);
        assert_eq!(
            open_err(dir.path()).to_string(),
            format!(
                "{} is not a loadable shared library: it is not a regular file",
                dir.path().display()
            )
        );
    }

    #[test]
    fn text_empty_and_short_files_have_no_elf_header() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("text.so", &b"this is not ELF"[..]),
            ("empty.so", b""),
            ("short.so", b"\x7fEL"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(kind_of(&path), NotALibraryKind::NoElfHeader, "{name}");
        }
        let path = dir.path().join("text.so");
        assert_eq!(
            open_err(&path).to_string(),
            format!(
                "{} is not a loadable shared library: the file has no ELF header (is it a source file or a \
                 build script rather than the built .so?)",
                path.display()
            )
        );
    }

    #[test]
    fn a_truncated_elf_file_is_refused_by_the_loader_in_its_own_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libtruncated.so");
        let mut bytes = b"\x7fELF".to_vec();
        bytes.resize(64, 0);
        std::fs::write(&path, bytes).unwrap();
        let NotALibraryKind::Refused(reason) = kind_of(&path) else {
            panic!("expected the dynamic loader's refusal");
        };
        assert!(!reason.is_empty());
        assert!(
            !reason.contains("horus-load-"),
            "the reason names the file, not the private copy: {reason}"
        );
    }

    #[test]
    fn an_unreadable_file_is_a_read_error_not_a_copy_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libsecret.so");
        std::fs::write(&path, b"\x7fELF").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::File::open(&path).is_ok() {
            // Root (or CAP_DAC_OVERRIDE) reads any file: nothing to test here.
            eprintln!("skipped: this user may read a mode-000 file");
            return;
        }
        match open_err(&path) {
            LoadError::Read { path: p, source } => {
                assert_eq!(p, path);
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
            }
            other => panic!("expected Read, got {other:?}"),
        }
    }

    /// # Safety
    /// None needed: returns null, which `read_descriptor` must refuse.
    unsafe extern "C" fn null_entry() -> *const PluginHeader {
        std::ptr::null()
    }

    #[test]
    fn a_builtin_entry_returning_no_header_is_a_bad_descriptor() {
        // SAFETY: `null_entry` has the `EntryFn` signature and lives in this test binary, which
        // stays loaded; it returns null, which is checked before anything is read.
        let e = unsafe { PluginLibrary::builtin(null_entry, None, None, Path::new("<test>")) }.unwrap_err();
        assert!(matches!(e, LoadError::BadDescriptor { .. }), "{e:?}");
    }
}
