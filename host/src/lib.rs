//! # horus-host
//!
//! The HORUS host as a library: the `horus` binary is a thin CLI over [`run::check`] and
//! [`run::run`]. Data flows through the modules in this order:
//!
//! ```text
//! manifest (TOML) ──▶ manifest::load ──▶ Manifest ──▶ graph::Graph::build ──▶ Graph
//!                       (diag: codes,      (validated)    (ffi: dlopen, ABI check,   (nodes + topics)
//!                        line:col, hints)                  ports, connections)
//! Graph ──▶ scheduler::run ──▶ [scheduler thread] create/init ─▶ tick loop ─▶ shutdown/destroy
//!                                   │ node tick ──▶ ffi::host_api ──▶ io::NodeIo ──▶ topic
//!                                   ▼
//!                               RunReport (stats table, --stats-json)
//! ```
//!
//! `unsafe` lives only in [`ffi`] (plugins: dlopen, the C ABI, the host callbacks) and [`shm`]
//! (shared-memory mappings, atomics and futexes on them); every other module is safe Rust (the
//! crate denies `unsafe_code`). See `docs/architecture.md` for the map and the reasons.

pub mod apply;
pub mod control;
pub mod diag;
#[expect(unsafe_code, reason = "dlopen, the C ABI and the host callbacks")]
pub mod ffi;
pub mod graph;
pub mod graph_view;
pub mod io;
pub mod manifest;
pub mod net;
pub mod plugins;
pub mod plugins_cli;
pub mod pycheck;
pub mod python;
pub mod record;
pub mod reload;
pub mod replay;
pub mod rerun;
pub mod run;
pub mod scaffold;
pub mod scheduler;
#[expect(unsafe_code, reason = "shared-memory mappings viewed as atomics")]
pub mod shm;
pub mod stats_cli;
pub mod topic;
pub mod topic_cli;
pub mod worker;

pub use run::{check, run, HostError, RunOptions};
