//! `horus`: run and check HORUS manifests. Argument parsing and exit codes only; the work is in
//! the `horus_host` library.

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// HORUS: a runtime for robot software. Loads node plugins named in a TOML manifest and runs them
/// under one scheduler.
#[derive(Debug, Parser)]
#[command(name = "horus", version, about, long_about = None)]
struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a manifest until Ctrl-C, SIGTERM or --duration, then print the stats table.
    Run {
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Stop after this long, e.g. `5s`, `500ms`, `2m`.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Write the final per-node stats as a JSON list to FILE.
        #[arg(long, value_name = "FILE")]
        stats_json: Option<PathBuf>,
        /// Hot reload: when a node's plugin file changes (a rebuild), swap the new code in while
        /// the others keep running, keeping the node's state (see docs/hot-reload.md).
        #[arg(long)]
        watch: bool,
        /// Exit with code 1 (after the stats) when any node ended the run with its circuit not
        /// closed (open, half_open or failed). For CI; a node that fails to start is always 1.
        #[arg(long)]
        fail_on_node_error: bool,
        /// Record every topic of this host (its connections too, as `node.port`) and every
        /// node's ticks into an MCAP file (see docs/recording.md).
        #[arg(long, value_name = "FILE.mcap")]
        record: Option<PathBuf>,
        /// With --record: only these channels (named topics, connections as `node.port`).
        #[arg(long, value_delimiter = ',', requires = "record")]
        record_topics: Vec<String>,
        /// With --record: the standard messages and Python objects as MCAP `json`.
        #[arg(long, requires = "record")]
        record_json: bool,
        /// With --record: compress the file's chunks, `none`, `zstd` or `lz4` (a build with
        /// the `horus-host/compression` feature).
        #[arg(long, requires = "record", default_value = "none", value_parser = horus_host::record::parse_compression)]
        record_compression: horus_host::record::Compression,
    },
    /// Apply a changed manifest to the host running it (in this user's HORUS_NAMESPACE): only
    /// the difference, at a tick boundary; an invalid manifest or a change that cannot be
    /// applied live changes nothing (exit 2). See docs/manifest.md, "Changing a running system".
    Apply {
        /// The manifest (TOML), as the running host was started with (any path to the same file).
        manifest: PathBuf,
        /// Print the plan without applying it.
        #[arg(long)]
        dry_run: bool,
        /// The host to apply to, when several run the manifest.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Check a manifest and its plugins without starting any node.
    Check {
        /// The manifest (TOML).
        manifest: PathBuf,
    },
    /// Internal: run one `isolation = "process"` node for the host that started this process.
    #[command(name = "__worker", hide = true)]
    Worker,
    /// Internal: open a plugin in this (child) process, so that a library that crashes when it
    /// is loaded takes only this process down.
    #[command(name = "__inspect", hide = true)]
    InspectChild {
        /// The plugin file.
        plugin: PathBuf,
    },
    /// List every plugin on the plugin search path (with its node types) and every file there
    /// that is refused, with why.
    Plugins {
        /// Print JSON (keys in docs/plugins.md).
        #[arg(long)]
        json: bool,
        /// Search this manifest's `[plugins] path` first.
        #[arg(long, value_name = "M")]
        manifest: Option<PathBuf>,
    },
    /// Show a node type (ports, message types, a manifest snippet), or every node type of a
    /// plugin: by node type name, plugin name or file, tried in that order.
    Inspect {
        /// A node type (`ImuSim`), a plugin name (`imu-sim`) or the path of a plugin file.
        target: String,
        /// Print JSON (keys in docs/plugins.md).
        #[arg(long)]
        json: bool,
        /// Search this manifest's `[plugins] path` first.
        #[arg(long, value_name = "M")]
        manifest: Option<PathBuf>,
    },
    /// Start something new: `horus new node <name>` writes a node project that builds, tests and
    /// runs as written.
    New {
        #[command(subcommand)]
        what: New,
    },
    /// Show the live node table of a running host (in this user's HORUS_NAMESPACE).
    Stats {
        /// Print the nodes as JSON (the same objects as --stats-json).
        #[arg(long)]
        json: bool,
        /// Refresh every second, like `top`, until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// The host to read, when several run.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Draw a manifest as a graph (nodes, ports, topics, hubs, QoS) for Graphviz (`dot`, the
    /// default) or a Markdown viewer (`mermaid`); `--running`: the running host's, with its
    /// nodes' measured rates.
    Graph {
        /// The manifest (not with --running).
        manifest: Option<PathBuf>,
        /// `dot` or `mermaid`.
        #[arg(long, default_value = "dot")]
        format: horus_host::graph_view::Format,
        /// The manifest of the host running in this namespace.
        #[arg(long, conflicts_with = "manifest")]
        running: bool,
        /// The host to draw, when several run.
        #[arg(long, requires = "running")]
        pid: Option<u32>,
    },
    /// Record topics of the running system into an MCAP file (Ctrl-C or --duration stops).
    Record {
        /// The MCAP file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Topics: named topics, or connections as `node.port`.
        topics: Vec<String>,
        /// Every topic of the namespace, and those that appear while recording.
        #[arg(long, conflicts_with = "topics")]
        all: bool,
        /// Stop after this long.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Write the standard messages and Python objects as MCAP `json` (Foxglove shows the
        /// fields) instead of the bytes they travel as.
        #[arg(long)]
        json: bool,
        /// The host whose connections to record, when several have one of a name.
        #[arg(long)]
        pid: Option<u32>,
        /// Compress the file's chunks: `none`, `zstd` or `lz4` (a build with the
        /// `horus-host/compression` feature).
        #[arg(long, default_value = "none", value_parser = horus_host::record::parse_compression)]
        compression: horus_host::record::Compression,
    },
    /// Publish a `horus record` file's messages again onto named topics of its channels' names,
    /// with the recorded timing (Ctrl-C stops).
    Replay {
        /// The MCAP file.
        input: PathBuf,
        /// Time factor: 2.0 replays twice as fast.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Start again at the end, until Ctrl-C.
        #[arg(long = "loop")]
        looping: bool,
        /// Only these channels (comma-separated).
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Skip this much of the recording's beginning.
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        start: Duration,
        /// Publish channel `from` on topic `to` (repeatable).
        #[arg(long, value_parser = horus_host::replay::parse_remap)]
        remap: Vec<(String, String)>,
        /// With --node: the manifest that declares the node.
        #[arg(long, value_name = "M", requires = "node")]
        manifest: Option<PathBuf>,
        /// Re-run this node of --manifest over the recording, deterministically: its recorded
        /// inputs, at its recorded ticks, with its recorded clock (a file of `horus run
        /// --record`; see docs/recording.md).
        #[arg(long, requires = "manifest", conflicts_with_all = ["speed", "looping", "topics", "start", "remap"])]
        node: Option<String>,
        /// With --node: compare the node's outputs with the recorded ones, message by message;
        /// exit 1 at the first difference, 0 when identical.
        #[arg(long, requires = "node")]
        check: bool,
    },
    /// Look at the topics of this user's HORUS_NAMESPACE: `list`, `echo <topic>`, `hz <topic>`.
    Topic {
        #[command(subcommand)]
        what: TopicCmd,
    },
}

#[derive(Debug, Subcommand)]
enum TopicCmd {
    /// Every topic: named topics and each host's node-to-node connections (as `node.port`),
    /// with type, publishers, subscribers, messages so far and rate (sampled over 0.5 s).
    List {
        /// The topics as one JSON list.
        #[arg(long)]
        json: bool,
    },
    /// Print a topic's messages as they arrive (without holding its publishers back).
    Echo {
        /// A named topic, or a connection's `node.port`.
        topic: String,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
        /// Stop after this many messages (default: until Ctrl-C).
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// The host whose connection to read, when several have one of that name.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Print a topic's rate and the spread of its intervals once a second.
    Hz {
        /// A named topic, or a connection's `node.port`.
        topic: String,
        /// Intervals in the sliding window.
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// Stop after this long (default: until Ctrl-C).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// One JSON object per report.
        #[arg(long)]
        json: bool,
        /// The host whose connection to read, when several have one of that name.
        #[arg(long)]
        pid: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum New {
    /// A node: a Rust plugin crate (a node type with an input and an output port, a config
    /// schema, hot-reload state, a unit test) or, with --python, a Python node file; each with a
    /// manifest.toml that runs it and a README.
    Node {
        /// The crate name: lowercase letters, digits, `-` and `_`, starting with a letter.
        name: String,
        /// Write a Python node (`<name>.py`, `-` as `_`) instead of a Rust plugin crate.
        #[arg(long)]
        python: bool,
        /// The folder to create (default: ./<name>); it must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// The `plugin-api` folder the crate depends on (default: this horus's checkout).
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

/// This binary, for the child processes that inspect plugins (`__inspect`).
fn this_program() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

/// Prints a command's output, or its error with its exit code.
fn print_or_fail(out: Result<String, horus_host::plugins_cli::CliError>) -> ExitCode {
    match out {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. `5s`, `500ms`, `2m`)"))
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    // Zenoh's own lines (connection retries, which the hub reports itself) only from -vv on.
    let default = match (quiet, verbose) {
        (true, _) => "warn,zenoh=error",
        (false, 0) => "info,zenoh=error",
        (false, 1) => "debug,zenoh=warn",
        (false, _) => "trace",
    };
    // Worker processes of `isolation = "process"` nodes are configured through the environment:
    // hand them this run's level when the user gave none.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", default);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // A stderr nobody reads any more (a closed pipe: `horus run … | head`, a killed
        // terminal) loses the log lines, nothing else: by default the subscriber reports the
        // failed write with `eprintln!`, which panics on that same stderr — inside a node's
        // log call from plugin code, an abort that left the run's topics in /dev/shm.
        .log_internal_errors(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = match &cli.command {
        Command::Replay {
            input,
            speed,
            looping,
            topics,
            start,
            remap,
            manifest,
            node,
            check,
        } => {
            if let (Some(manifest), Some(node)) = (manifest, node) {
                let args = horus_host::rerun::RerunArgs {
                    input: input.clone(),
                    manifest: manifest.clone(),
                    node: node.clone(),
                    check: *check,
                    inspector: this_program(),
                };
                return match horus_host::rerun::replay_node(&args) {
                    Ok((text, code)) => {
                        print!("{text}");
                        ExitCode::from(code)
                    }
                    Err(e) => {
                        eprintln!("horus replay: {e}");
                        ExitCode::from(e.exit_code())
                    }
                };
            }
            let args = horus_host::replay::ReplayArgs {
                input: input.clone(),
                speed: *speed,
                looping: *looping,
                topics: topics.clone(),
                start: *start,
                remap: remap.iter().cloned().collect(),
            };
            return match horus_host::replay::replay(&horus_host::shm::namespace(), &args) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("horus replay: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Record {
            output,
            topics,
            all,
            duration,
            json,
            pid,
            compression,
        } => {
            let args = horus_host::record::RecordArgs {
                output: output.clone(),
                topics: topics.clone(),
                all: *all,
                duration: *duration,
                json: *json,
                pid: *pid,
                compression: *compression,
            };
            return match horus_host::record::record(&horus_host::shm::namespace(), &args) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("horus record: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Graph {
            manifest,
            format,
            running,
            pid,
        } => {
            let mut rates = std::collections::BTreeMap::new();
            let path = match (manifest, *running) {
                (Some(m), _) => m.clone(),
                (None, true) => {
                    let ns = horus_host::shm::namespace();
                    let reply =
                        horus_host::control::pick(&ns, *pid).and_then(|s| horus_host::control::query(&s));
                    match reply {
                        Ok(reply) => {
                            for n in &reply.nodes {
                                rates.insert(n.name.clone(), n.actual_rate_hz);
                            }
                            reply.manifest_path
                        }
                        Err(e) => {
                            eprintln!("horus graph: {e}");
                            return ExitCode::from(e.exit_code());
                        }
                    }
                }
                (None, false) => {
                    eprintln!("horus graph: name a manifest, or use --running for the host running in this namespace");
                    return ExitCode::from(2);
                }
            };
            horus_host::run::check_with(&path, this_program().as_deref()).map(|graph| {
                let model = horus_host::graph_view::Model::of(&graph, &rates);
                print!("{}", horus_host::graph_view::render(&model, *format));
            })
        }
        Command::Topic { what } => {
            let ns = horus_host::shm::namespace();
            let done = match what {
                TopicCmd::List { json } => horus_host::topic_cli::list(&ns, *json).map(|t| print!("{t}")),
                TopicCmd::Echo {
                    topic,
                    json,
                    count,
                    pid,
                } => horus_host::topic_cli::echo(&ns, topic, *pid, *json, *count),
                TopicCmd::Hz {
                    topic,
                    window,
                    duration,
                    json,
                    pid,
                } => horus_host::topic_cli::hz(&ns, topic, *pid, *window, *duration, *json),
            };
            return match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("horus topic: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Stats { json, watch, pid } => {
            let args = horus_host::stats_cli::StatsArgs {
                json: *json,
                watch: *watch,
                pid: *pid,
            };
            return match horus_host::stats_cli::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("horus stats: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Apply {
            manifest,
            dry_run,
            pid,
        } => {
            return match horus_host::apply::request(manifest, *dry_run, *pid) {
                Ok(outcome) => {
                    match outcome.exit_code() {
                        0 => println!("{}", outcome.text()),
                        _ => eprintln!("{}", outcome.text()),
                    }
                    ExitCode::from(outcome.exit_code())
                }
                Err(e) => {
                    eprintln!("horus apply: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Worker => {
            let job = std::env::var(horus_host::worker::JOB_ENV).unwrap_or_default();
            return match horus_host::worker::run(&job) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("horus worker: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Command::InspectChild { plugin } => return ExitCode::from(horus_host::graph::inspect_plugin(plugin)),
        Command::Plugins { json, manifest } => {
            let out = horus_host::plugins_cli::plugins(*json, manifest.as_deref(), this_program().as_deref());
            return print_or_fail(out);
        }
        Command::Inspect {
            target,
            json,
            manifest,
        } => {
            let out = horus_host::plugins_cli::inspect(
                target,
                *json,
                manifest.as_deref(),
                this_program().as_deref(),
            );
            return print_or_fail(out);
        }
        Command::New {
            what:
                New::Node {
                    name,
                    python,
                    path,
                    sdk,
                },
        } => {
            let req = horus_host::scaffold::NewNode {
                name: name.clone(),
                python: *python,
                path: path.clone(),
                sdk: sdk.clone(),
            };
            return match horus_host::scaffold::new_node(&req, this_program().as_deref()) {
                Ok(created) => {
                    print!("{created}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("horus new node: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Check { manifest } => {
            horus_host::run::check_with(manifest, this_program().as_deref()).map(|graph| {
                print!("{}", horus_host::run::describe(&graph));
                if let Some(warning) = horus_host::run::shm_warning(&graph) {
                    eprintln!("{warning}");
                }
            })
        }
        Command::Run {
            manifest,
            duration,
            stats_json,
            watch,
            fail_on_node_error,
            record,
            record_topics,
            record_json,
            record_compression,
        } => {
            let opts = horus_host::RunOptions {
                manifest: manifest.clone(),
                duration: *duration,
                stats_json: stats_json.clone(),
                inspector: this_program(),
                watch: *watch,
                record: record.as_ref().map(|output| horus_host::record::HostRecordArgs {
                    output: output.clone(),
                    topics: record_topics.clone(),
                    json: *record_json,
                    compression: *record_compression,
                }),
            };
            match horus_host::run(&opts) {
                Ok(report) => {
                    // A stdout nobody reads any more (`horus run … | head`) loses the table;
                    // the run's outcome (exit code, --stats-json) stands.
                    let mut out = std::io::stdout().lock();
                    let _ = write!(out, "{}", horus_host::scheduler::table(&report.nodes));
                    let _ = writeln!(
                        out,
                        "ran {:.2} s, {} cycles, {} overruns",
                        report.elapsed.as_secs_f64(),
                        report.cycles,
                        report.overruns
                    );
                    let unhealthy = horus_host::run::unhealthy_lines(&report);
                    if *fail_on_node_error && !unhealthy.is_empty() {
                        eprint!("{unhealthy}");
                        return ExitCode::from(1);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
