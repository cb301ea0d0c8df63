//! Checking a Python node before it runs (issue 15, item 6): its file is imported by the node's
//! own interpreter in a **child process** (a file that crashes, hangs or calls `sys.exit` cannot
//! take `horus check` with it), which answers whether the file imports, whether `class` is a
//! `horus.Node` subclass, and the class's config schema (`CONFIG`); the node's `config` is then
//! checked against that schema by the same pure step as a Rust node's
//! ([`crate::graph::config`]).
//!
//! Owns the child's script and reading its answer. It does not own finding the interpreter
//! ([`crate::python::Loader`]) nor the rules of the config check.

use crate::diag::{suggest, Code, Diagnostic, Diagnostics, Location};
use crate::ffi::{ConfigKeyInfo, ConfigKind};
use crate::graph::config::{check_node_config, Schema};
use crate::manifest::{NodeSpec, PythonSpec};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the child prints last, after this marker (anything the node file prints at import goes
/// to stderr).
const MARK: &str = "HORUS-CHECK ";

/// Imports `sys.argv[1]`, looks up class `sys.argv[2]`, and prints one JSON answer after
/// [`MARK`].
const SCRIPT: &str = r#"
import importlib.util, json, os, sys, traceback
path, name = sys.argv[1], sys.argv[2]
real_stdout = sys.stdout
def answer(**kw):
    real_stdout.write("HORUS-CHECK " + json.dumps(kw) + "\n")
    real_stdout.flush()
    os._exit(0)
sys.stdout = sys.stderr
try:
    import horus
    from horus import _config
except BaseException as e:
    answer(error="horus", message="cannot import the horus package: %s: %s" % (type(e).__name__, e))
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
spec = importlib.util.spec_from_file_location("horus_checked_node", path)
if spec is None or spec.loader is None:
    answer(error="import", message="%s is not a Python source file" % path, file=path, line=0, col=0)
module = importlib.util.module_from_spec(spec)
sys.modules["horus_checked_node"] = module
try:
    spec.loader.exec_module(module)
except SyntaxError as e:
    answer(error="import", message="SyntaxError: %s" % e.msg, file=e.filename or path,
           line=e.lineno or 0, col=e.offset or 0)
except BaseException as e:
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
    f = (mine or frames or [None])[-1]
    col = (getattr(f, "colno", None) or 0) + 1 if f is not None else 0
    answer(error="import", message="%s: %s" % (type(e).__name__, e),
           file=f.filename if f is not None else path, line=f.lineno if f is not None else 0, col=col)
classes = sorted(n for n, v in vars(module).items()
                 if isinstance(v, type) and issubclass(v, horus.Node) and v is not horus.Node)
cls = getattr(module, name, None)
if cls is None:
    answer(error="class", message="%s defines no class `%s`" % (path, name), classes=classes)
if not (isinstance(cls, type) and issubclass(cls, horus.Node)):
    answer(error="class", classes=classes,
           message="`%s` in %s is not a horus.Node subclass (write `class %s(horus.Node)`)" % (name, path, name))
try:
    schema = _config.describe(cls)
except BaseException as e:
    answer(error="config", message="`%s.CONFIG`: %s" % (name, e))
answer(ok=True, config=schema)
"#;

/// The child's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The class is a `horus.Node`; its schema (`None`: it declares none).
    Ok(Option<Vec<ConfigKeyInfo>>),
    /// The file raised on import (a syntax error, a failing import), at `file:line:col`.
    Import {
        /// `SyntaxError: ...`, `ModuleNotFoundError: ...`.
        message: String,
        /// The file Python names (the node's file, or a module it imports).
        file: PathBuf,
        /// 1-based, 0 when unknown.
        line: usize,
        /// 1-based, 0 when unknown.
        col: usize,
    },
    /// No such class, or not a `horus.Node` subclass; the subclasses the file defines.
    Class {
        /// What is wrong.
        message: String,
        /// The `horus.Node` subclasses of the file.
        classes: Vec<String>,
    },
    /// The class's `CONFIG` is malformed.
    Config(String),
    /// The check itself could not be done (no `horus` in the environment, a crash, a hang).
    Failed(String),
}

/// Imports `py.file` with `program` (the node's interpreter) in a child and returns its answer,
/// waiting at most `timeout`.
pub fn inspect(program: &Path, py: &PythonSpec, timeout: Duration) -> Answer {
    let child = Command::new(program)
        .arg("-I")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&py.file.value)
        .arg(&py.class)
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return Answer::Failed(format!("cannot run `{}`: {e}", program.display())),
    };
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if status.is_none() {
        return Answer::Failed(format!(
            "importing it did not finish within {:.1} s (does the file run a loop at import?)",
            timeout.as_secs_f64()
        ));
    }
    parse(&stdout).unwrap_or_else(|| {
        let tail: Vec<&str> = stderr.trim().lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Answer::Failed(format!(
            "the interpreter ended without an answer ({}){}",
            status.map_or_else(String::new, |s| s.to_string()),
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.join(" | "))
            }
        ))
    })
}

/// Reads the child's answer from its stdout.
pub fn parse(stdout: &str) -> Option<Answer> {
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix(MARK))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = |k: &str| v.get(k).and_then(|s| s.as_str()).unwrap_or_default().to_owned();
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0) as usize;
    if v.get("ok").and_then(serde_json::Value::as_bool) == Some(true) {
        let config = match v.get("config") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Array(keys)) => Some(keys.iter().map(key).collect::<Option<Vec<_>>>()?),
            Some(_) => return None,
        };
        return Some(Answer::Ok(config));
    }
    Some(match v.get("error")?.as_str()? {
        "import" => Answer::Import {
            message: text("message"),
            file: PathBuf::from(text("file")),
            line: num("line"),
            col: num("col"),
        },
        "class" => Answer::Class {
            message: text("message"),
            classes: v
                .get("classes")
                .and_then(|c| c.as_array())
                .map(|c| c.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        },
        "config" => Answer::Config(text("message")),
        _ => Answer::Failed(text("message")),
    })
}

fn key(v: &serde_json::Value) -> Option<ConfigKeyInfo> {
    let default = match v.get("default") {
        None | Some(serde_json::Value::Null) => None,
        Some(d) => Some(toml::Value::try_from(d).ok()?),
    };
    Some(ConfigKeyInfo {
        name: v.get("name")?.as_str()?.to_owned(),
        kind: ConfigKind::from_name(v.get("kind")?.as_str()?)?,
        required: v.get("required")?.as_bool()?,
        default,
        doc: v.get("doc")?.as_str()?.to_owned(),
    })
}

/// The diagnostics of Python node `spec` (of `py`) from the child's `answer`, in the manifest
/// at `path`.
pub fn diagnostics(path: &Path, spec: &NodeSpec, py: &PythonSpec, answer: Answer) -> Diagnostics {
    let class_diag = |code: Code, message: String| {
        Diagnostic::new(code, path, message)
            .at(py.class_at)
            .node(spec.name.clone())
            .key("class")
    };
    match answer {
        Answer::Ok(None) => Diagnostics::default(),
        Answer::Ok(Some(keys)) => check_node_config(
            path,
            spec,
            Schema {
                type_name: &py.class,
                keys: &keys,
            },
        ),
        Answer::Import {
            message,
            file,
            line,
            col,
        } => Diagnostic::new(
            Code::H0043,
            &file,
            format!("cannot import {}: {message}", py.file.value.display()),
        )
        .at(Location { line, col })
        .node(spec.name.clone())
        .hint(format!(
            "fix the file so that `python {}` runs in the node's environment (the manifest names it at {}:{}:{})",
            py.file.value.display(),
            path.display(),
            py.file.at.line,
            py.file.at.col
        ))
        .into(),
        Answer::Class { message, classes } => {
            let hint = match (suggest(&py.class, classes.iter().map(String::as_str)), classes.is_empty()) {
                (_, true) => "the file defines no horus.Node subclass: write `class <Name>(horus.Node)` and name it with `class =`".to_owned(),
                (Some(s), false) => format!("did you mean `{s}`? the file defines: {}", classes.join(", ")),
                (None, false) => format!("the file defines: {}", classes.join(", ")),
            };
            class_diag(Code::H0044, message).hint(hint).into()
        }
        Answer::Config(message) => class_diag(Code::H0044, message)
            .hint("`CONFIG` is a dict of key name to `horus.ConfigKey(type, default=..., required=..., doc=...)` (see docs/python.md)")
            .into(),
        Answer::Failed(why) => Diagnostic::new(
            Code::H0025,
            path,
            format!("cannot check {}: {why}", py.file.value.display()),
        )
        .at(py.file.at)
        .node(spec.name.clone())
        .key("python")
        .hint(crate::python::HINT)
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::NodeCode;

    fn python_node(manifest: &str) -> (NodeSpec, PythonSpec) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("smoother.py"), "").unwrap();
        let m = crate::manifest::parse(manifest, Path::new("robot.toml"), dir.path()).unwrap();
        let spec = m.nodes.into_iter().next().unwrap();
        let NodeCode::Python(py) = spec.code.clone() else {
            panic!("a Python node");
        };
        (spec, py)
    }

    const NODE: &str = "[[node]]\nname = \"s\"\npython = \"smoother.py\"\nclass = \"Smother\"\n";

    #[test]
    fn answers_parse_after_the_marker_only() {
        assert_eq!(
            parse("noise\nHORUS-CHECK {\"ok\": true, \"config\": null}\n"),
            Some(Answer::Ok(None))
        );
        assert_eq!(parse("HORUS-CHECK {\"ok\": tru"), None);
        assert_eq!(parse("{\"ok\": true}"), None);
        let a = parse(
            "HORUS-CHECK {\"ok\": true, \"config\": [{\"name\": \"gain\", \"kind\": \"float\", \"required\": false, \
             \"default\": 1.0, \"doc\": \"g\"}, {\"name\": \"frame\", \"kind\": \"str\", \"required\": true, \
             \"default\": null, \"doc\": \"\"}]}",
        )
        .unwrap();
        let Answer::Ok(Some(keys)) = a else {
            panic!("{a:?}")
        };
        assert_eq!(keys[0].kind, ConfigKind::Float);
        assert_eq!(keys[0].default, Some(toml::Value::Float(1.0)));
        assert!(keys[1].required && keys[1].default.is_none());
    }

    #[test]
    fn a_wrong_class_is_at_the_class_key_with_did_you_mean() {
        let (spec, py) = python_node(NODE);
        let d = diagnostics(
            Path::new("robot.toml"),
            &spec,
            &py,
            Answer::Class {
                message: "smoother.py defines no class `Smother`".into(),
                classes: vec!["Smoother".into()],
            },
        );
        assert_eq!(d.codes(), [Code::H0044]);
        assert_eq!(d.0[0].location, Location { line: 4, col: 9 });
        assert_eq!(
            d.0[0].hint.as_deref(),
            Some("did you mean `Smoother`? the file defines: Smoother")
        );
    }

    #[test]
    fn an_import_error_is_at_the_python_file_and_line() {
        let (spec, py) = python_node(NODE);
        let d = diagnostics(
            Path::new("robot.toml"),
            &spec,
            &py,
            Answer::Import {
                message: "SyntaxError: expected ':'".into(),
                file: "/robot/smoother.py".into(),
                line: 3,
                col: 27,
            },
        );
        assert_eq!(d.codes(), [Code::H0043]);
        assert_eq!(d.0[0].file, Path::new("/robot/smoother.py"));
        assert_eq!(d.0[0].location, Location { line: 3, col: 27 });
    }

    #[test]
    fn a_schema_checks_the_config_like_a_rust_node() {
        let (spec, py) = python_node(&format!("{NODE}config = {{ gian = 2 }}\n"));
        let keys = vec![ConfigKeyInfo {
            name: "gain".into(),
            kind: ConfigKind::Float,
            required: false,
            default: None,
            doc: String::new(),
        }];
        let d = diagnostics(Path::new("robot.toml"), &spec, &py, Answer::Ok(Some(keys)));
        assert_eq!(d.codes(), [Code::H0040]);
        assert!(d.0[0].message.contains("for node type `Smother`"));
        assert_eq!(d.0[0].location, Location { line: 5, col: 12 });
    }
}
