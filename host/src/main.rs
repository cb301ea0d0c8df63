//! `horus`: run and check HORUS manifests. Argument parsing and exit codes only; the work is in
//! the `horus_host` library.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
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
    },
    /// Check a manifest and its plugins without starting any node.
    Check {
        /// The manifest (TOML).
        manifest: PathBuf,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. `5s`, `500ms`, `2m`)"))
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = match &cli.command {
        Command::Check { manifest } => horus_host::check(manifest).map(|graph| {
            print!("{}", horus_host::run::describe(&graph));
        }),
        Command::Run {
            manifest,
            duration,
            stats_json,
        } => {
            let opts = horus_host::RunOptions {
                manifest: manifest.clone(),
                duration: *duration,
                stats_json: stats_json.clone(),
            };
            horus_host::run(&opts).map(|report| {
                print!("{}", horus_host::scheduler::table(&report.nodes));
                println!(
                    "ran {:.2} s, {} cycles, {} overruns",
                    report.elapsed.as_secs_f64(),
                    report.cycles,
                    report.overruns
                );
            })
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
