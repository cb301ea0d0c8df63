//! The `horus plugins` and `horus inspect` commands: what is on the plugin search path (every
//! plugin, shadowed ones marked, every refused file with why, like gst-inspect's blacklist), and
//! one node type or plugin in full (ports, a manifest snippet to paste). Both print a table for
//! people or JSON with the keys documented in docs/plugins.md; `inspect` fails with a coded
//! error ([`InspectError`]) that names what to do.
//!
//! Owns resolution of an `inspect` argument (a node type on the path, then a plugin name, then
//! a file) and the rendering. It does not own the search path ([`crate::plugins::search`]),
//! looking at files and the registry cache ([`crate::plugins::scan`], [`crate::plugins::cache`]).

use crate::diag::{suggest, Code, Diagnostics};
use crate::plugins::scan::{Described, NodeTypeDesc, RefusalKind, Scan, Scanner, TypeError, Verdict};
use crate::plugins::search::{self, Origin};
use crate::plugins::{Direction, Registry, SearchPath};
use serde_json::{json, Value};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// The search path of `manifest`'s `[plugins] path` (or without one), in this process.
pub fn search_path(manifest: Option<&Path>) -> Result<SearchPath, Diagnostics> {
    Ok(match manifest {
        Some(path) => SearchPath::from_manifest(&crate::manifest::load(path)?),
        None => SearchPath::from_env(&[]),
    })
}

/// A scanner that opens libraries in children of `program` and keeps what they find in the
/// registry cache.
pub fn scanner(program: Option<&Path>) -> Scanner {
    let scanner = Scanner::new(program);
    match Registry::open_default() {
        Some(cache) => scanner.with_cache(cache),
        None => scanner,
    }
}

/// Why `horus inspect` found nothing to show. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectError {
    /// Stable code (`H0035` not found, `H0034` ambiguous, or the code of a refused file's kind).
    pub code: Code,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error[{}]: {}\n  hint: {}\n  see: docs/errors/{}.md",
            self.code, self.message, self.hint, self.code
        )
    }
}

impl std::error::Error for InspectError {}

/// What the argument of `horus inspect` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// A node type offered on the path.
    Type,
    /// A plugin name on the path.
    Plugin,
    /// A file.
    File,
}

impl Matched {
    fn as_str(self) -> &'static str {
        match self {
            Matched::Type => "type",
            Matched::Plugin => "plugin",
            Matched::File => "file",
        }
    }
}

/// What `horus inspect` shows: a plugin file, what it offers, and the types asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    /// How the argument matched.
    pub matched: Matched,
    /// The plugin file.
    pub file: PathBuf,
    /// The plugin.
    pub plugin: Described,
    /// The node types to show (one for a type, all for a plugin or file).
    pub types: Vec<NodeTypeDesc>,
    /// How a manifest names this plugin: its name when that finds this file on the path, else
    /// the file's path.
    pub plugin_ref: String,
}

/// Finds what `target` names: a node type on `path` (the plugin a type-only node would get),
/// else a plugin name on `path`, else a file.
pub fn resolve(scanner: &mut Scanner, path: &SearchPath, target: &str) -> Result<Inspected, InspectError> {
    let type_error = match scanner.find_by_type(path, target) {
        Ok(file) => {
            let plugin = described(scanner, &file, target)?;
            let types = plugin.node_type(target).cloned().into_iter().collect();
            return Ok(inspected(path, Matched::Type, file, plugin, types));
        }
        Err(TypeError::Ambiguous { folder, files }) => {
            let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
            let example = names
                .first()
                .and_then(|n| search::name_of(n))
                .unwrap_or_else(|| files[0].display().to_string());
            return Err(InspectError {
                code: Code::H0034,
                message: format!(
                    "node type `{target}` is offered by {} plugins in {}: {}",
                    files.len(),
                    folder.display(),
                    names.join(", ")
                ),
                hint: format!(
                    "inspect one of them by its plugin name or file, e.g. `horus inspect {example}`"
                ),
            });
        }
        Err(e) => e,
    };
    if search::is_plugin_name(target) {
        if let Ok(found) = path.find_by_name(target) {
            let plugin = described(scanner, &found.file, target)?;
            let types = plugin.types.clone();
            return Ok(inspected(path, Matched::Plugin, found.file, plugin, types));
        }
    }
    let file = Path::new(target);
    if file.is_file() {
        let plugin = described(scanner, file, target)?;
        let types = plugin.types.clone();
        return Ok(inspected(path, Matched::File, file.to_path_buf(), plugin, types));
    }
    let scan = scanner.scan(path);
    let mut candidates: Vec<&str> = scan.found.iter().flat_map(|l| l.plugin.type_names()).collect();
    candidates.extend(scan.found.iter().map(|l| l.plugin.name.as_str()));
    let did_you_mean = suggest(target, candidates)
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    let refused = match &type_error {
        TypeError::NotFound { refused, .. } if !refused.is_empty() => format!(
            "; {} of the path {} refused (`horus plugins` lists why)",
            plural(refused.len(), "file", "files"),
            if refused.len() == 1 { "was" } else { "were" }
        ),
        _ => String::new(),
    };
    Err(InspectError {
        code: Code::H0035,
        message: format!(
            "no node type, plugin or file `{target}`: searched {}{refused}",
            path.describe()
        ),
        hint: format!(
            "{did_you_mean}`horus plugins` lists the plugins and node types on the path; give a node type \
             (`ImuSim`), a plugin name (`imu-sim`) or the path of a .so, or add the plugin's folder to {} \
             (see docs/plugins.md)",
            search::ENV
        ),
    })
}

/// What `file` offers, or the error of its refusal.
fn described(scanner: &mut Scanner, file: &Path, target: &str) -> Result<Described, InspectError> {
    match scanner.look_at_file(file) {
        Verdict::Plugin(d) => Ok(d),
        Verdict::Refused(r) => Err(InspectError {
            code: r.kind.code(),
            message: if Path::new(target) == file {
                format!("{target} is not a usable plugin: {}", r.reason)
            } else {
                format!(
                    "plugin `{target}` is {}, which is not usable: {}",
                    file.display(),
                    r.reason
                )
            },
            hint: refusal_hint(r.kind).to_owned(),
        }),
    }
}

fn refusal_hint(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Unreadable => "check that the file is readable by this user (`ls -l` shows its mode and owner)",
        RefusalKind::NotALibrary => "give the built library (a `.so` of a `crate-type = [\"cdylib\"]` crate)",
        RefusalKind::NotAPlugin => {
            "a HORUS plugin calls `horus_plugin_api::export_plugin!(YourNode)` once; see docs/plugins.md"
        }
        RefusalKind::PythonExtension => {
            "Python nodes are named with `python = \"file.py\"` in a manifest, not inspected as plugins"
        }
        RefusalKind::AbiVersion | RefusalKind::AbiLayout => {
            "rebuild the plugin against the horus-plugin-api of this host (`cargo build`)"
        }
        RefusalKind::BadDescriptor | RefusalKind::Crashed | RefusalKind::Hung | RefusalKind::Failed => {
            "the library's `horus_plugin_entry` or its descriptor is broken: rebuild it with `export_plugin!` \
             against horus-plugin-api; see docs/plugins.md"
        }
    }
}

fn inspected(
    path: &SearchPath,
    matched: Matched,
    file: PathBuf,
    plugin: Described,
    types: Vec<NodeTypeDesc>,
) -> Inspected {
    let by_name = path
        .find_by_name(&plugin.name)
        .is_ok_and(|found| same_file(&found.file, &file));
    let plugin_ref = if by_name {
        plugin.name.clone()
    } else {
        std::fs::canonicalize(&file)
            .unwrap_or_else(|_| file.clone())
            .display()
            .to_string()
    };
    Inspected {
        matched,
        file,
        plugin,
        types,
        plugin_ref,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn file_name(f: &Path) -> String {
    f.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// A node name for a type: `ImuSim` → `imu_sim`.
pub fn node_name(type_name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in type_name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = true;
        } else {
            out.push('_');
            prev_lower = false;
        }
    }
    if out.is_empty() {
        "node".to_owned()
    } else {
        out
    }
}

/// A `[[node]]` and a `[[connect]]` per port for node type `t`, named by `plugin_ref`; it
/// passes `horus check` as it is (each port on a named topic), and says how to connect a port
/// to another node instead.
pub fn snippet(t: &NodeTypeDesc, plugin_ref: &str) -> String {
    let node = node_name(&t.name);
    let mut out = format!(
        "[[node]]\nname = \"{node}\"\ntype = \"{}\"\nplugin = \"{}\"\n",
        t.name,
        plugin_ref.replace('\\', "\\\\").replace('"', "\\\"")
    );
    // The keys the type requires, each with a value of its kind to replace (the others have
    // defaults: `horus inspect` lists them).
    let required: Vec<String> = t
        .config
        .iter()
        .flatten()
        .filter(|k| k.required)
        .map(|k| format!("{} = {}", k.name, example(&k.kind)))
        .collect();
    if !required.is_empty() {
        let _ = writeln!(
            out,
            "config = {{ {} }}  # required: set your values",
            required.join(", ")
        );
    }
    for p in &t.ports {
        let topic = format!("{node}/{}", p.name);
        let _ = match p.direction {
            Direction::Output => write!(
                out,
                "\n[[connect]]\nfrom = \"{node}.{}\"\ntopic = \"{topic}\"  # or to = \"<node>.<input>\" ({})\n",
                p.name, p.message_type
            ),
            Direction::Input => write!(
                out,
                "\n[[connect]]\ntopic = \"{topic}\"  # or from = \"<node>.<output>\" ({})\nto = \"{node}.{}\"\n",
                p.message_type, p.name
            ),
        };
    }
    out
}

/// A value of config kind `kind`, for the snippet.
fn example(kind: &str) -> &'static str {
    match kind {
        "bool" => "false",
        "int" => "0",
        "float" => "0.0",
        "array" => "[]",
        "table" => "{}",
        _ => "\"\"",
    }
}

/// The `config:` section of one node type.
fn render_config(out: &mut String, t: &NodeTypeDesc) {
    match &t.config {
        None => out.push_str("\n  config: no schema declared (its keys are not checked)\n"),
        Some(keys) if keys.is_empty() => out.push_str("\n  config: takes no keys\n"),
        Some(keys) => {
            out.push_str("\n  config:\n");
            let mut rows = vec![vec![
                "KEY".to_owned(),
                "TYPE".to_owned(),
                "DEFAULT".to_owned(),
                "DOC".to_owned(),
            ]];
            for k in keys {
                rows.push(vec![
                    k.name.clone(),
                    k.kind.clone(),
                    match (&k.default, k.required) {
                        (_, true) => "(required)".to_owned(),
                        (Some(d), false) => d.clone(),
                        (None, false) => "(none)".to_owned(),
                    },
                    k.doc.clone(),
                ]);
            }
            out.push_str(&table("    ", &rows));
        }
    }
}

fn slot(p: &crate::plugins::PortDesc) -> String {
    match p.max_size {
        0 => format!("{} B (default; the connection's max_size)", p.slot_size()),
        n => format!("{n} B"),
    }
}

/// Rows of cells as aligned columns (two spaces apart, last column unpadded), each line
/// prefixed with `indent`.
fn table(indent: &str, rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_owned();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn origin_key(origin: Origin) -> &'static str {
    match origin {
        Origin::Manifest => "manifest",
        Origin::Env => "env",
        Origin::Executable => "executable",
        Origin::DataHome => "data_home",
    }
}

fn kind_label(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Unreadable => "unreadable",
        RefusalKind::NotALibrary => "not a library",
        RefusalKind::NotAPlugin => "not a HORUS plugin",
        RefusalKind::PythonExtension => "Python extension",
        RefusalKind::AbiVersion => "ABI version mismatch",
        RefusalKind::AbiLayout => "ABI layout mismatch",
        RefusalKind::BadDescriptor => "bad descriptor",
        RefusalKind::Crashed => "crashed at inspection",
        RefusalKind::Hung => "hung at inspection",
        RefusalKind::Failed => "inspection failed",
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `horus plugins` for people: the folders, the plugins, the refused files, and what the cache
/// saved.
pub fn render_plugins(path: &SearchPath, scan: &Scan, scanner: &Scanner) -> String {
    let mut out = String::from("Plugin search path (the first folder with a match wins):\n");
    let folders: Vec<Vec<String>> = path
        .folders()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let missing = if f.dir.is_dir() { "" } else { ", missing" };
            vec![
                format!("{}.", i + 1),
                f.dir.display().to_string(),
                format!("({}{missing})", f.origin),
            ]
        })
        .collect();
    if folders.is_empty() {
        out.push_str("  (no folders)\n");
    }
    out.push_str(&table("  ", &folders));
    let _ = writeln!(out, "\n{}:", plural(scan.found.len(), "plugin", "plugins"));
    if !scan.found.is_empty() {
        let mut rows = vec![vec![
            "PLUGIN".to_owned(),
            "VERSION".to_owned(),
            "ABI".to_owned(),
            "FILE".to_owned(),
            "NODE TYPES".to_owned(),
        ]];
        for l in &scan.found {
            rows.push(vec![
                l.plugin.name.clone(),
                l.plugin.version.clone(),
                format!("v{}", l.plugin.abi_version),
                l.file.display().to_string(),
                l.plugin.type_names().collect::<Vec<_>>().join(", "),
            ]);
        }
        let lines = table("  ", &rows);
        // The shadowed mark goes on a line of its own under its plugin.
        for (i, line) in lines.lines().enumerate() {
            out.push_str(line);
            out.push('\n');
            if let Some(by) = i.checked_sub(1).and_then(|j| scan.found[j].shadowed_by.as_ref()) {
                let _ = writeln!(out, "    shadowed by {} (an earlier folder)", by.display());
            }
        }
    }
    if !scan.refused.is_empty() {
        let _ = writeln!(
            out,
            "\n{} (not plugins this host can load):",
            plural(scan.refused.len(), "refused file", "refused files")
        );
        for r in &scan.refused {
            let _ = writeln!(
                out,
                "  {}\n      {}: {}",
                r.file.display(),
                kind_label(r.kind),
                r.reason
            );
        }
    }
    let counts = scanner.counts();
    let cache = match scanner.cache() {
        Some(c) => format!("{} from the cache {}", counts.cached, c.path().display()),
        None => "no cache (neither XDG_CACHE_HOME nor HOME is set)".to_owned(),
    };
    let _ = writeln!(
        out,
        "\n{} opened, {cache}",
        plural(counts.inspected, "library", "libraries")
    );
    out
}

/// `horus plugins --json` (keys documented in docs/plugins.md).
pub fn plugins_json(path: &SearchPath, scan: &Scan, scanner: &Scanner) -> Value {
    let counts = scanner.counts();
    json!({
        "search_path": path.folders().iter().map(|f| json!({
            "dir": f.dir,
            "origin": origin_key(f.origin),
            "exists": f.dir.is_dir(),
        })).collect::<Vec<_>>(),
        "plugins": scan.found.iter().map(|l| json!({
            "file": l.file,
            "name": l.plugin.name,
            "version": l.plugin.version,
            "abi_version": l.plugin.abi_version,
            "node_types": l.plugin.type_names().collect::<Vec<_>>(),
            "shadowed_by": l.shadowed_by,
        })).collect::<Vec<_>>(),
        "refused": scan.refused.iter().map(|r| json!({
            "file": r.file,
            "kind": r.kind.as_str(),
            "reason": r.reason,
        })).collect::<Vec<_>>(),
        "cache": {
            "file": scanner.cache().map(|c| c.path()),
            "inspected": counts.inspected,
            "cached": counts.cached,
        },
    })
}

/// `horus inspect` for people.
pub fn render_inspected(i: &Inspected) -> String {
    let mut out = String::new();
    let p = &i.plugin;
    if i.matched != Matched::Type {
        let _ = writeln!(
            out,
            "plugin {} {} (plugin ABI v{}): {}\n  file: {}\n",
            p.name,
            p.version,
            p.abi_version,
            plural(p.types.len(), "node type", "node types"),
            i.file.display()
        );
    }
    for (n, t) in i.types.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{}: node type of plugin {} {} (plugin ABI v{})\n  file: {}\n",
            t.name,
            p.name,
            p.version,
            p.abi_version,
            i.file.display()
        );
        if t.ports.is_empty() {
            out.push_str("  ports: none\n");
        } else {
            out.push_str("  ports:\n");
            let mut rows = vec![vec![
                "NAME".to_owned(),
                "DIRECTION".to_owned(),
                "MESSAGE TYPE".to_owned(),
                "ENCODING".to_owned(),
                "SLOT".to_owned(),
            ]];
            for port in &t.ports {
                rows.push(vec![
                    port.name.clone(),
                    port.direction.as_str().to_owned(),
                    port.message_type.clone(),
                    port.encoding.clone(),
                    slot(port),
                ]);
            }
            out.push_str(&table("    ", &rows));
        }
        render_config(&mut out, t);
        out.push_str("\n  manifest snippet:\n");
        for line in snippet(t, &i.plugin_ref).lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

/// `horus inspect --json` (keys documented in docs/plugins.md).
pub fn inspected_json(i: &Inspected) -> Value {
    json!({
        "matched": i.matched.as_str(),
        "file": i.file,
        "plugin": {
            "name": i.plugin.name,
            "version": i.plugin.version,
            "abi_version": i.plugin.abi_version,
            "ref": i.plugin_ref,
        },
        "node_types": i.types.iter().map(|t| json!({
            "name": t.name,
            "ports": t.ports.iter().map(|p| json!({
                "name": p.name,
                "direction": p.direction.as_str(),
                "message_type": p.message_type,
                "type_hash": format!("{:#018x}", p.type_hash),
                "encoding": p.encoding,
                "max_size": p.max_size,
                "slot_size": p.slot_size(),
            })).collect::<Vec<_>>(),
            "config": t.config.as_ref().map(|keys| keys.iter().map(|k| json!({
                "name": k.name,
                "type": k.kind,
                "required": k.required,
                // The default as JSON (kept as a TOML value: read it as one key's value).
                "default": k.default.as_ref().and_then(|d| format!("v = {d}").parse::<toml::Table>().ok()?.remove("v")),
                "doc": k.doc,
            })).collect::<Vec<_>>()),
            "manifest_snippet": snippet(t, &i.plugin_ref),
        })).collect::<Vec<_>>(),
    })
}

/// Why `horus plugins` or `horus inspect` failed.
#[derive(Debug)]
pub enum CliError {
    /// The `--manifest` is wrong.
    Manifest(Diagnostics),
    /// `inspect` found nothing usable.
    Inspect(InspectError),
}

impl CliError {
    /// Both are bad input: 2.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Manifest(d) => write!(f, "{d}"),
            CliError::Inspect(e) => write!(f, "horus inspect: {e}"),
        }
    }
}

/// `horus plugins [--json] [--manifest M]`: the text to print.
pub fn plugins(json: bool, manifest: Option<&Path>, program: Option<&Path>) -> Result<String, CliError> {
    let path = search_path(manifest).map_err(CliError::Manifest)?;
    let mut scanner = scanner(program);
    let scan = scanner.scan(&path);
    Ok(if json {
        plugins_json(&path, &scan, &scanner).to_string() + "\n"
    } else {
        render_plugins(&path, &scan, &scanner)
    })
}

/// `horus inspect <target> [--json] [--manifest M]`: the text to print.
pub fn inspect(
    target: &str,
    json: bool,
    manifest: Option<&Path>,
    program: Option<&Path>,
) -> Result<String, CliError> {
    let path = search_path(manifest).map_err(CliError::Manifest)?;
    let mut scanner = scanner(program);
    let found = resolve(&mut scanner, &path, target).map_err(CliError::Inspect)?;
    Ok(if json {
        serde_json::to_string_pretty(&inspected_json(&found)).unwrap_or_default() + "\n"
    } else {
        render_inspected(&found)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sections_say_when_a_type_declares_no_schema_or_no_keys() {
        let mut t = NodeTypeDesc {
            name: "T".into(),
            ports: Vec::new(),
            config: None,
        };
        let mut out = String::new();
        render_config(&mut out, &t);
        assert_eq!(out, "\n  config: no schema declared (its keys are not checked)\n");
        t.config = Some(Vec::new());
        out.clear();
        render_config(&mut out, &t);
        assert_eq!(out, "\n  config: takes no keys\n");
        assert!(
            !snippet(&t, "p").contains("config"),
            "no required keys, no config line"
        );
    }

    #[test]
    fn node_names_are_snake_case_of_the_type() {
        assert_eq!(node_name("ImuSim"), "imu_sim");
        assert_eq!(node_name("ComplementaryFilter"), "complementary_filter");
        assert_eq!(node_name("PID2Ctl"), "pid2_ctl");
        assert_eq!(node_name("x"), "x");
        assert_eq!(node_name(""), "node");
    }

    #[test]
    fn tables_align_every_column_but_the_last() {
        let rows = vec![
            vec!["A".to_owned(), "long cell".to_owned(), "end".to_owned()],
            vec!["longer".to_owned(), "b".to_owned(), "e".to_owned()],
        ];
        assert_eq!(
            table("  ", &rows),
            "  A       long cell  end\n  longer  b          e\n"
        );
    }
}
