//! `horus new node`: writes a new node project that builds, tests and runs as written.
//!
//! Owns the name rules, where the SDK (`plugin-api`) is found, and the templates (the files under
//! `scaffold/templates/`, filled by plain `{{key}}` substitution). It does not run cargo or the
//! project: the e2e test `tests/e2e/scaffold.rs` does, so a template that stops building fails CI.

use std::fmt;
use std::path::{Path, PathBuf};

/// What `horus new node` was asked for.
#[derive(Debug, Clone)]
pub struct NewNode {
    /// The crate (and node instance) name: `my-filter`.
    pub name: String,
    /// A Python node file instead of a Rust plugin crate.
    pub python: bool,
    /// The folder to write into; `./<name>` when `None`.
    pub path: Option<PathBuf>,
    /// The `plugin-api` folder to depend on; found from this checkout when `None`.
    pub sdk: Option<PathBuf>,
}

/// Why `horus new node` wrote nothing. Every variant is bad input (exit 2) except `Io`.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a crate name.
    #[error("`{name}` is not a valid node name: {why}{}", suggestion.as_ref().map(|s| format!("; try `{s}`")).unwrap_or_default())]
    BadName {
        /// As given.
        name: String,
        /// The rule it breaks.
        why: &'static str,
        /// A valid name close to it, if there is one.
        suggestion: Option<String>,
    },
    /// The target folder exists and has files in it.
    #[error("{} already exists and is not empty; choose another folder with --path, or remove it", path.display())]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// The target exists and is a file.
    #[error("{} exists and is not a folder; choose another with --path", path.display())]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// `--sdk` does not name a `horus-plugin-api` crate folder.
    #[error("--sdk {}: {why} (give the `plugin-api` folder of a HORUS checkout)", path.display())]
    BadSdk {
        /// As given.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// No `--sdk` and this binary's checkout was not found.
    #[error(
        "cannot find the HORUS SDK (`plugin-api`) of this `horus`: it is not at {} nor in a folder above {}; \
         pass `--sdk <path to a HORUS checkout>/plugin-api`",
        built.display(),
        exe.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_else(|| "the executable".into())
    )]
    SdkNotFound {
        /// Where the SDK was when this binary was built.
        built: PathBuf,
        /// This executable.
        exe: Option<PathBuf>,
    },
    /// Writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl ScaffoldError {
    /// 2 for bad input, 1 for a failed write.
    pub fn exit_code(&self) -> u8 {
        match self {
            ScaffoldError::Io { .. } => 1,
            _ => 2,
        }
    }
}

/// What was written, for the command's output.
#[derive(Debug)]
pub struct Created {
    /// The project folder.
    pub dir: PathBuf,
    /// The files, relative to `dir`, in the order written.
    pub files: Vec<String>,
    /// The node type (`MyFilter`).
    pub node_type: String,
    /// The SDK the crate depends on (Rust only).
    pub sdk: Option<PathBuf>,
    /// A Python project.
    pub python: bool,
    /// How to call this `horus` in the next steps: its full path (a new user runs it from a
    /// checkout's `target/debug`, not from the `PATH`), else `horus`.
    pub horus: String,
}

impl fmt::Display for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.python { "Python node" } else { "node plugin" };
        writeln!(f, "created {kind} `{}` in {}", self.node_type, self.dir.display())?;
        for file in &self.files {
            writeln!(f, "  {file}")?;
        }
        if let Some(sdk) = &self.sdk {
            writeln!(f, "SDK: {}", sdk.display())?;
        }
        writeln!(f, "next:")?;
        writeln!(f, "  cd {}", self.dir.display())?;
        if !self.python {
            writeln!(f, "  cargo build && cargo test")?;
        }
        writeln!(f, "  {} run manifest.toml --duration 2s", self.horus)
    }
}

/// Checks that `name` is a crate name: lowercase ASCII letters, digits, `-` and `_`, starting
/// with a letter. The error suggests a valid spelling when one is obvious.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let why = if name.is_empty() {
        "it is empty"
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        "it must start with a letter"
    } else if name.chars().any(|c| c.is_ascii_uppercase()) {
        "use lowercase letters"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        "use only lowercase letters, digits, `-` and `_`"
    } else {
        return Ok(());
    };
    Err(ScaffoldError::BadName {
        name: name.to_owned(),
        why,
        suggestion: suggest_name(name),
    })
}

/// A valid crate name made from `name`: lowercase, other characters as `-`, a letter first.
fn suggest_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() && !out.ends_with('-') {
            // `MyFilter` → `my-filter`.
            out.push('-');
        }
        match c {
            'a'..='z' | '0'..='9' | '_' => out.push(c),
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            _ if !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let out = out
        .trim_start_matches(|c: char| !c.is_ascii_lowercase())
        .trim_end_matches('-');
    (!out.is_empty() && out != name && check_name(out).is_ok()).then(|| out.to_owned())
}

/// `my-filter` / `my_filter` → `MyFilter`.
pub fn pascal_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Where this binary's SDK was when it was built: `<checkout>/plugin-api`.
fn built_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api")
}

/// Whether `dir` holds the `horus-plugin-api` crate; why not otherwise.
fn sdk_problem(dir: &Path) -> Option<String> {
    let manifest = dir.join("Cargo.toml");
    match std::fs::read_to_string(&manifest) {
        Err(e) => Some(format!("cannot read {}: {e}", manifest.display())),
        Ok(text) if text.lines().any(|l| l.trim() == r#"name = "horus-plugin-api""#) => None,
        Ok(_) => Some(format!(
            "{} is not the `horus-plugin-api` crate",
            manifest.display()
        )),
    }
}

/// The SDK folder to depend on, absolute: `--sdk` if given (checked), else the folder this
/// binary was built from (the exact ABI it speaks), else a `plugin-api` in a folder above the
/// executable (a checkout that moved after the build).
pub fn find_sdk(given: Option<&Path>, exe: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    find_sdk_from(given, built_sdk(), exe)
}

/// [`find_sdk`] with the build-time SDK folder given.
fn find_sdk_from(given: Option<&Path>, built: PathBuf, exe: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    if let Some(path) = given {
        if let Some(why) = sdk_problem(path) {
            return Err(ScaffoldError::BadSdk {
                path: path.to_owned(),
                why,
            });
        }
        return std::path::absolute(path)
            .and_then(|p| p.canonicalize().or(Ok(p)))
            .map_err(|source| ScaffoldError::Io {
                path: path.to_owned(),
                source,
            });
    }
    let from_exe = exe.and_then(|e| e.canonicalize().ok()).into_iter().flat_map(|e| {
        e.ancestors()
            .skip(1)
            .map(|d| d.join("plugin-api"))
            .collect::<Vec<_>>()
    });
    std::iter::once(built.clone())
        .chain(from_exe)
        .find(|d| sdk_problem(d).is_none())
        .and_then(|d| d.canonicalize().ok())
        .ok_or_else(|| ScaffoldError::SdkNotFound {
            built,
            exe: exe.map(Path::to_owned),
        })
}

/// The Python environment of the checkout an SDK folder is in (`<checkout>/.venv`), if it has
/// one: the Python manifest then names it, so it runs as written.
fn checkout_venv(sdk: &Path) -> Option<PathBuf> {
    let venv = sdk.parent()?.join(".venv");
    venv.join("bin/python").exists().then_some(venv)
}

/// Fills `{{key}}` in `template`.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    debug_assert!(!out.contains("{{"), "unfilled placeholder in a template:\n{out}");
    out
}

/// `export_plugin!(T, TSource);` as rustfmt writes it (one line while the arguments fit its
/// default `fn_call_width` of 60), so the new crate passes `cargo fmt --check` whatever the
/// name's length.
fn export_line(node_type: &str) -> String {
    let args = format!("{node_type}, {node_type}Source");
    if args.len() <= 60 {
        format!("export_plugin!({args});")
    } else {
        format!("export_plugin!(\n    {node_type},\n    {node_type}Source\n);")
    }
}

/// A path as a TOML basic string's content.
fn toml_str(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Writes the project `req` asks for. `exe` is this executable (to find the SDK from).
pub fn new_node(req: &NewNode, exe: Option<&Path>) -> Result<Created, ScaffoldError> {
    check_name(&req.name)?;
    let dir = req.path.clone().unwrap_or_else(|| PathBuf::from(&req.name));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Io { path, source }
    };
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty { path: dir });
            }
        }
        Err(_) if dir.exists() => return Err(ScaffoldError::NotAFolder { path: dir }),
        Err(_) => {}
    }
    let node_type = pascal_case(&req.name);
    let module = req.name.replace('-', "_");
    // Found before anything is written, so a missing SDK leaves no half-made folder.
    let sdk = if req.python {
        req.sdk
            .as_deref()
            .map(|s| find_sdk(Some(s), exe))
            .transpose()?
            .or_else(|| find_sdk(None, exe).ok())
    } else {
        Some(find_sdk(req.sdk.as_deref(), exe)?)
    };
    let sdk_text = sdk.as_deref().map(toml_str).unwrap_or_default();
    let venv = sdk
        .as_deref()
        .and_then(checkout_venv)
        .map(|v| {
            format!(
                "venv = \"{}\"  # the Python environment with `horus`\n",
                toml_str(&v)
            )
        })
        .unwrap_or_else(|| "# venv = \"/path/to/venv\"  # a Python environment with `horus`\n".to_owned());
    let node_file = format!("{module}.py");
    let export = export_line(&node_type);
    let vars = [
        ("name", req.name.as_str()),
        ("lib", module.as_str()),
        ("module", module.as_str()),
        ("type", node_type.as_str()),
        ("sdk", sdk_text.as_str()),
        ("venv", venv.as_str()),
        ("export", export.as_str()),
    ];
    let files: Vec<(String, &str)> = if req.python {
        vec![
            (node_file.clone(), include_str!("templates/python_node.py")),
            (
                "manifest.toml".into(),
                include_str!("templates/python_manifest.toml"),
            ),
            ("README.md".into(), include_str!("templates/python_README.md")),
        ]
    } else {
        vec![
            ("Cargo.toml".into(), include_str!("templates/rust_Cargo.toml")),
            ("src/lib.rs".into(), include_str!("templates/rust_lib.rs")),
            (
                "manifest.toml".into(),
                include_str!("templates/rust_manifest.toml"),
            ),
            ("README.md".into(), include_str!("templates/rust_README.md")),
            (".gitignore".into(), "/target/\nCargo.lock\n"),
        ]
    };
    let mut written = Vec::new();
    for (rel, template) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, fill(template, &vars)).map_err(io(&path))?;
        written.push(rel.clone());
    }
    Ok(Created {
        dir,
        files: written,
        node_type,
        sdk: if req.python { None } else { sdk },
        python: req.python,
        horus: exe
            .map(|e| e.display().to_string())
            .unwrap_or_else(|| "horus".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names() {
        for ok in ["my-filter", "pid", "imu_sim2", "a"] {
            check_name(ok).unwrap();
        }
        for (bad, suggestion) in [
            ("MyFilter", Some("my-filter")),
            ("my filter", Some("my-filter")),
            ("2fast", Some("fast")),
            ("my.node", Some("my-node")),
            ("", None),
            ("-", None),
        ] {
            match check_name(bad) {
                Err(ScaffoldError::BadName { suggestion: s, .. }) => {
                    assert_eq!(s.as_deref(), suggestion, "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_error_shows_the_suggestion() {
        let e = check_name("MyFilter").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`MyFilter` is not a valid node name: use lowercase letters; try `my-filter`"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn types_are_pascal_case() {
        assert_eq!(pascal_case("my-filter"), "MyFilter");
        assert_eq!(pascal_case("imu_sim2"), "ImuSim2");
        assert_eq!(pascal_case("pid"), "Pid");
    }

    #[test]
    fn this_checkouts_sdk_is_found() {
        let sdk = find_sdk(None, None).unwrap();
        assert!(
            sdk.is_absolute() && sdk.ends_with("plugin-api"),
            "{}",
            sdk.display()
        );
    }

    #[test]
    fn a_moved_checkout_is_found_from_the_executable_else_sdk_is_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("horus/target/release/horus");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::write(&exe, "").unwrap();
        let gone = tmp.path().join("old/plugin-api");
        let e = find_sdk_from(None, gone.clone(), Some(&exe)).unwrap_err();
        assert!(matches!(e, ScaffoldError::SdkNotFound { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("pass `--sdk <path to a HORUS checkout>/plugin-api`"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);

        let sdk = tmp.path().join("horus/plugin-api");
        std::fs::create_dir_all(&sdk).unwrap();
        std::fs::write(sdk.join("Cargo.toml"), "[package]\nname = \"horus-plugin-api\"\n").unwrap();
        let found = find_sdk_from(None, gone, Some(&exe)).unwrap();
        assert_eq!(found, sdk.canonicalize().unwrap());
    }

    #[test]
    fn a_wrong_sdk_is_refused() {
        let e = find_sdk(Some(Path::new(env!("CARGO_MANIFEST_DIR"))), None).unwrap_err();
        assert!(matches!(e, ScaffoldError::BadSdk { .. }), "{e}");
        assert!(e.to_string().contains("not the `horus-plugin-api` crate"), "{e}");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let vars = [
            ("name", "x"),
            ("lib", "x"),
            ("module", "x"),
            ("type", "X"),
            ("sdk", "/s"),
            ("venv", ""),
            ("export", ""),
        ];
        for t in [
            include_str!("templates/rust_Cargo.toml"),
            include_str!("templates/rust_lib.rs"),
            include_str!("templates/rust_manifest.toml"),
            include_str!("templates/rust_README.md"),
            include_str!("templates/python_node.py"),
            include_str!("templates/python_manifest.toml"),
            include_str!("templates/python_README.md"),
        ] {
            assert!(!fill(t, &vars).contains("{{"), "{t}");
        }
    }
}
