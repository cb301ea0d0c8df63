//! The part of a Python node's hot reload that runs off the scheduler thread: checking that the
//! changed `.py` file compiles, with the node's own interpreter in a child process (a syntax
//! error is refused here, naming `file:line`, and never reaches the scheduler).
//!
//! It does not import the file: that runs the module's top-level code, which must happen in the
//! interpreter that runs the node, on the thread that runs it. The swap does it on the scheduler
//! thread ([`crate::ffi::NodeInstance::reload`] with the source marked `fresh`: the loader
//! imports the file in a fresh module object, builds the class, and hands the state over). The
//! loader itself is never reloaded: the new code is the same library and node type with a new
//! create argument.

use super::prepare::{new_code, NewCode, Prepared, Watched};
use crate::ffi::PluginLibrary;
use crate::python::PythonSource;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// What hot reload needs to know of a watched Python node.
#[derive(Debug, Clone)]
pub struct PythonWatch {
    /// The Python loader that runs the node (resident: the same library before and after).
    pub loader: Arc<PluginLibrary>,
    /// The node's source as the run started with it (not marked `fresh`).
    pub source: PythonSource,
    /// The interpreter that checks the new file compiles (the environment's `python`).
    pub program: PathBuf,
}

/// Checks the new version of `file` and prepares the swap for its `users`.
pub fn prepare(file: &Path, users: &[&Watched]) -> Prepared {
    let program = users
        .iter()
        .find_map(|w| w.python.as_ref().map(|p| p.program.clone()));
    let checked = match program {
        Some(program) => compiles(&program, file),
        None => Err("not a Python node".to_owned()),
    };
    let nodes = users
        .iter()
        .map(|w| {
            let outcome = match (&checked, &w.python) {
                (Err(e), _) => Err(e.clone()),
                (Ok(()), None) => Err(format!(
                    "{} is a Python file, and this node does not run Python",
                    file.display()
                )),
                (Ok(()), Some(py)) => new_code(&py.loader, w).map(|code| NewCode {
                    python: Some(py.source.clone()),
                    ..code
                }),
            };
            (w.node.clone(), outcome)
        })
        .collect();
    Prepared {
        file: file.to_path_buf(),
        nodes,
    }
}

/// Compiles the file (never writing bytecode) and prints `file:line: Error: message` for a
/// syntax error.
const COMPILE: &str = r#"
import sys
path = sys.argv[1]
try:
    with open(path, "rb") as f:
        compile(f.read(), path, "exec", dont_inherit=True)
except SyntaxError as e:
    print(f"{e.filename or path}:{e.lineno}: {type(e).__name__}: {e.msg}")
    sys.exit(3)
except (OSError, ValueError) as e:
    print(f"{path}: {type(e).__name__}: {e}")
    sys.exit(3)
"#;

/// Whether `file` compiles, asked of `program`; the error is one line naming `file:line`.
pub fn compiles(program: &Path, file: &Path) -> Result<(), String> {
    let out = Command::new(program)
        .args(["-I", "-S", "-c", COMPILE])
        .arg(file)
        .env_remove("PYTHONPATH")
        .output()
        .map_err(|e| {
            format!(
                "cannot run `{}` to check that {} compiles: {e}",
                program.display(),
                file.display()
            )
        })?;
    match out.status.code() {
        Some(0) => Ok(()),
        Some(3) => Err(format!(
            "the new code does not compile: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        )),
        _ => Err(format!(
            "`{}` could not check that {} compiles: {}",
            program.display(),
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> Option<PathBuf> {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        if venv.exists() {
            return Some(venv);
        }
        Command::new("python3")
            .arg("-V")
            .output()
            .ok()
            .map(|_| PathBuf::from("python3"))
    }

    #[test]
    fn a_syntax_error_is_refused_with_file_and_line() {
        let Some(py) = python() else {
            eprintln!("no Python interpreter: skipped");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.py");
        std::fs::write(&file, "x = 1\ny = (\n").unwrap();
        let e = compiles(&py, &file).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "the new code does not compile: {}:2: SyntaxError: ",
                file.display()
            )),
            "{e}"
        );
        std::fs::write(&file, "x = 1\n").unwrap();
        compiles(&py, &file).unwrap();
        assert!(!dir.path().join("__pycache__").exists(), "no bytecode written");
    }
}
