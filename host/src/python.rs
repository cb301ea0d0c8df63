//! Finding the Python loader for a manifest's Python nodes (`python = "nodes/x.py"`).
//!
//! The loader is the `horus` Python package's own extension module (`horus/_horus*.so`): one
//! library is both the package and a node plugin (see python-loader/). The host asks the
//! environment's interpreter where that file and its libpython are — the virtual environment
//! named by `venv =`, else `$HORUS_PYTHON`, else `$VIRTUAL_ENV`, else `python3` on the PATH — and
//! opens libpython with `RTLD_GLOBAL` before the extension (`PluginLibrary::open_resident`), so
//! C extension modules such as numpy resolve the interpreter's symbols inside the host.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The loader's node type.
pub const NODE_TYPE: &str = "PythonNode";

/// What to do when the environment is not usable.
pub const HINT: &str =
    "install the horus package into the environment (./scripts/python-env.sh makes .venv/ \
     at the repository root), and name it with `venv = \"<dir>\"` or $HORUS_PYTHON";

/// The Python loader of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    /// The environment's interpreter (`sys.executable`): the program the embedded interpreter
    /// starts as, so its `pyvenv.cfg` and site-packages apply.
    pub executable: PathBuf,
    /// `horus/_horus*.so`.
    pub extension: PathBuf,
    /// The shared libpython the extension needs.
    pub libpython: PathBuf,
}

/// Why [`Loader::find`] found no usable loader (error H0025 at the node's `python` key).
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The interpreter could not be started.
    #[error("cannot run the Python interpreter `{}`: {source}", program.display())]
    Spawn {
        /// The interpreter.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The interpreter ran and said what is missing (no horus package, no shared libpython).
    #[error("`{}`: {reason}", program.display())]
    Unusable {
        /// The interpreter.
        program: PathBuf,
        /// Its answer.
        reason: String,
    },
    /// The interpreter failed or answered something else.
    #[error("`{}` could not tell where the horus package is: {stderr}", program.display())]
    NoAnswer {
        /// The interpreter.
        program: PathBuf,
        /// What it wrote to stderr (trimmed).
        stderr: String,
    },
}

const PROBE: &str = r#"
import os, sys, sysconfig
try:
    import horus._horus as h
except ImportError as e:
    print("error: the environment has no horus package (" + str(e) + ")")
    sys.exit(0)
if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
    print("error: this Python has no shared libpython (built without --enable-shared); the host cannot embed it")
    sys.exit(0)
print(sys.executable)
print(h.__file__)
print(os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")))
"#;

impl Loader {
    /// Asks the environment's interpreter (see the module doc) where the loader is.
    pub fn find(venv: Option<&Path>) -> Result<Loader, LoaderError> {
        let program = match venv {
            Some(v) => v.join("bin/python"),
            None => match (std::env::var_os("HORUS_PYTHON"), std::env::var_os("VIRTUAL_ENV")) {
                (Some(p), _) if !p.is_empty() => PathBuf::from(p),
                (_, Some(v)) if !v.is_empty() => PathBuf::from(v).join("bin/python"),
                _ => PathBuf::from("python3"),
            },
        };
        let out = Command::new(&program)
            .args(["-I", "-c", PROBE])
            .env_remove("PYTHONPATH")
            .output()
            .map_err(|source| LoaderError::Spawn {
                program: program.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        if let Some(err) = lines.first().and_then(|l| l.strip_prefix("error: ")) {
            return Err(LoaderError::Unusable {
                program,
                reason: err.to_owned(),
            });
        }
        match (out.status.success(), lines.as_slice()) {
            (true, [exe, ext, lib]) => Ok(Loader {
                executable: PathBuf::from(exe),
                extension: PathBuf::from(ext),
                libpython: PathBuf::from(lib),
            }),
            _ => Err(LoaderError::NoAnswer {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                program,
            }),
        }
    }
}

/// Which Python object a `PythonNode` runs: what the host hands the loader through its create
/// entry with an argument (`horus_loader_create_v1`), never through the node's `config`, which
/// stays the user's table as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PythonSource {
    /// An object the `horus` package registered in this process (`Scheduler.add`).
    Object(u64),
    /// An instance of `class` from `file` (a manifest's `python =` and `class =`), in an
    /// interpreter started as `program` (the environment's `python`) if the process has none.
    File {
        /// The node's file.
        file: PathBuf,
        /// The `horus.Node` subclass.
        class: String,
        /// The environment's interpreter.
        program: PathBuf,
        /// Import the file again, in a fresh module object that replaces the loader's cached
        /// one (a hot reload); without it the loader uses the module it imported before.
        /// Absent from the encoding when false, so sources written before it read the same.
        #[serde(default, skip_serializing_if = "is_false")]
        fresh: bool,
    },
    /// A new instance of the class of a registered object, imported from its module's file (a
    /// `horus.Scheduler` node after a hot reload): the node's name, `config` and topic handles
    /// stay those of `object`.
    Class {
        /// The object the node was added as (`Scheduler.add`).
        object: u64,
        /// Its class's module (`__module__`).
        module: String,
        /// That module's file.
        file: PathBuf,
        /// Its class (`__qualname__`).
        class: String,
        /// As for [`PythonSource::File`].
        #[serde(default, skip_serializing_if = "is_false")]
        fresh: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PythonSource {
    /// The bytes the loader's create entry takes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads what [`PythonSource::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<PythonSource, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The `.py` file the node's class comes from, when known.
    pub fn file(&self) -> Option<&Path> {
        match self {
            PythonSource::Object(_) => None,
            PythonSource::File { file, .. } | PythonSource::Class { file, .. } => Some(file),
        }
    }

    /// True when marked to import its file again ([`PythonSource::fresh_import`]).
    pub fn is_fresh(&self) -> bool {
        matches!(
            self,
            PythonSource::File { fresh: true, .. } | PythonSource::Class { fresh: true, .. }
        )
    }

    /// The same source without the mark: what a restart builds from once the fresh import
    /// is the loader's module.
    pub fn settled(&self) -> PythonSource {
        let mut source = self.clone();
        if let PythonSource::File { fresh, .. } | PythonSource::Class { fresh, .. } = &mut source {
            *fresh = false;
        }
        source
    }

    /// The same source, marked to import its file again in a fresh module (hot reload).
    pub fn fresh_import(&self) -> PythonSource {
        let mut source = self.clone();
        if let PythonSource::File { fresh, .. } | PythonSource::Class { fresh, .. } = &mut source {
            *fresh = true;
        }
        source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = Loader::find(Some(dir.path())).unwrap_err();
        assert!(matches!(e, LoaderError::Spawn { .. }), "{e:?}");
        let text = e.to_string();
        let program = dir.path().join("bin/python");
        assert!(
            text.starts_with(&format!(
                "cannot run the Python interpreter `{}`: ",
                program.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn messages_read_as_before() {
        let program = PathBuf::from("/venv/bin/python");
        let e = LoaderError::Unusable {
            program: program.clone(),
            reason: "the environment has no horus package (No module named 'horus')".into(),
        };
        assert_eq!(
            e.to_string(),
            "`/venv/bin/python`: the environment has no horus package (No module named 'horus')"
        );
        let e = LoaderError::NoAnswer {
            program,
            stderr: "Traceback".into(),
        };
        assert_eq!(
            e.to_string(),
            "`/venv/bin/python` could not tell where the horus package is: Traceback"
        );
    }

    #[test]
    fn sources_round_trip_and_garbage_is_an_error() {
        for source in [
            PythonSource::Object(7),
            PythonSource::File {
                file: "/robot/nodes/smoother.py".into(),
                class: "Smoother".into(),
                program: "/robot/.venv/bin/python".into(),
                fresh: false,
            },
            PythonSource::Class {
                object: 3,
                module: "nodes".into(),
                file: "/robot/nodes.py".into(),
                class: "Sensor".into(),
                fresh: false,
            },
        ] {
            assert_eq!(PythonSource::decode(&source.encode()).unwrap(), source);
            let fresh = source.fresh_import();
            assert_eq!(PythonSource::decode(&fresh.encode()).unwrap(), fresh);
        }
        assert!(PythonSource::decode(b"{\"Object\":").is_err());
    }

    #[test]
    fn a_source_without_the_fresh_marker_reads_as_before() {
        let old = br#"{"File":{"file":"/n.py","class":"N","program":"/p"}}"#;
        let source = PythonSource::decode(old).unwrap();
        assert_eq!(
            source,
            PythonSource::File {
                file: "/n.py".into(),
                class: "N".into(),
                program: "/p".into(),
                fresh: false
            }
        );
        assert_eq!(source.encode(), old.to_vec());
        assert!(source.fresh_import().encode().ends_with(br#","fresh":true}}"#));
        assert!(source.fresh_import().is_fresh() && !source.is_fresh());
        assert_eq!(source.fresh_import().settled(), source);
    }
}
