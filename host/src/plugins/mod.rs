//! Finding plugins that a manifest names instead of locating: the search path
//! ([`search::SearchPath`]: `[plugins] path`, `HORUS_PLUGIN_PATH`, the `horus` executable's
//! folder, the user data folder), a plugin by name (`imu-sim` → `libimu_sim.so`), and a node
//! type's plugin by what the plugins on the path offer ([`scan::Scanner`]), with the files
//! refused on the way. What a plugin offers is kept between runs in the registry cache
//! ([`cache::Registry`], keyed by each file's identity), so a library is opened once per build,
//! not once per run.
//!
//! Owns where plugins are and what they offer. It does not own loading them for a run
//! ([`crate::graph`]'s first step calls this module, then opens the file found as it opens a
//! path), nor the errors' wording in a manifest (the graph turns these results into located
//! diagnostics).

pub mod cache;
pub mod elf;
pub mod scan;
pub mod search;

pub use cache::{Registry, Stamp};
pub use scan::{
    Described, Direction, NodeTypeDesc, PortDesc, RefusalKind, Scan, Scanner, TypeError, Verdict,
};
pub use search::{Folder, Origin, SearchPath};
