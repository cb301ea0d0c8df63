//! The `horus stats` command: picks the host to read, renders its reply as the live table or as
//! JSON, refreshes it with `--watch`, and maps failures to exit codes
//! ([`ControlError::exit_code`]: 0 ok, 1 no host answers, 2 the choice of host is ambiguous).
//!
//! Does not own the socket or the protocol ([`crate::control`]), the node table
//! ([`crate::scheduler::table`]) or the hub lines ([`crate::net::status::HubStatus::line`]).

use crate::control::{self, ControlError, StatsReply};
use std::io::IsTerminal;
use std::time::Duration;

/// How often `--watch` refreshes.
pub const WATCH_PERIOD: Duration = Duration::from_secs(1);

/// What `horus stats` was asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsArgs {
    /// The nodes as JSON (the same objects as `--stats-json`) instead of the table.
    pub json: bool,
    /// Refresh every [`WATCH_PERIOD`] until interrupted.
    pub watch: bool,
    /// The host to read, when several run.
    pub pid: Option<u32>,
}

/// How a reply is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header line (pid, manifest, uptime), the node table, a line per network hub.
    Table,
    /// The nodes as one JSON list on one line.
    Json,
}

impl ControlError {
    /// The exit code of `horus stats`: 2 when the choice of host is ambiguous, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            ControlError::Ambiguous { .. } => 2,
            ControlError::NoHost { .. } | ControlError::NoSuchPid { .. } | ControlError::Io { .. } => 1,
        }
    }
}

/// `reply` as `horus stats` prints it, with its final newline.
pub fn render(reply: &StatsReply, format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Json => serde_json::to_string(&reply.nodes)? + "\n",
        Format::Table => {
            let mut out = format!(
                "horus pid {} — {} — up {:.1} s\n{}",
                reply.pid,
                reply.manifest,
                reply.uptime_s,
                crate::scheduler::table(&reply.nodes)
            );
            for hub in &reply.hubs {
                out.push_str(&hub.line());
                out.push('\n');
            }
            out
        }
    })
}

/// Runs `horus stats` in this user's namespace, printing to stdout. Returns when one reply is
/// printed (without `--watch`) or a host stops answering.
pub fn run(args: &StatsArgs) -> Result<(), ControlError> {
    let namespace = crate::shm::namespace();
    let path = control::pick(&namespace, args.pid)?;
    let format = if args.json { Format::Json } else { Format::Table };
    // Redraw in place only on a terminal: a redirected --watch keeps every refresh.
    let clear = args.watch && format == Format::Table && std::io::stdout().is_terminal();
    loop {
        let reply = control::query(&path)?;
        match render(&reply, format) {
            Ok(text) => {
                if clear {
                    print!("\x1b[2J\x1b[H");
                }
                print!("{text}");
            }
            // Not fatal: the next refresh may serialize (and without --watch the host answered).
            Err(e) => eprintln!("horus stats: {e}"),
        }
        if !args.watch {
            return Ok(());
        }
        std::thread::sleep(WATCH_PERIOD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::status::{HubMetrics, HubStatus, Role};
    use crate::scheduler::NodeStats;
    use std::path::PathBuf;

    fn node(name: &str) -> NodeStats {
        serde_json::from_value(serde_json::json!({
            "name": name, "total_ticks": 10, "total_failures": 0, "consecutive_failures": 0,
            "priority": 0, "tick_rate": 100.0, "logging_enabled": true,
            "tick_duration_min_us": 1.0, "tick_duration_avg_us": 2.0, "tick_duration_max_us": 3.0,
            "tick_duration_p99_us": 3.0, "actual_rate_hz": 99.5, "last_error": null,
            "circuit_state": "closed", "restarts": 0, "deadline_ms": null, "deadline_misses": 0,
            "watchdog_enabled": false, "watchdog_timeout_ms": 0, "watchdog_expired": false,
            "messages_sent": 0, "messages_received": 0, "dropped": 0, "node_type": "Noop",
            "plugin": "libnoop.so", "isolation": "inline", "topics": []
        }))
        .expect("a complete NodeStats")
    }

    fn reply(hubs: Vec<HubStatus>) -> StatsReply {
        StatsReply {
            version: control::PROTOCOL_VERSION,
            pid: 4242,
            manifest: "robot.toml".into(),
            manifest_path: "/robots/robot.toml".into(),
            uptime_s: 12.345,
            nodes: vec![node("imu"), node("filter")],
            hubs,
        }
    }

    #[test]
    fn the_table_is_a_header_the_node_table_and_a_line_per_hub() {
        let hub = HubStatus {
            name: "sensors".into(),
            endpoint: "tcp/127.0.0.1:7450".into(),
            role: Role::Listening,
            connected: false,
            peers: 0,
            last_error: None,
            metrics: HubMetrics::default(),
        };
        let r = reply(vec![hub.clone()]);
        let text = render(&r, Format::Table).unwrap();
        let expected = format!(
            "horus pid 4242 — robot.toml — up 12.3 s\n{}{}\n",
            crate::scheduler::table(&r.nodes),
            hub.line()
        );
        assert_eq!(text, expected);
        assert!(text.contains("hub `sensors` (tcp/127.0.0.1:7450, listen): not connected"));

        let no_hubs = render(&reply(Vec::new()), Format::Table).unwrap();
        assert!(no_hubs.ends_with(&crate::scheduler::table(&r.nodes)), "{no_hubs}");
    }

    #[test]
    fn json_is_the_node_list_on_one_line() {
        let r = reply(Vec::new());
        let text = render(&r, Format::Json).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with('\n'));
        let back: Vec<NodeStats> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r.nodes);
    }

    #[test]
    fn exit_codes_are_1_without_a_host_and_2_when_ambiguous() {
        let cases = [
            (
                ControlError::NoHost {
                    namespace: "u1".into(),
                    dir: PathBuf::from("/run/user/1/horus/u1"),
                },
                1,
            ),
            (
                ControlError::NoSuchPid {
                    pid: 1,
                    namespace: "u1".into(),
                },
                1,
            ),
            (
                ControlError::Io {
                    path: PathBuf::from("/run/user/1/horus/u1/7.sock"),
                    reason: "bad reply".into(),
                },
                1,
            ),
            (
                ControlError::Ambiguous {
                    count: 2,
                    pids: "7, 8".into(),
                },
                2,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
        }
    }
}
