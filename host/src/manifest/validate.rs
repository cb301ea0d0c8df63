//! Turns manifest text into a validated [`Manifest`], collecting every problem as a
//! [`Diagnostic`] with file, line, column, key and hint.

use super::limits::{self, Bounded, Limit};
use super::raw::{self, RawConnect, RawManifest, RawNode, RawScheduler};
use super::{
    BuildSpec, ConnectSpec, Endpoint, HubDecl, Isolation, Located, Manifest, NodeCode, NodeSpec, PluginCode,
    PluginRef, Preset, PythonSpec, Qos, Route, SchedulerSpec, SupervisionSpec, Trigger,
};
use crate::diag::{suggest, Code, Diagnostic, Diagnostics, LineIndex, Location};
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Reads and validates the manifest at `path`. Plugin paths resolve against its folder.
pub fn load(path: &Path) -> Result<Manifest, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(Code::H0001, path, format!("cannot read the manifest: {e}"))
            .hint("check the path; manifests are TOML files such as manifests/demo.toml")
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base)
}

/// Validates manifest `text` read from `path`; relative plugin paths resolve against `base`.
pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Manifest, Diagnostics> {
    // Syntax first, so that a syntax error is never reported as a schema error.
    let doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e
                .span()
                .map_or(Location::default(), |s| Location::of_offset(text, s.start));
            return Err(
                Diagnostic::new(Code::H0002, path, format!("invalid TOML: {}", e.message().trim()))
                    .at(at)
                    .hint("fix the TOML syntax (https://toml.io)")
                    .into(),
            );
        }
    };
    // Every unknown key of every table at once (serde would stop at the first).
    let unknown = unknown_keys(doc.get_ref(), text, path);
    if !unknown.is_empty() {
        return Err(unknown.sorted());
    }
    let raw: RawManifest =
        toml::from_str(text).map_err(|e| Diagnostics::from(schema_error(&e, text, path)))?;
    Validator {
        lines: LineIndex::new(text),
        path,
        base,
        diags: Diagnostics::default(),
    }
    .run(raw)
}

/// Reports every key that no table of the manifest accepts, each at its own position.
fn unknown_keys(doc: &toml::de::DeTable<'_>, text: &str, path: &Path) -> Diagnostics {
    use toml::de::{DeTable, DeValue};
    let mut diags = Diagnostics::default();
    let mut check = |table: &DeTable<'_>, known: &[&str], context: &str| {
        for key in table.keys() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = match suggest(name, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("remove it; valid keys {context}: {}", known.join(", ")),
            };
            diags.push(
                Diagnostic::new(Code::H0003, path, format!("unknown field `{name}`"))
                    .at(Location::of_offset(text, key.span().start))
                    .key(name.to_owned())
                    .hint(hint),
            );
        }
    };
    check(doc, raw::TOP_KEYS, "at the top level");
    let tables = |key: &str| -> Vec<&DeTable<'_>> {
        match doc.get(key).map(|v| v.get_ref()) {
            Some(DeValue::Table(t)) => vec![t],
            Some(DeValue::Array(items)) => items
                .iter()
                .filter_map(|v| match v.get_ref() {
                    DeValue::Table(t) => Some(t),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    for t in tables("scheduler") {
        check(t, raw::SCHEDULER_KEYS, "in [scheduler]");
    }
    for t in tables("node") {
        check(t, raw::NODE_KEYS, "in [[node]]");
    }
    for t in tables("connect") {
        check(t, raw::CONNECT_KEYS, "in [[connect]]");
    }
    for t in tables("plugins") {
        check(t, raw::PLUGINS_KEYS, "in [plugins]");
    }
    for t in tables("hub") {
        for (_, hub) in t.iter() {
            if let DeValue::Table(hub) = hub.get_ref() {
                check(hub, raw::HUB_KEYS, "in [hub.<name>]");
            }
        }
    }
    diags
}

/// Checks a `watch` glob: `Err((char index, why))` when it does not parse, or is empty.
fn watch_pattern(pattern: &str) -> Result<(), (usize, String)> {
    if pattern.trim().is_empty() {
        return Err((0, "the pattern is empty".to_owned()));
    }
    glob::Pattern::new(pattern)
        .map(drop)
        .map_err(|e| (e.pos, e.msg.to_owned()))
}

/// Maps a serde error from the typed parse to a diagnostic with a stable code and a hint.
fn schema_error(e: &toml::de::Error, text: &str, path: &Path) -> Diagnostic {
    let message = e.message().trim().to_owned();
    let span = e.span();
    let at = span
        .clone()
        .map_or(Location::default(), |s| Location::of_offset(text, s.start));
    let key = span.as_ref().and_then(|s| key_at(text, s));

    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        let known = expected_list(&message);
        let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let hint = match suggest(&field, known_refs.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if known.is_empty() => "remove it".to_owned(),
            None => format!("remove it; valid keys here: {}", known_refs.join(", ")),
        };
        let mut d = Diagnostic::new(Code::H0003, path, format!("unknown field `{field}`"))
            .at(at)
            .key(field.clone());
        // The span of an unknown field points at the table; point at the key itself if we can.
        if let Some(offset) = find_key(text, span.as_ref(), &field) {
            d = d.at(Location::of_offset(text, offset));
        }
        return d.hint(hint);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        return Diagnostic::new(Code::H0005, path, format!("missing required key `{field}`"))
            .at(at)
            .key(field.clone())
            .hint(format!(
                "add `{field} = ...` to this table (see docs/manifest.md)"
            ));
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        let message = friendly_types(&message);
        let what = match &key {
            Some(k) => format!("`{k}`: {message}"),
            None => message.clone(),
        };
        let mut d = Diagnostic::new(Code::H0004, path, what).at(at);
        if let Some(k) = key {
            d = d.hint(type_hint(&k)).key(k);
        }
        return d;
    }
    let mut d = Diagnostic::new(Code::H0006, path, message).at(at);
    if let Some(k) = key {
        d = d.key(k);
    }
    d
}

/// Serde names Rust types (`expected i64`); say what a TOML user writes instead.
fn friendly_types(message: &str) -> String {
    let mut m = message.to_owned();
    for (rust, toml) in [
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected u64", "expected a whole number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("invalid type: map,", "invalid type: table,"),
        ("invalid type: sequence,", "invalid type: array,"),
        ("expected struct RawNode", "expected a [[node]] table"),
        ("expected struct RawConnect", "expected a [[connect]] table"),
        ("expected struct RawScheduler", "expected a [scheduler] table"),
        ("expected struct RawPlugins", "expected a [plugins] table"),
    ] {
        m = m.replace(rust, toml);
    }
    m
}

/// What type a key wants, for wrong-type hints.
fn type_hint(key: &str) -> String {
    match key {
        "priority" => "`priority` is an integer, e.g. `priority = 1`".into(),
        "rate_hz" | "tick_rate" => format!("`{key}` is a number in Hz, e.g. `{key} = 50.0`"),
        "logging"
        | "circuit_breaker"
        | "auto_restart"
        | "deadline_monitoring"
        | "watchdog_enabled"
        | "hot_reload" => {
            format!("`{key}` is `true` or `false`")
        }
        "max_failures"
        | "restart_backoff_ms"
        | "restart_backoff_max_ms"
        | "watchdog_timeout_ms"
        | "watchdog_ms"
        | "max_size" => format!("`{key}` is a whole number, e.g. `{key} = 100`"),
        "deadline_ms" => "`deadline_ms` is a number of ms, e.g. `deadline_ms = 5.0`".into(),
        "config" => "`config` is a table, e.g. `config = { device = \"/dev/ttyUSB0\" }`".into(),
        "watch" => "`watch` is an array of globs, e.g. `watch = [\"src/**\", \"Cargo.toml\"]`".into(),
        "build" => "`build` is a shell command, e.g. `build = \"cargo build -p my-node\"`".into(),
        "node" => "nodes are an array of tables: write each as `[[node]]`".into(),
        "connect" => "connections are an array of tables: write each as `[[connect]]`".into(),
        "scheduler" => "`scheduler` is a table: write `[scheduler]`".into(),
        "plugins" => "`plugins` is a table: write `[plugins]` and `path = [\"../build\"]` under it".into(),
        "path" => {
            "`path` is an array of folders, e.g. `path = [\"../build\", \"/opt/robot/plugins\"]`".into()
        }
        k => format!("`{k}` is a string, e.g. `{k} = \"...\"` (see docs/manifest.md)"),
    }
}

/// The `expected one of ...` list of a serde unknown-field message.
fn expected_list(message: &str) -> Vec<String> {
    let Some(idx) = message.find("expected") else {
        return Vec::new();
    };
    message[idx..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The key written on the line where `span` starts (`key = value`), if any.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..start];
    // A table header such as `[node]` where `[[node]]` was meant.
    let line = text[line_start..].lines().next().unwrap_or_default().trim();
    if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        if !name.starts_with('[') {
            return Some(name.trim().to_owned());
        }
    }
    let eq = before.rfind('=')?;
    let key = before[..eq].trim().trim_start_matches('{').trim();
    let key = key.rsplit([',', '{', ' ']).next().unwrap_or(key).trim();
    (!key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
    .then(|| key.to_owned())
}

/// The offset of `key =` within `span` (or after its start).
fn find_key(text: &str, span: Option<&Range<usize>>, key: &str) -> Option<usize> {
    let range = span.cloned().unwrap_or(0..text.len());
    let start = range.start.min(text.len());
    let end = range.end.clamp(start, text.len());
    let hay = &text[start..end];
    let mut from = 0;
    while let Some(i) = hay[from..].find(key) {
        let pos = from + i;
        let before_ok =
            pos == 0 || !hay.as_bytes()[pos - 1].is_ascii_alphanumeric() && hay.as_bytes()[pos - 1] != b'_';
        let after = hay[pos + key.len()..].trim_start();
        if before_ok && (after.starts_with('=') || after.starts_with(']')) {
            return Some(start + pos);
        }
        from = pos + key.len();
    }
    None
}

struct Validator<'a> {
    /// Locations of the manifest's text (a scan from the start per location would make
    /// validation quadratic in the manifest's size).
    lines: LineIndex<'a>,
    path: &'a Path,
    base: &'a Path,
    diags: Diagnostics,
}

impl Validator<'_> {
    fn at<T>(&self, s: &Spanned<T>) -> Location {
        self.lines.location(s.span().start)
    }

    /// `v` when `limit` accepts it; else an H0006 at `v`, under `key` (and `node`), with `hint`.
    fn limited<T: Bounded>(
        &mut self,
        v: &Spanned<T>,
        limit: Limit<T>,
        key: &str,
        node: Option<&str>,
        hint: &str,
    ) -> Option<T> {
        match limit.check(*v.get_ref()) {
            Ok(value) => Some(value),
            Err(e) => {
                let mut d = self.diag(Code::H0006, v, e.to_string()).key(key).hint(hint);
                if let Some(node) = node {
                    d = d.node(node);
                }
                self.push(d);
                None
            }
        }
    }

    fn diag<T>(&self, code: Code, s: &Spanned<T>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, self.path, message).at(self.at(s))
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn run(mut self, raw: RawManifest) -> Result<Manifest, Diagnostics> {
        let errors_before = self.diags.0.len();
        let scheduler = match raw.scheduler {
            Some(s) => self.scheduler(s.into_inner()),
            None => SchedulerSpec::default(),
        };
        // With a bad [scheduler], rates cannot be compared to it: skip that check, not report
        // errors that are only consequences.
        let tick_rate = (self.diags.0.len() == errors_before).then_some(scheduler.tick_rate);
        // Duplicate names first, on the raw names, so a node with another error still counts.
        let mut first_at: HashMap<String, (usize, Location)> = HashMap::new();
        for (index, node) in raw.nodes.iter().enumerate() {
            let name = node.get_ref().name.get_ref().trim().to_owned();
            let at = self.at(&node.get_ref().name);
            match first_at.get(&name) {
                Some((_, first)) => {
                    let first_line = first.line;
                    self.push(
                        Diagnostic::new(Code::H0008, self.path, format!("duplicate node name `{name}`"))
                            .at(at)
                            .key("name")
                            .hint(format!(
                                "node names must be unique; the first `{name}` is at line {first_line}: rename one of them"
                            )),
                    );
                }
                None => {
                    first_at.insert(name, (index, at));
                }
            }
        }
        let mut nodes = Vec::new();
        for (index, node) in raw.nodes.into_iter().enumerate() {
            let at = self.at(&node);
            if let Some(spec) = self.node(node.into_inner(), index, at, tick_rate) {
                if first_at.get(&spec.name).is_some_and(|(first, _)| *first == index) {
                    nodes.push(spec);
                }
            }
        }
        let mut connections = Vec::new();
        for c in raw.connections {
            let at = self.at(&c);
            if let Some(spec) = self.connection(c.into_inner(), at) {
                connections.push(spec);
            }
        }
        let hubs = self.hubs(raw.hub);
        self.network_topics(&hubs, &connections);
        let plugin_path = self.plugin_path(raw.plugins);
        let manifest = Manifest {
            path: self.path.to_path_buf(),
            scheduler,
            nodes,
            connections,
            hubs,
            plugin_path,
        };
        self.diags.into_result(manifest)
    }

    fn scheduler(&mut self, raw: RawScheduler) -> SchedulerSpec {
        let mut spec = SchedulerSpec {
            supervision: self.supervision(&raw),
            hot_reload: raw.hot_reload.as_ref().is_some_and(|h| *h.get_ref()),
            ..SchedulerSpec::default()
        };
        if let (Some(p), Some(_)) = (&raw.preset, &raw.tick_rate) {
            self.push(
                self.diag(Code::H0007, p, "`preset` and `tick_rate` are both set")
                    .key("scheduler.preset")
                    .hint("keep one: a preset names a tick rate"),
            );
            return spec;
        }
        if let Some(p) = raw.preset {
            match Preset::from_name(p.get_ref()) {
                Some(preset) => {
                    spec.tick_rate = preset.tick_rate();
                    spec.preset = Some(preset);
                }
                None => {
                    let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                    let hint = match suggest(p.get_ref(), names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? presets: {}", names.join(", ")),
                        None => format!(
                            "use one of: {}, or set `tick_rate` in Hz instead",
                            names.join(", ")
                        ),
                    };
                    self.push(
                        self.diag(Code::H0007, &p, format!("unknown preset `{}`", p.get_ref()))
                            .key("scheduler.preset")
                            .hint(hint),
                    );
                }
            }
        }
        if let Some(rate) = raw.tick_rate {
            if let Some(r) = self.limited(
                &rate,
                limits::TICK_RATE_HZ,
                "scheduler.tick_rate",
                None,
                "e.g. `tick_rate = 100.0`, or a preset such as `preset = \"standard\"`",
            ) {
                spec.tick_rate = r;
                spec.preset = None;
            }
        }
        spec
    }

    fn supervision(&mut self, raw: &RawScheduler) -> SupervisionSpec {
        let mut sup = SupervisionSpec::default();
        let flag = |v: &Option<Spanned<bool>>, default: bool| v.as_ref().map_or(default, |b| *b.get_ref());
        sup.circuit_breaker = flag(&raw.circuit_breaker, sup.circuit_breaker);
        sup.auto_restart = flag(&raw.auto_restart, sup.auto_restart);
        sup.deadline_monitoring = flag(&raw.deadline_monitoring, sup.deadline_monitoring);
        sup.watchdog_enabled = flag(&raw.watchdog_enabled, sup.watchdog_enabled);
        if let Some(m) = &raw.max_failures {
            if let Some(n) = self.limited(
                m,
                limits::MAX_FAILURES,
                "scheduler.max_failures",
                None,
                "the number of consecutive failures that opens a node's circuit breaker, e.g. 5",
            ) {
                sup.max_failures = u32::try_from(n).unwrap_or(u32::MAX);
            }
        }
        let mut millis = |v: &Option<Spanned<i64>>, limit: Limit<i64>, what: &str| {
            let ms = self.limited(
                v.as_ref()?,
                limit,
                &format!("scheduler.{}", limit.key),
                None,
                what,
            )?;
            Some(std::time::Duration::from_millis(ms as u64))
        };
        if let Some(d) = millis(
            &raw.restart_backoff_ms,
            limits::BACKOFF_MS,
            "the first restart delay",
        ) {
            sup.restart_backoff = d;
        }
        if let Some(d) = millis(
            &raw.restart_backoff_max_ms,
            limits::BACKOFF_MS.named("restart_backoff_max_ms"),
            "the longest restart delay",
        ) {
            sup.restart_backoff_max = d;
        }
        if let Some(d) = millis(
            &raw.watchdog_timeout_ms,
            limits::WATCHDOG_MS.named("watchdog_timeout_ms"),
            "a tick that runs longer than this sets `watchdog_expired`",
        ) {
            sup.watchdog_timeout = d;
        }
        sup.restart_backoff_max = sup.restart_backoff_max.max(sup.restart_backoff);
        sup
    }

    fn node(&mut self, raw: RawNode, index: usize, at: Location, tick_rate: Option<f64>) -> Option<NodeSpec> {
        let name = raw.name.get_ref().trim().to_owned();
        let mut ok = true;
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
            self.push(
                self.diag(
                    Code::H0006,
                    &raw.name,
                    format!("invalid node name `{}`", raw.name.get_ref()),
                )
                .key("name")
                .hint("use letters, digits, `_` and `-` (the name is used as `name.port` in connections)"),
            );
            ok = false;
        }
        let code = self.node_code(&raw, &name, at);
        ok &= code.is_some();
        let priority = raw.priority.as_ref().map_or(index as i64, |p| *p.get_ref());
        let (trigger, timeout) = self.trigger(&raw, &name, &mut ok);
        let mut rate_hz = None;
        if let Some(rate) = raw.rate_hz {
            match self.limited(
                &rate,
                limits::RATE_HZ,
                "rate_hz",
                Some(&name),
                "remove it to tick at the scheduler rate",
            ) {
                None => ok = false,
                // An input-triggered node's `rate_hz` is a cap on ticks that come between rate
                // cycles: it may exceed the tick rate.
                Some(r) if !trigger.is_input() && tick_rate.is_some_and(|t| r > t) => {
                    let tick_rate = tick_rate.unwrap_or_default();
                    self.push(self.diag(Code::H0006, &rate, format!("`rate_hz` {r} is faster than the scheduler's {tick_rate} Hz"))
                        .node(name.clone())
                        .key("rate_hz")
                        .hint("a rate-triggered node cannot tick faster than the scheduler: raise `[scheduler] tick_rate` or lower `rate_hz`"));
                    ok = false;
                }
                Some(r) => rate_hz = Some(r),
            }
        }
        let mut deadline = None;
        if let Some(d) = &raw.deadline_ms {
            match self.limited(
                d,
                limits::DEADLINE_MS,
                "deadline_ms",
                Some(&name),
                "the longest a tick may take, in ms, e.g. `deadline_ms = 5.0`; remove it for no deadline",
            ) {
                // At least 1 ns: a deadline below that (`1e-300`) would round to none at all.
                Some(ms) => {
                    deadline = Some(
                        std::time::Duration::from_secs_f64(ms / 1000.0)
                            .max(std::time::Duration::from_nanos(1)),
                    )
                }
                None => ok = false,
            }
        }
        let mut watchdog = None;
        if let Some(w) = &raw.watchdog_ms {
            match self.limited(
                w,
                limits::WATCHDOG_MS,
                "watchdog_ms",
                Some(&name),
                "a tick that runs longer than this sets `watchdog_expired`",
            ) {
                Some(ms) => watchdog = Some(std::time::Duration::from_millis(ms as u64)),
                None => ok = false,
            }
        }
        let isolation = match &raw.isolation {
            None => Isolation::Inline,
            Some(i) if i.get_ref() == "inline" => Isolation::Inline,
            Some(i) if i.get_ref() == "thread" => Isolation::Thread,
            Some(i) if i.get_ref() == "process" => Isolation::Process,
            Some(i) => {
                self.push(
                    self.diag(
                        Code::H0006,
                        i,
                        format!("unknown isolation level `{}`", i.get_ref()),
                    )
                    .node(name.clone())
                    .key("isolation")
                    .hint("use `isolation = \"inline\"` (default), `\"thread\"` or `\"process\"`"),
                );
                ok = false;
                Isolation::Inline
            }
        };
        if matches!(code, Some(NodeCode::Python(_))) && isolation == Isolation::Process {
            if let Some(i) = &raw.isolation {
                self.push(
                    self.diag(Code::H0006, i, "a Python node cannot run in `process` isolation")
                        .node(name.clone())
                        .key("isolation")
                        .hint("use `isolation = \"inline\"` or `\"thread\"` for Python nodes"),
                );
                ok = false;
            }
        }
        let logging = raw.logging.is_none_or(|l| *l.get_ref());
        let (config, config_at) = self.config(raw.config);
        Some(NodeSpec {
            name,
            code: code?,
            priority,
            rate_hz,
            trigger_at: raw.trigger.as_ref().map(|t| self.at(t)),
            trigger,
            timeout,
            deadline,
            watchdog,
            isolation,
            logging,
            config,
            config_at,
            at,
        })
        .filter(|_| ok)
    }

    /// The node's `trigger` and `timeout_ms`; clears `ok` on an error (H0045).
    fn trigger(
        &mut self,
        raw: &RawNode,
        name: &str,
        ok: &mut bool,
    ) -> (Trigger, Option<std::time::Duration>) {
        const HINT: &str = "write `trigger = \"rate\"` (the default), `trigger = \"input\"` (tick when any input has a message) or a list of input ports, e.g. `trigger = [\"imu\", \"odom\"]`";
        let mut trigger = Trigger::Rate;
        let mut bad_trigger = false;
        if let Some(t) = &raw.trigger {
            let problem = match t.get_ref() {
                toml::Value::String(s) if s == "rate" => None,
                toml::Value::String(s) if s == "input" => {
                    trigger = Trigger::Input;
                    None
                }
                toml::Value::String(s) => Some(format!("unknown trigger `{s}`")),
                toml::Value::Array(items) if items.is_empty() => {
                    Some("`trigger` is an empty list: no input could make the node tick".to_owned())
                }
                toml::Value::Array(items) => {
                    let mut ports: Vec<String> = Vec::new();
                    let mut problem = None;
                    for item in items {
                        match item.as_str().map(str::trim) {
                            Some("") => problem = Some("`trigger` lists an empty port name".to_owned()),
                            Some(p) if ports.iter().any(|q| q == p) => {
                                problem = Some(format!("`trigger` lists port `{p}` twice"));
                            }
                            Some(p) => ports.push(p.to_owned()),
                            None => {
                                problem = Some(format!(
                                    "`trigger` lists `{item}`, which is not a port name (a string)"
                                ))
                            }
                        }
                    }
                    if problem.is_none() {
                        trigger = Trigger::Ports(ports);
                    }
                    problem
                }
                other => Some(format!(
                    "`trigger` is a {}, not a string or a list of port names",
                    other.type_str()
                )),
            };
            if let Some(problem) = problem {
                self.push(
                    self.diag(Code::H0045, t, problem)
                        .node(name)
                        .key("trigger")
                        .hint(HINT),
                );
                *ok = false;
                bad_trigger = true;
            }
        }
        let mut timeout = None;
        if let Some(t) = &raw.timeout_ms {
            if bad_trigger {
                // The trigger itself is wrong: that is the error to fix first.
            } else if !trigger.is_input() {
                self.push(
                    self.diag(Code::H0045, t, "`timeout_ms` on a rate-triggered node")
                        .node(name)
                        .key("timeout_ms")
                        .hint("`timeout_ms` is how long an input-triggered node waits for input before it ticks anyway: add `trigger = \"input\"` (or a list of ports), or remove `timeout_ms`"),
                );
                *ok = false;
            } else {
                match self.limited(
                    t,
                    limits::TIMEOUT_MS,
                    "timeout_ms",
                    Some(name),
                    "how long to wait for input before ticking anyway, in ms, e.g. `timeout_ms = 100`",
                ) {
                    Some(ms) => timeout = Some(std::time::Duration::from_millis(ms as u64)),
                    None => *ok = false,
                }
            }
        }
        (trigger, timeout)
    }

    /// The node's `config` as a plain table, and where it and its keys are written.
    fn config(&self, raw: Option<Spanned<raw::RawConfig>>) -> (toml::Table, super::ConfigLocations) {
        let Some(raw) = raw else {
            return (toml::Table::new(), super::ConfigLocations::default());
        };
        let table_at = self.at(&raw);
        let mut keys: Vec<super::ConfigKeyAt> = Vec::new();
        let mut table = toml::Table::new();
        for (key, value) in raw.into_inner() {
            keys.push(super::ConfigKeyAt {
                name: key.get_ref().clone(),
                key: self.at(&key),
                value: self.at(&value),
            });
            table.insert(key.into_inner(), value.into_inner());
        }
        // In the order written (the map is sorted by name).
        keys.sort_by_key(|k| (k.key.line, k.key.col));
        (
            table,
            super::ConfigLocations {
                table: Some(table_at),
                keys,
            },
        )
    }

    /// Where a node's code is: `plugin =` (a library, with an optional `type =`) or `python =`
    /// with `class =` (and optionally `venv =`). Exactly one of the two.
    fn node_code(&mut self, raw: &RawNode, name: &str, at: Location) -> Option<NodeCode> {
        match (&raw.plugin, &raw.python) {
            (Some(_), Some(py)) => {
                self.push(
                    self.diag(
                        Code::H0006,
                        py,
                        "a node has either `plugin` or `python`, not both",
                    )
                    .node(name.to_owned())
                    .key("python")
                    .hint("`plugin` names a Rust node's .so; `python` a Python node's file (with `class`)"),
                );
                None
            }
            (None, None) if raw.node_type.is_some() => self.plugin_code(raw, None, name),
            (None, None) => {
                self.push(
                    Diagnostic::new(Code::H0005, self.path, "missing required key `plugin`, `type` or `python`")
                        .at(at)
                        .key("plugin")
                        .hint("add `type = \"<node type>\"` (found on the plugin search path), `plugin = \"<plugin name or path of its .so>\"`, or `python = \"nodes/x.py\"` and `class = \"X\"`"),
                );
                None
            }
            (Some(p), None) => self.plugin_code(raw, Some(p), name),
            (None, Some(py)) => self.python_code(raw, py, name),
        }
    }

    /// A plugin node: `plugin =` (a name or a path) with an optional `type =`, or `type =` alone
    /// (`p` is `None`).
    fn plugin_code(&mut self, raw: &RawNode, p: Option<&Spanned<String>>, name: &str) -> Option<NodeCode> {
        for (key, value) in [("class", &raw.class), ("venv", &raw.venv)] {
            if let Some(v) = value {
                self.push(
                    self.diag(
                        Code::H0006,
                        v,
                        format!("`{key}` is for Python nodes (with `python =`)"),
                    )
                    .node(name.to_owned())
                    .key(key)
                    .hint("remove it, or make this a Python node"),
                );
                return None;
            }
        }
        let node_type = raw
            .node_type
            .as_ref()
            .map(|t| Located::new(t.get_ref().trim().to_owned(), self.at(t)));
        if let (Some(t), Some(raw_t)) = (&node_type, &raw.node_type) {
            if t.value.is_empty() {
                self.push(
                    self.diag(Code::H0006, raw_t, "`type` is empty")
                        .node(name.to_owned())
                        .key("type")
                        .hint("give the node type's name, e.g. `type = \"ImuSim\"`, or remove it"),
                );
                return None;
            }
        }
        let plugin = match (p, &node_type) {
            (Some(p), _) => Located::new(self.plugin_ref(p, name)?, self.at(p)),
            (None, Some(t)) => Located::new(PluginRef::OfType(t.value.clone()), t.at),
            (None, None) => return None,
        };
        let build = self.build(raw, name)?;
        Some(NodeCode::Plugin(PluginCode {
            plugin,
            node_type,
            build,
        }))
    }

    /// A `plugin` value: a file path when it contains `/` or ends in `.so` (relative to the
    /// manifest's folder), else a plugin name found on the search path.
    fn plugin_ref(&mut self, p: &Spanned<String>, name: &str) -> Option<PluginRef> {
        use crate::plugins::search::{is_file_path, is_plugin_name};
        let value = p.get_ref().trim();
        if is_file_path(value) {
            return Some(PluginRef::File(self.base.join(value)));
        }
        if is_plugin_name(value) {
            return Some(PluginRef::Name(value.to_owned()));
        }
        let what = if value.is_empty() {
            "`plugin` is empty".to_owned()
        } else {
            format!("`plugin = \"{value}\"` is neither a plugin name nor a path")
        };
        self.push(
            self.diag(Code::H0006, p, what)
                .node(name.to_owned())
                .key("plugin")
                .hint("give a plugin name (letters, digits, `-`, `_`: `plugin = \"imu-sim\"` finds libimu_sim.so on the plugin search path), or a path to the .so (with a `/` or ending in `.so`), relative to this manifest's folder"),
        );
        None
    }

    /// A plugin node's `build =` and `watch =`: `Some(None)` without them, `None` after an
    /// error. `watch` without `build` is an error (nothing would run on a change: the plugin
    /// file itself is watched anyway).
    fn build(&mut self, raw: &RawNode, name: &str) -> Option<Option<BuildSpec>> {
        let Some(command) = &raw.build else {
            if let Some(w) = &raw.watch {
                self.push(
                    Diagnostic::new(Code::H0005, self.path, "`watch` needs `build`: nothing would run on a change of these files")
                        .at(self.at(w))
                        .node(name.to_owned())
                        .key("build")
                        .hint("add `build = \"cargo build -p <crate>\"`; without `build`, remove `watch`: `--watch` reloads the node when its plugin file changes (rebuild it in another terminal)"),
                );
                return None;
            }
            return Some(None);
        };
        let mut ok = true;
        if command.get_ref().trim().is_empty() {
            self.push(
                self.diag(Code::H0006, command, "`build` is empty")
                    .node(name.to_owned())
                    .key("build")
                    .hint("give the command that rebuilds the plugin, e.g. `build = \"cargo build -p my-node\"`, or remove it"),
            );
            ok = false;
        }
        let mut watch = None;
        if let Some(w) = &raw.watch {
            if w.get_ref().is_empty() {
                self.push(
                    self.diag(Code::H0006, w, "`watch` is empty: no change would run the build")
                        .node(name.to_owned())
                        .key("watch")
                        .hint("list the sources, e.g. `watch = [\"src/**\", \"Cargo.toml\"]`, or remove `watch` to watch the crate that `build` names"),
                );
                ok = false;
            }
            let mut patterns = Vec::new();
            for pattern in w.get_ref() {
                match watch_pattern(pattern.get_ref()) {
                    Ok(()) => patterns.push(Located::new(pattern.get_ref().clone(), self.at(pattern))),
                    Err((pos, why)) => {
                        // At the offending character: past the opening quote.
                        let mut at = self.at(pattern);
                        at.col += 1 + pos;
                        self.push(
                            Diagnostic::new(Code::H0006, self.path, format!("invalid glob `{}` in `watch`: {why}", pattern.get_ref()))
                                .at(at)
                                .node(name.to_owned())
                                .key("watch")
                                .hint("globs are relative to the manifest's folder: `*` within a name, `**` for any folders (a whole component, as in `src/**`), `?`, `[abc]`"),
                        );
                        ok = false;
                    }
                }
            }
            watch = Some(patterns);
        }
        ok.then(|| {
            Some(BuildSpec {
                command: Located::new(command.get_ref().trim().to_owned(), self.at(command)),
                watch,
                dir: self.base.to_path_buf(),
            })
        })
    }

    fn python_code(&mut self, raw: &RawNode, py: &Spanned<String>, name: &str) -> Option<NodeCode> {
        if let Some((key, at)) = raw
            .build
            .as_ref()
            .map(|b| ("build", self.at(b)))
            .or_else(|| raw.watch.as_ref().map(|w| ("watch", self.at(w))))
        {
            self.push(
                Diagnostic::new(
                    Code::H0006,
                    self.path,
                    format!("`{key}` is for plugin nodes (with `plugin =`)"),
                )
                .at(at)
                .node(name.to_owned())
                .key(key)
                .hint("remove it: a Python node needs no build, `--watch` reloads it when its file changes"),
            );
            return None;
        }
        if let Some(t) = &raw.node_type {
            self.push(
                self.diag(Code::H0006, t, "`type` is for plugin nodes (with `plugin =`)")
                    .node(name.to_owned())
                    .key("type")
                    .hint("remove it: a Python node's class is named by `class =`"),
            );
            return None;
        }
        let file = self.base.join(py.get_ref());
        if py.get_ref().trim().is_empty() || !file.is_file() {
            self.push(
                self.diag(
                    Code::H0010,
                    py,
                    format!("Python node file not found: {}", file.display()),
                )
                .node(name.to_owned())
                .key("python")
                .hint("give the path of the node's .py file, relative to this manifest's folder"),
            );
            return None;
        }
        let Some(class) = &raw.class else {
            self.push(
                Diagnostic::new(
                    Code::H0005,
                    self.path,
                    "missing required key `class` of a Python node",
                )
                .at(self.at(py))
                .node(name.to_owned())
                .key("class")
                .hint("add `class = \"<the horus.Node subclass in the file>\"`"),
            );
            return None;
        };
        let venv = raw.venv.as_ref().map(|v| self.base.join(v.get_ref()));
        if let (Some(v), Some(dir)) = (&raw.venv, &venv) {
            if !dir.join("bin/python").exists() {
                self.push(
                    self.diag(Code::H0025, v, format!("`{}` is not a virtual environment (no bin/python)", dir.display()))
                        .node(name.to_owned())
                        .key("venv")
                        .hint("create it with `python3 -m venv <dir>` and install horus into it (./scripts/python-env.sh makes .venv)"),
                );
                return None;
            }
        }
        Some(NodeCode::Python(PythonSpec {
            file: Located::new(std::fs::canonicalize(&file).unwrap_or(file), self.at(py)),
            class: class.get_ref().clone(),
            class_at: self.at(class),
            venv,
        }))
    }

    /// `[plugins] path`: each folder resolved against the manifest's folder.
    fn plugin_path(&mut self, raw: Option<Spanned<raw::RawPlugins>>) -> Vec<Located<std::path::PathBuf>> {
        let Some(path) = raw.and_then(|p| p.into_inner().path) else {
            return Vec::new();
        };
        let mut folders = Vec::new();
        for entry in path.into_inner() {
            if entry.get_ref().trim().is_empty() {
                self.push(
                    self.diag(Code::H0006, &entry, "an entry of `[plugins] path` is empty")
                        .key("plugins.path")
                        .hint("remove it, or name a folder; `.` is this manifest's folder"),
                );
                continue;
            }
            folders.push(Located::new(self.base.join(entry.get_ref()), self.at(&entry)));
        }
        folders
    }

    fn endpoint(&mut self, s: &Spanned<String>, key: &str) -> Option<Endpoint> {
        let text = s.get_ref().trim();
        match text.split_once('.') {
            Some((node, port)) if !node.is_empty() && !port.is_empty() && !port.contains('.') => {
                Some(Endpoint {
                    node: node.to_owned(),
                    port: port.to_owned(),
                })
            }
            _ => {
                self.push(
                    self.diag(
                        Code::H0006,
                        s,
                        format!("`{key}` must be `node.port` (got `{text}`)"),
                    )
                    .key(format!("connect.{key}"))
                    .hint("e.g. `from = \"imu.imu\"`, `to = \"filter.imu\"`"),
                );
                None
            }
        }
    }

    fn connection(&mut self, raw: RawConnect, table_at: Location) -> Option<ConnectSpec> {
        let given = [raw.from.is_some(), raw.to.is_some(), raw.topic.is_some()];
        if given.iter().filter(|g| **g).count() != 2 {
            self.push(
                Diagnostic::new(
                    Code::H0006,
                    self.path,
                    "a [[connect]] needs two of `from`, `to` and `topic`",
                )
                .at(table_at)
                .key("connect")
                .hint(
                    "`from` + `to` joins two nodes of this manifest; `from` + `topic` publishes to a named \
                         topic; `topic` + `to` subscribes to one",
                ),
            );
            return None;
        }
        let from = raw.from.as_ref().map(|f| self.endpoint(f, "from"));
        let to = raw.to.as_ref().map(|t| self.endpoint(t, "to"));
        let topic = match &raw.topic {
            None => Some(None),
            Some(t) => {
                let name = t.get_ref().trim();
                let reserved = name.starts_with(crate::shm::PRIVATE_MARK)
                    || name
                        .strip_prefix('h')
                        .and_then(|r| r.split_once('/'))
                        .is_some_and(|(digits, _)| {
                            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                        });
                if reserved {
                    self.push(
                        self.diag(Code::H0006, t, format!("topic name `{name}` is reserved"))
                            .key("connect.topic")
                            .hint(
                                "names `@...` (and the older `h<digits>/...`) are the private topics of a host run; \
                                 choose another name",
                            ),
                    );
                    None
                } else if name.is_empty()
                    || name.len() > 200
                    || name.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    self.push(
                        self.diag(Code::H0006, t, format!("invalid topic name `{}`", t.get_ref()))
                            .key("connect.topic")
                            .hint("use 1 to 200 printable characters without spaces, e.g. `robot/imu`"),
                    );
                    None
                } else {
                    Some(Some(name.to_owned()))
                }
            }
        };
        let max_size = match &raw.max_size {
            None => Some(None),
            Some(m) => self
                .limited(
                    m,
                    limits::MAX_SIZE,
                    "connect.max_size",
                    None,
                    "the largest encoded message on this connection, in bytes",
                )
                .map(|v| Some(v as u32)),
        };
        let qos = match &raw.qos {
            None => Some(Qos::DEFAULT),
            Some(q) => match Qos::parse(q.get_ref()) {
                Ok(qos) => Some(qos),
                Err(why) => {
                    self.push(
                        self.diag(Code::H0006, q, format!("invalid `qos`: {why}"))
                            .key("connect.qos")
                            .hint("use `keep_last(N)`, `reliable` or `reliable(N)`"),
                    );
                    None
                }
            },
        };
        let located = |s: &Option<Spanned<String>>, v: Option<Option<Endpoint>>| {
            Some(Located::new(v??, self.at(s.as_ref()?)))
        };
        let from = located(&raw.from, from);
        let to = located(&raw.to, to);
        let topic = raw
            .topic
            .as_ref()
            .zip(topic?)
            .map(|(t, name)| Located::new(name, self.at(t)));
        let route = match (from, to, topic) {
            (Some(from), Some(to), None) => Route::Nodes { from, to },
            (Some(from), None, Some(topic)) => Route::Publish { from, topic },
            (None, Some(to), Some(topic)) => Route::Subscribe { topic, to },
            // An endpoint that did not parse (reported above).
            _ => return None,
        };
        Some(ConnectSpec {
            route,
            qos: qos?,
            max_size: max_size?,
            at: table_at,
        })
    }
}

impl Validator<'_> {
    fn hubs(&mut self, raw: std::collections::BTreeMap<String, Spanned<raw::RawHub>>) -> Vec<HubDecl> {
        let mut hubs = Vec::new();
        for (name, table) in raw {
            let at = self.at(&table);
            let table = table.into_inner();
            let address = table.address.as_ref().map(|a| a.get_ref().as_str());
            match super::hubs::spec(&name, table.mode.get_ref(), address) {
                Ok(spec) => {
                    #[cfg(not(feature = "network"))]
                    if spec.mode == super::hubs::HubMode::Tcp {
                        self.push(
                            self.diag(
                                Code::H0026,
                                &table.mode,
                                format!("hub `{name}` is a network hub, and this horus was built without network support"),
                            )
                            .key(format!("hub.{name}.mode"))
                            .hint("rebuild with the `network` feature: `cargo build --workspace --features horus-host/network` (see README)"),
                        );
                        continue;
                    }
                    hubs.push(HubDecl { spec, at });
                }
                Err(e) => {
                    use super::hubs::HubSpecError as E;
                    let (key, loc) = match &e {
                        E::BadAddress { .. } | E::LocalAddress => {
                            ("address", table.address.as_ref().map_or(at, |a| self.at(a)))
                        }
                        E::BadName { .. } | E::NoAddress => ("", at),
                        E::UnknownMode { .. } => ("mode", self.at(&table.mode)),
                    };
                    let key = if key.is_empty() {
                        format!("hub.{name}")
                    } else {
                        format!("hub.{name}.{key}")
                    };
                    self.push(
                        Diagnostic::new(Code::H0006, self.path, format!("hub `{name}`: {e}"))
                            .at(loc)
                            .key(key)
                            .hint("a hub table is `mode = \"local\"`, or `mode = \"tcp\"` with `address = \"host:port\"` (see docs/manifest.md#hubs)"),
                    );
                }
            }
        }
        hubs
    }

    /// A topic under a tcp hub is a Zenoh key: no wildcards, no empty parts.
    fn network_topics(&mut self, hubs: &[HubDecl], connections: &[ConnectSpec]) {
        for c in connections {
            let Some(Located { value: topic, at }) = c.topic() else {
                continue;
            };
            if super::network_hub(hubs, topic).is_none() {
                continue;
            }
            let bad_char = topic.chars().find(|ch| "*$#?".contains(*ch));
            if bad_char.is_some() || topic.ends_with('/') || topic.contains("//") {
                self.push(
                    Diagnostic::new(Code::H0006, self.path, format!("topic `{topic}` cannot travel over its network hub"))
                        .at(*at)
                        .key("connect.topic")
                        .hint("a network topic is a Zenoh key: no `*`, `$`, `#` or `?`, and no empty parts (`a//b`, a trailing `/`)"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Manifest, Diagnostics> {
        parse(text, Path::new("m.toml"), Path::new("/base"))
    }

    fn only(text: &str) -> Diagnostic {
        let mut d = check(text).expect_err("should fail").0;
        assert_eq!(d.len(), 1, "{d:?}");
        d.remove(0)
    }

    const NODE: &str = "[[node]]\nname = \"a\"\nplugin = \"liba.so\"\n";

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = check(NODE).unwrap();
        assert_eq!(m.scheduler.tick_rate, 100.0);
        let NodeCode::Plugin(code) = &m.nodes[0].code else {
            panic!("a plugin node: {:?}", m.nodes[0].code);
        };
        assert_eq!(code.plugin.value, PluginRef::File("/base/liba.so".into()));
        assert_eq!(code.plugin.at, Location { line: 3, col: 10 });
        assert_eq!(code.node_type, None);
        assert_eq!(m.nodes[0].priority, 0);
        assert!(m.nodes[0].logging);
        assert_eq!(m.nodes[0].isolation, Isolation::Inline);
    }

    /// The plugin node's `build`, or a panic.
    fn build_of(m: &Manifest) -> Option<&BuildSpec> {
        let NodeCode::Plugin(code) = &m.nodes[0].code else {
            panic!("a plugin node: {:?}", m.nodes[0].code);
        };
        code.build.as_ref()
    }

    #[test]
    fn build_and_watch_are_read_with_their_places() {
        let m = check(&format!(
            "{NODE}build = \"  cargo build -p a \"\nwatch = [\"src/**\", \"Cargo.toml\"]\n"
        ))
        .unwrap();
        let b = build_of(&m).expect("a build");
        assert_eq!(b.command.value, "cargo build -p a");
        assert_eq!(b.command.at, Location { line: 4, col: 9 });
        assert_eq!(b.dir, Path::new("/base"));
        let watch = b.watch.as_ref().expect("globs");
        let globs: Vec<&str> = watch.iter().map(|g| g.value.as_str()).collect();
        assert_eq!(globs, ["src/**", "Cargo.toml"]);
        assert_eq!(watch[1].at, Location { line: 5, col: 20 });
        // Without `watch`, the sources are found from the command later.
        let m = check(&format!("{NODE}build = \"cargo build -p a\"\n")).unwrap();
        assert_eq!(build_of(&m).unwrap().watch, None);
        assert_eq!(build_of(&check(NODE).unwrap()), None);
    }

    #[test]
    fn a_bad_glob_is_pointed_at() {
        let d = only(&format!(
            "{NODE}build = \"make\"\nwatch = [\"src/**\", \"src/[a\"]\n"
        ));
        assert_eq!(
            (
                d.code,
                d.location.line,
                d.location.col,
                d.key.as_deref(),
                d.node.as_deref()
            ),
            (Code::H0006, 5, 25, Some("watch"), Some("a"))
        );
        assert!(d.message.contains("invalid glob `src/[a`"), "{}", d.message);
        let d = only(&format!("{NODE}build = \"make\"\nwatch = [\"src/**a\"]\n"));
        assert!(d.message.contains("single path component"), "{}", d.message);
        let d = only(&format!("{NODE}build = \"make\"\nwatch = [\" \"]\n"));
        assert!(d.message.contains("empty"), "{}", d.message);
    }

    #[test]
    fn build_and_watch_mistakes_are_errors() {
        // Wrong types.
        let d = only(&format!("{NODE}build = [\"cargo\", \"build\"]\n"));
        assert_eq!((d.code, d.key.as_deref()), (Code::H0004, Some("build")));
        let d = only(&format!("{NODE}build = \"make\"\nwatch = \"src/**\"\n"));
        assert_eq!((d.code, d.key.as_deref()), (Code::H0004, Some("watch")));
        assert!(d.hint.as_deref().unwrap().contains("array of globs"), "{d:?}");
        let d = only(&format!("{NODE}build = \"make\"\nwatch = [1]\n"));
        assert_eq!(d.code, Code::H0004);
        // An empty command, an empty list.
        let d = only(&format!("{NODE}build = \"  \"\n"));
        assert_eq!(
            (d.code, d.location.line, d.key.as_deref()),
            (Code::H0006, 4, Some("build"))
        );
        let d = only(&format!("{NODE}build = \"make\"\nwatch = []\n"));
        assert_eq!(
            (d.code, d.location.line, d.key.as_deref()),
            (Code::H0006, 5, Some("watch"))
        );
        // `watch` alone would never run anything.
        let d = only(&format!("{NODE}watch = [\"src/**\"]\n"));
        assert_eq!(
            (d.code, d.location.line, d.key.as_deref()),
            (Code::H0005, 4, Some("build"))
        );
        assert!(d.message.contains("`watch` needs `build`"), "{}", d.message);
    }

    #[test]
    fn python_nodes_take_no_build() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n.py"), "").unwrap();
        let text = "[[node]]\nname = \"p\"\npython = \"n.py\"\nclass = \"N\"\nbuild = \"make\"\n";
        let d = parse(text, Path::new("m.toml"), dir.path())
            .unwrap_err()
            .0
            .remove(0);
        assert_eq!(
            (d.code, d.location.line, d.key.as_deref()),
            (Code::H0006, 5, Some("build"))
        );
        assert!(d.message.contains("for plugin nodes"), "{}", d.message);
    }

    #[test]
    fn unknown_key_suggests_the_right_one() {
        let d = only(&format!("{NODE}priorty = 3\n"));
        assert_eq!(d.code, Code::H0003);
        assert_eq!(d.location.line, 4);
        assert_eq!(d.location.col, 1);
        assert_eq!(d.hint.as_deref(), Some("did you mean `priority`?"));
    }

    #[test]
    fn every_unknown_key_is_reported_in_file_order() {
        let d = check(&format!(
            "{NODE}priorty = 1\ncolour = 2\n[[connect]]\nfrom = \"a.b\"\nto = \"c.d\"\nqoss = \"reliable\"\n"
        ))
        .unwrap_err();
        assert_eq!(d.codes(), vec![Code::H0003; 3]);
        let lines: Vec<usize> = d.0.iter().map(|d| d.location.line).collect();
        assert_eq!(lines, vec![4, 5, 9]);
        assert_eq!(d.0[2].hint.as_deref(), Some("did you mean `qos`?"));
    }

    #[test]
    fn private_topic_names_are_reserved() {
        let d = only(&format!(
            "{NODE}[[connect]]\nfrom = \"a.out\"\ntopic = \"h123/imu\"\n"
        ));
        assert!(d.message.contains("is reserved"), "{d}");
        check(&format!(
            "{NODE}[[connect]]\nfrom = \"a.out\"\ntopic = \"h/imu\"\n"
        ))
        .unwrap();
        check(&format!(
            "{NODE}[[connect]]\nfrom = \"a.out\"\ntopic = \"hx1/imu\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn bad_scheduler_does_not_cascade_into_rate_errors() {
        let d = check(&format!(
            "[scheduler]\npreset = \"realtme\"\n{NODE}rate_hz = 500.0\n"
        ))
        .unwrap_err();
        assert_eq!(d.codes(), vec![Code::H0007]);
    }

    #[test]
    fn duplicates_are_found_even_when_the_node_has_other_errors() {
        let d = check(&format!("{NODE}rate_hz = 0.0\n{NODE}")).unwrap_err();
        assert_eq!(d.codes(), vec![Code::H0006, Code::H0008]);
    }

    #[test]
    fn wrong_type_says_what_to_write() {
        let d = only(&format!("{NODE}rate_hz = \"fast\"\n"));
        assert!(d.message.contains("expected a number"), "{d}");
    }

    #[test]
    fn unknown_table_lists_valid_keys() {
        let d = only("[hubs.x]\nmode = \"tcp\"\n");
        assert_eq!(d.code, Code::H0003);
        assert!(d.message.contains("`hubs`"), "{d}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let d = only(&format!("{NODE}priority = \"high\"\n"));
        assert_eq!(d.code, Code::H0004);
        assert_eq!(d.key.as_deref(), Some("priority"));
        assert_eq!(d.location.line, 4);
        assert!(d.hint.unwrap().contains("integer"));
    }

    #[test]
    fn single_bracket_node_table_says_to_double_it() {
        let d = only("[node]\nname = \"a\"\nplugin = \"p\"\n");
        assert_eq!(d.code, Code::H0004);
        assert_eq!(d.key.as_deref(), Some("node"));
        assert!(
            d.message.contains("invalid type: table, expected an array"),
            "{d}"
        );
        assert!(d.hint.unwrap().contains("`[[node]]`"));
    }

    #[test]
    fn missing_key() {
        let d = only("[[node]]\nname = \"a\"\n");
        assert_eq!(d.code, Code::H0005);
        assert_eq!(d.key.as_deref(), Some("plugin"));
    }

    #[test]
    fn syntax_error_has_location() {
        let d = only("[[node]\nname = \"a\"\n");
        assert_eq!(d.code, Code::H0002);
        assert_eq!(d.location.line, 1);
    }

    #[test]
    fn presets_and_tick_rate() {
        let m = check("[scheduler]\npreset = \"realtime\"\n").unwrap();
        assert_eq!(m.scheduler.tick_rate, 1000.0);
        let m = check("[scheduler]\ntick_rate = 250.0\n").unwrap();
        assert_eq!(m.scheduler.tick_rate, 250.0);
        let d = only("[scheduler]\npreset = \"realtme\"\n");
        assert_eq!(d.code, Code::H0007);
        assert!(d.hint.unwrap().starts_with("did you mean `realtime`?"));
        assert_eq!(
            only("[scheduler]\npreset = \"standard\"\ntick_rate = 5.0\n").code,
            Code::H0007
        );
        assert_eq!(only("[scheduler]\ntick_rate = 0.0\n").code, Code::H0006);
    }

    #[test]
    fn duplicate_names_point_at_the_second() {
        let d = only(&format!("{NODE}{NODE}"));
        assert_eq!(d.code, Code::H0008);
        assert_eq!(d.location.line, 5, "the second `name =`");
        assert!(d.hint.unwrap().contains("line 2"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = format!(
            "{NODE}rate_hz = -1.0\n[[node]]\nname = \"b c\"\nplugin = \"x\"\n[[connect]]\nfrom = \"a\"\nto = \"b.in\"\nqos = \"fast\"\n"
        );
        let d = check(&text).unwrap_err();
        assert_eq!(
            d.codes(),
            vec![Code::H0006, Code::H0006, Code::H0006, Code::H0006]
        );
    }

    #[test]
    fn rate_faster_than_scheduler_is_refused() {
        let d = only(&format!("{NODE}rate_hz = 150.0\n"));
        assert!(d.message.contains("faster"), "{d}");
    }

    #[test]
    fn an_input_triggered_node_may_be_capped_above_the_tick_rate() {
        let m = check(&format!("{NODE}trigger = \"input\"\nrate_hz = 1000.0\n")).unwrap();
        assert_eq!((m.scheduler.tick_rate, m.nodes[0].rate_hz), (100.0, Some(1000.0)));
        let d = only(&format!("{NODE}trigger = \"rate\"\nrate_hz = 1000.0\n"));
        assert!(d.message.contains("faster"), "{d}");
    }

    #[test]
    fn triggers_are_read() {
        let m = check(&format!(
            "{NODE}trigger = \"input\"\ntimeout_ms = 250\nrate_hz = 50.0\n"
        ))
        .unwrap();
        let n = &m.nodes[0];
        assert_eq!(
            (&n.trigger, n.timeout),
            (&Trigger::Input, Some(std::time::Duration::from_millis(250)))
        );
        assert_eq!(n.rate_hz, Some(50.0));
        assert_eq!(n.trigger_at.map(|a| (a.line, a.col)), Some((4, 11)));
        let m = check(&format!("{NODE}trigger = [\"imu\", \"odom\"]\n")).unwrap();
        assert_eq!(
            m.nodes[0].trigger,
            Trigger::Ports(vec!["imu".into(), "odom".into()])
        );
        assert_eq!(m.nodes[0].trigger.describe(), "[\"imu\", \"odom\"]");
        let m = check(&format!("{NODE}trigger = \"rate\"\n{NODE}")).unwrap_err();
        assert_eq!(m.codes(), vec![Code::H0008], "only the duplicate");
        let m = check(NODE).unwrap();
        assert_eq!(
            (&m.nodes[0].trigger, m.nodes[0].trigger_at),
            (&Trigger::Rate, None)
        );
    }

    #[test]
    fn trigger_mistakes_are_pointed_at() {
        let at = |d: &Diagnostic| (d.code, d.location.line, d.location.col, d.key.clone());
        for (text, what) in [
            ("trigger = \"inputs\"", "unknown trigger `inputs`"),
            ("trigger = []", "empty list"),
            ("trigger = [\"a\", \"a\"]", "twice"),
            ("trigger = [1]", "not a port name"),
            ("trigger = true", "boolean"),
        ] {
            let d = only(&format!("{NODE}{text}\n"));
            assert_eq!(
                at(&d),
                (Code::H0045, 4, 11, Some("trigger".into())),
                "{text}: {d}"
            );
            assert!(d.message.contains(what), "{text}: {d}");
            assert!(
                d.hint
                    .as_deref()
                    .is_some_and(|h| h.contains("trigger = \"input\"")),
                "{d}"
            );
        }
        // `timeout_ms` needs an input trigger; with a wrong one, only the trigger is reported.
        let d = only(&format!("{NODE}timeout_ms = 100\n"));
        assert_eq!(at(&d), (Code::H0045, 4, 14, Some("timeout_ms".into())), "{d}");
        let d = only(&format!("{NODE}trigger = \"rate\"\ntimeout_ms = 100\n"));
        assert_eq!(d.code, Code::H0045);
        let d = only(&format!("{NODE}trigger = \"x\"\ntimeout_ms = 100\n"));
        assert_eq!(d.key.as_deref(), Some("trigger"));
        let d = only(&format!("{NODE}trigger = \"input\"\ntimeout_ms = 0\n"));
        assert_eq!((d.code, d.key.as_deref()), (Code::H0006, Some("timeout_ms")));
    }

    #[test]
    fn every_isolation_and_python_nodes_may_be_input_triggered() {
        for iso in ["inline", "thread", "process"] {
            check(&format!(
                "{NODE}isolation = \"{iso}\"\ntrigger = \"input\"\ntimeout_ms = 50\n"
            ))
            .unwrap();
        }
        // A Python node's trigger names topics (it declares no ports): no port check here.
        let py = "[[node]]\nname = \"p\"\npython = \"p.py\"\nclass = \"P\"\n";
        // (The file does not exist here: only that is reported.)
        let all = check(&format!("{py}trigger = [\"imu\", \"odom\"]\ntimeout_ms = 100\n")).unwrap_err();
        assert!(
            all.0.iter().all(|d| d.key.as_deref() != Some("trigger")),
            "{all:?}"
        );
    }

    #[test]
    fn qos_parsing() {
        assert_eq!(Qos::parse("keep_last(4)"), Ok(Qos::KeepLast(4)));
        assert_eq!(
            Qos::parse("reliable"),
            Ok(Qos::Reliable(Qos::DEFAULT_RELIABLE_DEPTH))
        );
        assert_eq!(Qos::parse(" reliable( 8 ) "), Ok(Qos::Reliable(8)));
        assert!(Qos::parse("keep_last").is_err());
        assert!(Qos::parse("keep_last(0)").is_err());
        assert!(Qos::parse("keep_last(4").is_err());
        assert!(Qos::parse("best_effort").is_err());
    }

    /// Open-ended input: thousands of random edits of a valid manifest never panic the parser,
    /// and every located diagnostic points inside the file.
    #[test]
    fn random_edits_never_panic() {
        let base =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/demo.toml")).unwrap();
        let alphabet: &[u8] = b"[]{}=\"'.,#\n \\0123456789abcxyz_-+eE\t";
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..3000 {
            let mut bytes = base.clone().into_bytes();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => bytes[at] = c,
                    1 => bytes.insert(at, c),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            match parse(&text, Path::new("m.toml"), Path::new("/base")) {
                Ok(_) => ok += 1,
                Err(d) => {
                    refused += 1;
                    assert!(!d.is_empty());
                    let lines = text.lines().count() + 1;
                    for diag in &d.0 {
                        assert!(diag.location.line <= lines, "{diag} outside a {lines}-line file");
                    }
                }
            }
        }
        assert!(
            ok > 0 && refused > 0,
            "both outcomes exercised: {ok} ok, {refused} refused"
        );
    }

    /// Issue #13 (10): every key with random values — extreme numbers, wrong types, odd strings.
    /// Validation never panics, and whatever it accepts is safe to run: rates, deadlines,
    /// timeouts and backoffs stay in their limits, and the durations the scheduler derives from
    /// them can be built and added to an `Instant` (a rate of 1e-19 Hz once passed and panicked
    /// the scheduler).
    #[test]
    fn random_values_are_refused_or_safe_to_run() {
        let values = [
            "0",
            "-1",
            "1",
            "2",
            "7",
            "100",
            "100000",
            "100001",
            "1e-300",
            "1e-19",
            "1e300",
            "0.001",
            "0.0009",
            "-0.0",
            "nan",
            "inf",
            "-inf",
            "9223372036854775807",
            "-9223372036854775808",
            "3600000",
            "3600001",
            "60000",
            "10",
            "9",
            "true",
            "false",
            "\"\"",
            "\"x\"",
            "\"a.b\"",
            "\"keep_last(4)\"",
            "\"reliable\"",
            "\"reliable(1048577)\"",
            "\"standard\"",
            "\"thread\"",
            "\"process\"",
            "[]",
            "[1, 2]",
            "{}",
            "{ a = 1 }",
            "1979-05-27T07:32:00Z",
        ];
        let keys: [(&str, &[&str]); 3] = [
            ("[scheduler]", raw::SCHEDULER_KEYS),
            ("[[node]]\nname = \"a\"\nplugin = \"liba.so\"", raw::NODE_KEYS),
            ("[[connect]]\nfrom = \"a.out\"\ntopic = \"t\"", raw::CONNECT_KEYS),
        ];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as usize
        };
        let later = std::time::Instant::now() + std::time::Duration::from_secs(100 * 365 * 86_400);
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..4000 {
            let mut text = String::new();
            for (header, table_keys) in keys {
                text.push_str(header);
                text.push('\n');
                for _ in 0..next() % 4 {
                    let key = table_keys[next() % table_keys.len()];
                    if matches!(key, "name" | "plugin" | "from" | "topic")
                        || text.contains(&format!("\n{key} ="))
                    {
                        continue;
                    }
                    text.push_str(&format!("{key} = {}\n", values[next() % values.len()]));
                }
            }
            let Ok(m) = parse(&text, Path::new("m.toml"), Path::new("/base")) else {
                refused += 1;
                continue;
            };
            ok += 1;
            let s = &m.scheduler;
            assert!(limits::TICK_RATE_HZ.contains(s.tick_rate), "{text}");
            let period = |hz: f64| std::time::Duration::try_from_secs_f64(1.0 / hz).expect("a period");
            assert!(later.checked_add(period(s.tick_rate)).is_some(), "{text}");
            let sup = &s.supervision;
            for d in [sup.restart_backoff, sup.restart_backoff_max, sup.watchdog_timeout] {
                assert!(
                    d <= std::time::Duration::from_secs(3600) && later.checked_add(d).is_some(),
                    "{text}"
                );
            }
            assert!(sup.max_failures >= 1, "{text}");
            for n in &m.nodes {
                if let Some(hz) = n.rate_hz {
                    assert!(
                        limits::RATE_HZ.contains(hz) && (hz <= s.tick_rate || n.trigger.is_input()),
                        "{text}"
                    );
                    assert!(later.checked_add(period(hz)).is_some(), "{text}");
                }
                assert!(n.timeout.is_none() || n.trigger.is_input(), "{text}");
                for d in n.deadline.iter().chain(&n.watchdog).chain(&n.timeout) {
                    assert!(
                        *d > std::time::Duration::ZERO && *d <= std::time::Duration::from_secs(3600),
                        "{text}"
                    );
                }
            }
            for c in &m.connections {
                assert!((1..=Qos::MAX_DEPTH).contains(&c.qos.depth()), "{text}");
                assert!(
                    c.max_size
                        .is_none_or(|m| (1..=super::super::MAX_MAX_SIZE).contains(&m)),
                    "{text}"
                );
            }
        }
        assert!(
            ok > 100 && refused > 100,
            "both outcomes exercised: {ok} ok, {refused} refused"
        );
    }

    #[test]
    fn key_lists_match_the_raw_structs() {
        // Every key the hints list must be accepted by the parser.
        for key in raw::NODE_KEYS
            .iter()
            .filter(|k| !matches!(**k, "name" | "plugin" | "python" | "class" | "venv"))
        {
            let value = match *key {
                "type" => "\"T\"",
                "isolation" => "\"inline\"",
                "priority" => "1",
                "rate_hz" => "1.0",
                "deadline_ms" => "2.5",
                "trigger" => "\"input\"",
                // `timeout_ms` needs an input trigger.
                "timeout_ms" => "100\ntrigger = \"input\"",
                "watchdog_ms" => "100",
                "logging" => "true",
                "config" => "{}",
                "build" => "\"true\"",
                // `watch` needs `build`.
                "watch" => "[\"src/**\"]\nbuild = \"true\"",
                other => panic!("add a sample value for `{other}`"),
            };
            check(&format!("{NODE}{key} = {value}\n")).unwrap_or_else(|d| panic!("{key}: {d}"));
        }
        for key in raw::SCHEDULER_KEYS {
            let value = match *key {
                "preset" => "\"standard\"",
                "tick_rate" => "10.0",
                "circuit_breaker"
                | "auto_restart"
                | "deadline_monitoring"
                | "watchdog_enabled"
                | "hot_reload" => "true",
                "max_failures" | "restart_backoff_ms" | "restart_backoff_max_ms" | "watchdog_timeout_ms" => {
                    "100"
                }
                other => panic!("add a sample value for `{other}`"),
            };
            check(&format!("[scheduler]\n{key} = {value}\n")).unwrap_or_else(|d| panic!("{key}: {d}"));
        }
        for key in raw::CONNECT_KEYS.iter().filter(|k| **k == "qos") {
            check(&format!(
                "[[connect]]\nfrom = \"a.b\"\nto = \"c.d\"\n{key} = \"reliable\"\n"
            ))
            .unwrap();
        }
        for key in raw::PLUGINS_KEYS {
            let value = match *key {
                "path" => "[\"../build\"]",
                other => panic!("add a sample value for `{other}`"),
            };
            check(&format!("[plugins]\n{key} = {value}\n")).unwrap_or_else(|d| panic!("{key}: {d}"));
        }
        assert_eq!(raw::TOP_KEYS, ["scheduler", "node", "connect", "hub", "plugins"]);
    }

    fn plugin_of(m: &Manifest, i: usize) -> &PluginCode {
        match &m.nodes[i].code {
            NodeCode::Plugin(code) => code,
            other => panic!("a plugin node: {other:?}"),
        }
    }

    #[test]
    fn a_plugin_value_is_a_path_with_a_slash_or_so_and_a_name_otherwise() {
        let m = check(
            "[[node]]\nname = \"a\"\nplugin = \"imu-sim\"\n\
             [[node]]\nname = \"b\"\nplugin = \"../target/debug/libimu_sim.so\"\n\
             [[node]]\nname = \"c\"\nplugin = \"libx.so\"\n\
             [[node]]\nname = \"d\"\nplugin = \"build/libx\"\n",
        )
        .unwrap();
        assert_eq!(plugin_of(&m, 0).plugin.value, PluginRef::Name("imu-sim".into()));
        assert_eq!(plugin_of(&m, 0).plugin.at, Location { line: 3, col: 10 });
        assert_eq!(
            plugin_of(&m, 1).plugin.value,
            PluginRef::File("/base/../target/debug/libimu_sim.so".into())
        );
        assert_eq!(
            plugin_of(&m, 2).plugin.value,
            PluginRef::File("/base/libx.so".into())
        );
        assert_eq!(
            plugin_of(&m, 3).plugin.value,
            PluginRef::File("/base/build/libx".into())
        );
        for bad in ["imu sim", "imu.sim", ""] {
            let d = only(&format!("[[node]]\nname = \"a\"\nplugin = \"{bad}\"\n"));
            assert_eq!(
                (d.code, d.key.as_deref(), d.location.line),
                (Code::H0006, Some("plugin"), 3),
                "{bad:?}: {d}"
            );
        }
    }

    #[test]
    fn a_type_alone_names_the_plugin_by_the_type_it_offers() {
        let m = check("[[node]]\nname = \"a\"\ntype = \"ImuSim\"\n").unwrap();
        let code = plugin_of(&m, 0);
        assert_eq!(code.plugin.value, PluginRef::OfType("ImuSim".into()));
        assert_eq!(
            code.plugin.at,
            Location { line: 3, col: 8 },
            "at the type's value"
        );
        assert_eq!(code.node_type.as_ref().map(|t| t.value.as_str()), Some("ImuSim"));
        let d = only("[[node]]\nname = \"a\"\npriority = 1\n");
        assert_eq!((d.code, d.key.as_deref()), (Code::H0005, Some("plugin")));
        assert!(d.hint.as_deref().unwrap_or_default().contains("type = "), "{d}");
        let d = only("[[node]]\nname = \"a\"\ntype = \"ImuSim\"\nclass = \"X\"\n");
        assert_eq!((d.code, d.key.as_deref()), (Code::H0006, Some("class")));
        let d = only("[[node]]\nname = \"a\"\ntype = \" \"\n");
        assert_eq!((d.code, d.key.as_deref()), (Code::H0006, Some("type")));
    }

    #[test]
    fn the_plugins_table_is_checked_where_it_is_written() {
        let m = check(&format!("[plugins]\npath = [\"../build\", \"/opt/p\"]\n{NODE}")).unwrap();
        let path: Vec<_> = m
            .plugin_path
            .iter()
            .map(|d| (d.value.clone(), d.at.line))
            .collect();
        assert_eq!(path, vec![("/base/../build".into(), 2), ("/opt/p".into(), 2)]);
        assert!(check(NODE).unwrap().plugin_path.is_empty());
        let d = only(&format!("[plugins]\npaths = [\"x\"]\n{NODE}"));
        assert_eq!(
            (d.code, d.key.as_deref(), d.location.line),
            (Code::H0003, Some("paths"), 2)
        );
        assert_eq!(d.hint.as_deref(), Some("did you mean `path`?"));
        let d = only(&format!("[plugins]\npath = \"../build\"\n{NODE}"));
        assert_eq!(
            (d.code, d.key.as_deref(), d.location.line),
            (Code::H0004, Some("path"), 2)
        );
        assert!(
            d.hint.as_deref().unwrap_or_default().contains("array of folders"),
            "{d}"
        );
        let d = only(&format!("[plugins]\npath = [\"a\", 3]\n{NODE}"));
        assert_eq!((d.code, d.location.line), (Code::H0004, 2), "{d}");
        let d = only(&format!("[plugins]\npath = [\"a\", \"\"]\n{NODE}"));
        assert_eq!(
            (d.code, d.key.as_deref(), d.location.line, d.location.col),
            (Code::H0006, Some("plugins.path"), 2, 14)
        );
        let d = only(&format!("plugins = 3\n{NODE}"));
        assert_eq!((d.code, d.key.as_deref()), (Code::H0004, Some("plugins")), "{d}");
    }

    const TCP_HUB: &str = "[hub.sensor_hub]\nmode = \"tcp\"\naddress = \"127.0.0.1:7450\"\n";

    #[test]
    fn hub_tables_are_checked_where_they_are_written() {
        let d = only("[hub.h]\nmode = \"tcp\"\naddress = \"nohost\"\n");
        assert_eq!(
            (d.code, d.location.line, d.key.as_deref()),
            (Code::H0006, 3, Some("hub.h.address"))
        );
        let d = only("[hub.h]\nmode = \"udp\"\n");
        assert_eq!((d.code, d.key.as_deref()), (Code::H0006, Some("hub.h.mode")));
        let local = check("[hub.h]\nmode = \"local\"\n").unwrap();
        assert_eq!(local.hubs[0].spec.mode, super::super::hubs::HubMode::Local);
        let d = only("[hub.h]\nmode = \"local\"\nport = 1\n");
        assert_eq!((d.code, d.key.as_deref()), (Code::H0003, Some("port")));
        // Issue #12: the error's kind says where it is, not its text: a bad hub name that
        // contains "address" is the table's problem, not the (valid) address line's.
        let d = only("[hub.\"my address\"]\nmode = \"tcp\"\naddress = \"127.0.0.1:7450\"\n");
        assert_eq!((d.location.line, d.key.as_deref()), (1, Some("hub.my address")));
        let d = only("[hub.h]\nmode = \"local\"\naddress = \"127.0.0.1:7450\"\n");
        assert_eq!((d.location.line, d.key.as_deref()), (3, Some("hub.h.address")));
    }

    /// The local-only build (`cargo build` without `network`, the README's demo build) refuses
    /// tcp hubs; scripts/test.sh runs this crate's tests in that build too.
    #[cfg(not(feature = "network"))]
    #[test]
    fn without_the_network_feature_a_tcp_hub_is_h0026() {
        let d = only(TCP_HUB);
        assert_eq!((d.code, d.location.line), (Code::H0026, 2));
        assert!(d
            .hint
            .as_deref()
            .unwrap_or_default()
            .contains("--features horus-host/network"));
    }

    #[cfg(feature = "network")]
    #[test]
    fn with_the_network_feature_topics_under_a_tcp_hub_are_network_topics() {
        let m = check(&format!(
            "{TCP_HUB}[[connect]]\ntopic = \"sensor_hub/imu\"\nto = \"a.b\"\n"
        ))
        .unwrap();
        assert_eq!(
            super::super::network_hub(&m.hubs, "sensor_hub/imu").unwrap().name,
            "sensor_hub"
        );
        assert!(super::super::network_hub(&m.hubs, "sensor_hubx/imu").is_none());
        assert!(super::super::network_hub(&m.hubs, "demo/imu").is_none());
        let d = only(&format!(
            "{TCP_HUB}[[connect]]\ntopic = \"sensor_hub/*\"\nto = \"a.b\"\n"
        ));
        assert_eq!((d.code, d.key.as_deref()), (Code::H0006, Some("connect.topic")));
    }
}
