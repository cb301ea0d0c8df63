//! User-facing diagnostics: a stable error code, a location (file, line, column), the key or node
//! it concerns, a message and a hint. Every bad-input error of the host (manifest, plugin,
//! connection) is a [`Diagnostic`]; [`Diagnostics`] collects them so that one `horus check` run
//! reports every problem at once.
//!
//! Owns formatting and the code table. It does not decide what is an error: the manifest
//! validator and the graph builder do.

use std::fmt;
use std::path::{Path, PathBuf};

/// Stable error codes. Each has a page `docs/errors/<code>.md` with an example and the fix.
/// Tests assert on codes, not on prose. Never renumber: add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The manifest file cannot be read.
    H0001,
    /// TOML syntax error.
    H0002,
    /// Unknown key.
    H0003,
    /// A value has the wrong type.
    H0004,
    /// A required key is missing.
    H0005,
    /// A value is out of range or malformed.
    H0006,
    /// Unknown scheduler preset, or preset and tick_rate both given.
    H0007,
    /// Two nodes share a name.
    H0008,
    /// Plugin file not found.
    H0010,
    /// Plugin file is not a loadable shared library.
    H0011,
    /// Shared library without the HORUS entry symbol.
    H0012,
    /// Plugin built against another ABI version.
    H0013,
    /// Plugin built against another ABI layout.
    H0014,
    /// Node type not found in the plugin (or ambiguous).
    H0015,
    /// Plugin descriptor is malformed.
    H0016,
    /// The plugin file could not be read, or copied to a private path for loading.
    H0017,
    /// A connection names an unknown node.
    H0020,
    /// A connection names an unknown port.
    H0021,
    /// A connection joins ports of different message types.
    H0022,
    /// An input is connected more than once.
    H0023,
    /// An output is published under two topic names.
    H0024,
    /// A Python node's environment has no usable interpreter or `horus` package.
    H0025,
    /// A manifest declares a tcp hub, and the host was built without the `network` feature.
    H0026,
    /// A network hub could not be opened when the run started (the address is unusable).
    H0027,
    /// A Link (single-producer topic) already has a live producer in another endpoint.
    H0028,
    /// A topic's shared memory does not fit in the free space of /dev/shm.
    H0029,
    /// A plugin crashed or hung the child process that inspected it.
    H0030,
    /// A node's `build` command does not say which files it reads (no `watch`, and no crate
    /// found from the command).
    H0031,
    /// A plugin named by name (`plugin = "imu-sim"`) is in no folder of the plugin search path.
    H0032,
    /// No plugin on the search path offers the node type of a type-only node.
    H0033,
    /// Two plugins in the same folder of the search path offer a type-only node's type.
    H0034,
    /// `horus inspect`: no node type, plugin or file of that name.
    H0035,
    /// A node's `config` has a key its node type does not declare.
    H0040,
    /// A node's `config` key has a value of another type than its node type declares.
    H0041,
    /// A node's `config` lacks a key its node type declares as required.
    H0042,
    /// A Python node's file cannot be imported (syntax error, failing import).
    H0043,
    /// A Python node's `class` is not in its file, or is not a `horus.Node` subclass, or its
    /// `CONFIG` is malformed.
    H0044,
    /// A node's `trigger` or `timeout_ms` is malformed, or `timeout_ms` is set on a
    /// rate-triggered node.
    H0045,
    /// A node's `trigger` names a port that is not an input of its node type, or its node type
    /// has no inputs.
    H0046,
    /// Retired (never reported now): `trigger` on a `process` or Python node, refused before
    /// those could be input-triggered. Reserved so it never means anything else.
    H0047,
}

impl Code {
    /// The code as written in messages, e.g. `H0003`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::H0001 => "H0001",
            Code::H0002 => "H0002",
            Code::H0003 => "H0003",
            Code::H0004 => "H0004",
            Code::H0005 => "H0005",
            Code::H0006 => "H0006",
            Code::H0007 => "H0007",
            Code::H0008 => "H0008",
            Code::H0010 => "H0010",
            Code::H0011 => "H0011",
            Code::H0012 => "H0012",
            Code::H0013 => "H0013",
            Code::H0014 => "H0014",
            Code::H0015 => "H0015",
            Code::H0016 => "H0016",
            Code::H0017 => "H0017",
            Code::H0020 => "H0020",
            Code::H0021 => "H0021",
            Code::H0022 => "H0022",
            Code::H0023 => "H0023",
            Code::H0024 => "H0024",
            Code::H0025 => "H0025",
            Code::H0026 => "H0026",
            Code::H0027 => "H0027",
            Code::H0028 => "H0028",
            Code::H0029 => "H0029",
            Code::H0030 => "H0030",
            Code::H0031 => "H0031",
            Code::H0032 => "H0032",
            Code::H0033 => "H0033",
            Code::H0034 => "H0034",
            Code::H0035 => "H0035",
            Code::H0040 => "H0040",
            Code::H0041 => "H0041",
            Code::H0042 => "H0042",
            Code::H0043 => "H0043",
            Code::H0044 => "H0044",
            Code::H0045 => "H0045",
            Code::H0046 => "H0046",
            Code::H0047 => "H0047",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 1-based line and column in a file. `line == 0` means "the whole file".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub col: usize,
}

impl Location {
    /// The line and column of byte offset `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Location { line, col }
    }
}

/// The line starts of a text: turns many byte offsets into locations in O(log lines) each, where
/// [`Location::of_offset`] scans the text from its start every time.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// The line and column of byte offset `offset`, as [`Location::of_offset`] gives them.
    pub fn location(&self, offset: usize) -> Location {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let col = self.text[start..offset].chars().count() + 1;
        Location { line, col }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem with the user's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// File the problem is in (the manifest, or a plugin file).
    pub file: PathBuf,
    /// Where in `file`.
    pub location: Location,
    /// The key concerned, if any (`node.priority`, `connect.to`).
    pub key: Option<String>,
    /// The node concerned, if any.
    pub node: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic about `file` with no location yet.
    pub fn new(code: Code, file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            file: file.to_path_buf(),
            location: Location::default(),
            key: None,
            node: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Sets the location.
    pub fn at(mut self, location: Location) -> Diagnostic {
        self.location = location;
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<String>) -> Diagnostic {
        self.key = Some(key.into());
        self
    }

    /// Sets the node.
    pub fn node(mut self, node: impl Into<String>) -> Diagnostic {
        self.node = Some(node.into());
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.location.line > 0 {
            write!(f, ":{}:{}", self.location.line, self.location.col)?;
        }
        write!(f, ": error[{}]: ", self.code)?;
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        write!(f, "\n  see: docs/errors/{}.md", self.code)
    }
}

/// Every problem found in one pass, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Adds all of `other`.
    pub fn append(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when empty, else the diagnostics sorted by location.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.sorted())
        }
    }

    /// Sorted by file and location (stable, so equal locations keep their order).
    pub fn sorted(mut self) -> Diagnostics {
        self.0
            .sort_by_key(|d| (d.file.clone(), d.location.line, d.location.col));
        self
    }

    /// The codes, in order (for tests).
    pub fn codes(&self) -> Vec<Code> {
        self.0.iter().map(|d| d.code).collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_line_and_column() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(Location::of_offset(text, 0), Location { line: 1, col: 1 });
        assert_eq!(Location::of_offset(text, 6), Location { line: 2, col: 1 });
        assert_eq!(Location::of_offset(text, 11), Location { line: 2, col: 6 });
        assert_eq!(Location::of_offset(text, 999), Location { line: 3, col: 1 });
    }

    #[test]
    fn the_line_index_agrees_with_the_scan_everywhere() {
        let text = "a = 1\n\nbé = \"ü\"\r\n[[x]]\nlast";
        let index = LineIndex::new(text);
        for offset in 0..text.len() + 3 {
            assert_eq!(
                index.location(offset),
                Location::of_offset(text, offset),
                "offset {offset}"
            );
        }
        assert_eq!(LineIndex::new("").location(5), Location { line: 1, col: 1 });
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["name", "plugin", "priority", "rate_hz"];
        assert_eq!(suggest("priorty", keys), Some("priority"));
        assert_eq!(suggest("plugn", keys), Some("plugin"));
        assert_eq!(suggest("colour", keys), None);
    }

    #[test]
    fn display_has_location_code_node_and_hint() {
        let d = Diagnostic::new(Code::H0006, Path::new("m.toml"), "`rate_hz` must be > 0 (got 0)")
            .at(Location { line: 12, col: 9 })
            .node("lidar")
            .hint("remove it to tick at the scheduler rate");
        assert_eq!(
            d.to_string(),
            "m.toml:12:9: error[H0006]: node `lidar`: `rate_hz` must be > 0 (got 0)\n  \
             hint: remove it to tick at the scheduler rate\n  see: docs/errors/H0006.md"
        );
    }
}
