//! The plugin search path and finding a plugin on it by name.
//!
//! The folders, in order: the manifest's `[plugins] path` (relative to the manifest's folder),
//! `HORUS_PLUGIN_PATH` (colon-separated; empty entries ignored; relative entries relative to
//! the current folder), the folder of the running `horus` executable (so `target/debug/horus`
//! finds `target/debug/*.so` and `target/release/horus` the release ones), then
//! `$XDG_DATA_HOME/horus/plugins` (default `~/.local/share/horus/plugins`). Like `PATH`, the
//! first folder with a match wins and a later folder's match is shadowed.
//!
//! Owns the folders and the name → file mapping (`imu-sim` → `libimu_sim.so`); a pure file-name
//! lookup, no library is opened here. Finding a plugin by the node types it offers, which means
//! reading descriptors, is [`super::scan`].

use crate::diag::suggest;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable of the search path.
pub const ENV: &str = "HORUS_PLUGIN_PATH";

/// Where a folder of the search path comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The manifest's `[plugins] path`.
    Manifest,
    /// `HORUS_PLUGIN_PATH`.
    Env,
    /// The folder of the running `horus` executable.
    Executable,
    /// `$XDG_DATA_HOME/horus/plugins` (or `~/.local/share/horus/plugins`).
    DataHome,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Manifest => "[plugins] path",
            Origin::Env => ENV,
            Origin::Executable => "next to the horus executable",
            Origin::DataHome => "user data folder",
        })
    }
}

/// One folder of the search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The folder (absolute when its source was).
    pub dir: PathBuf,
    /// Where it comes from.
    pub origin: Origin,
}

/// What the search path is made of, for [`SearchPath::from_parts`]; [`SearchPath::from_env`]
/// fills it from the process.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    /// The manifest's `[plugins] path`, already resolved against the manifest's folder.
    pub manifest: Vec<PathBuf>,
    /// The value of `HORUS_PLUGIN_PATH`.
    pub env: Option<OsString>,
    /// The current folder (relative `HORUS_PLUGIN_PATH` entries start there).
    pub cwd: PathBuf,
    /// The running executable.
    pub exe: Option<PathBuf>,
    /// `XDG_DATA_HOME`.
    pub xdg_data_home: Option<OsString>,
    /// `HOME`.
    pub home: Option<OsString>,
}

/// The ordered folders where plugins are looked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPath {
    folders: Vec<Folder>,
}

/// A plugin found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The file.
    pub file: PathBuf,
    /// The folders after the one it is in that have a file of the same name (shadowed).
    pub shadowed: Vec<PathBuf>,
}

/// No folder of the search path has the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameNotFound {
    /// The file name looked for (`libimu_sim.so`).
    pub file_name: String,
    /// The closest plugin name on the path, if one is close enough to be a typo.
    pub suggestion: Option<String>,
}

impl SearchPath {
    /// The search path of a manifest whose `[plugins] path` is `manifest_path`, in this process
    /// (its environment, current folder and executable).
    pub fn from_env(manifest_path: &[PathBuf]) -> SearchPath {
        SearchPath::from_parts(Parts {
            manifest: manifest_path.to_vec(),
            env: std::env::var_os(ENV),
            cwd: std::env::current_dir().unwrap_or_default(),
            exe: std::env::current_exe().ok(),
            xdg_data_home: std::env::var_os("XDG_DATA_HOME"),
            home: std::env::var_os("HOME"),
        })
    }

    /// The search path of a manifest, in this process.
    pub fn from_manifest(manifest: &crate::manifest::Manifest) -> SearchPath {
        let dirs: Vec<PathBuf> = manifest.plugin_path.iter().map(|d| d.value.clone()).collect();
        SearchPath::from_env(&dirs)
    }

    /// The search path made of `parts`, in the documented order. A folder named twice is
    /// searched once, at its first place.
    pub fn from_parts(parts: Parts) -> SearchPath {
        let mut folders = Vec::new();
        for dir in parts.manifest {
            folders.push(Folder {
                dir,
                origin: Origin::Manifest,
            });
        }
        if let Some(env) = &parts.env {
            for entry in split_paths(env) {
                folders.push(Folder {
                    dir: parts.cwd.join(entry),
                    origin: Origin::Env,
                });
            }
        }
        if let Some(dir) = parts.exe.as_deref().and_then(Path::parent) {
            folders.push(Folder {
                dir: dir.to_path_buf(),
                origin: Origin::Executable,
            });
        }
        // The XDG base directory spec: a relative XDG_DATA_HOME is invalid and ignored.
        let data_home = parts
            .xdg_data_home
            .filter(|d| Path::new(d).is_absolute())
            .map(PathBuf::from)
            .or_else(|| {
                let home = parts.home.filter(|h| !h.is_empty())?;
                Some(Path::new(&home).join(".local/share"))
            });
        if let Some(data_home) = data_home {
            folders.push(Folder {
                dir: data_home.join("horus/plugins"),
                origin: Origin::DataHome,
            });
        }
        let mut seen: Vec<PathBuf> = Vec::new();
        folders.retain(|f| {
            let key = std::fs::canonicalize(&f.dir).unwrap_or_else(|_| f.dir.clone());
            let new = !seen.contains(&key);
            seen.push(key);
            new
        });
        SearchPath { folders }
    }

    /// The folders, in search order.
    pub fn folders(&self) -> &[Folder] {
        &self.folders
    }

    /// The plugin named `name` (a crate name such as `imu-sim`): `lib<name>.so` with `-` as `_`,
    /// in the first folder that has it.
    pub fn find_by_name(&self, name: &str) -> Result<Found, NameNotFound> {
        let file_name = file_name(name);
        let mut hits = self
            .folders
            .iter()
            .map(|f| f.dir.join(&file_name))
            .filter(|p| p.is_file());
        match hits.next() {
            Some(file) => Ok(Found {
                file,
                shadowed: hits.collect(),
            }),
            None => Err(NameNotFound {
                suggestion: self.suggest_name(name),
                file_name,
            }),
        }
    }

    /// Every plugin name on the path (`lib*.so` files, as crate names), first folder first,
    /// without repeats.
    pub fn plugin_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for folder in &self.folders {
            for file in so_files(&folder.dir) {
                if let Some(name) = file.file_name().and_then(OsStr::to_str).and_then(name_of) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names
    }

    /// The name on the path closest to `name`, if one is close enough to be a typo. `-` and `_`
    /// are the same letter here, as they are in file names.
    pub fn suggest_name(&self, name: &str) -> Option<String> {
        let names = self.plugin_names();
        let normal: Vec<String> = names.iter().map(|n| n.replace('-', "_")).collect();
        let best = suggest(&name.replace('-', "_"), normal.iter().map(String::as_str))?;
        let i = normal.iter().position(|n| n == best)?;
        Some(names[i].clone())
    }

    /// The folders for a message: `dir (origin), …`, a missing folder marked so.
    pub fn describe(&self) -> String {
        if self.folders.is_empty() {
            return "(no folders)".to_owned();
        }
        self.folders
            .iter()
            .map(|f| {
                let missing = if f.dir.is_dir() { "" } else { ", missing" };
                format!("{} ({}{missing})", f.dir.display(), f.origin)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The entries of a colon-separated path list, empty ones left out.
fn split_paths(value: &OsStr) -> impl Iterator<Item = PathBuf> + '_ {
    use std::os::unix::ffi::OsStrExt;
    value
        .as_bytes()
        .split(|b| *b == b':')
        .filter(|e| !e.is_empty())
        .map(|e| PathBuf::from(OsStr::from_bytes(e)))
}

/// The `.so` files of `dir` (regular files, symlinks followed), sorted by name; none when it
/// cannot be read.
pub fn so_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "so") && p.is_file())
        .collect();
    files.sort();
    files
}

/// True when a manifest's `plugin` value is a file path (it contains `/` or ends in `.so`),
/// false when it is a plugin name.
pub fn is_file_path(value: &str) -> bool {
    value.contains('/') || value.ends_with(".so")
}

/// True when `value` can be a plugin name: letters, digits, `-` and `_`.
pub fn is_plugin_name(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The library file of plugin `name`: `imu-sim` → `libimu_sim.so` (cargo's name for a cdylib).
pub fn file_name(name: &str) -> String {
    format!("lib{}.so", name.replace('-', "_"))
}

/// The plugin name of a library file name, with `_` written `-` as crate names usually are:
/// `libimu_sim.so` → `imu-sim`. `None` for names not of the form `lib<name>.so`.
pub fn name_of(file_name: &str) -> Option<String> {
    let stem = file_name.strip_prefix("lib")?.strip_suffix(".so")?;
    is_plugin_name(stem).then(|| stem.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, b"").unwrap();
        path
    }

    fn dirs(path: &SearchPath) -> Vec<(PathBuf, Origin)> {
        path.folders().iter().map(|f| (f.dir.clone(), f.origin)).collect()
    }

    #[test]
    fn the_folders_come_in_the_documented_order() {
        let path = SearchPath::from_parts(Parts {
            manifest: vec!["/m/build".into(), "/m/more".into()],
            env: Some("/env/a:/env/b".into()),
            cwd: "/cwd".into(),
            exe: Some("/opt/horus/bin/horus".into()),
            xdg_data_home: Some("/xdg".into()),
            home: Some("/home/u".into()),
        });
        assert_eq!(
            dirs(&path),
            vec![
                ("/m/build".into(), Origin::Manifest),
                ("/m/more".into(), Origin::Manifest),
                ("/env/a".into(), Origin::Env),
                ("/env/b".into(), Origin::Env),
                ("/opt/horus/bin".into(), Origin::Executable),
                ("/xdg/horus/plugins".into(), Origin::DataHome),
            ]
        );
    }

    #[test]
    fn empty_env_entries_are_ignored_and_relative_ones_start_at_the_current_folder() {
        let path = SearchPath::from_parts(Parts {
            env: Some("::rel/plugins::/abs:".into()),
            cwd: "/work/here".into(),
            ..Parts::default()
        });
        assert_eq!(
            dirs(&path),
            vec![
                ("/work/here/rel/plugins".into(), Origin::Env),
                ("/abs".into(), Origin::Env),
            ]
        );
        let empty = SearchPath::from_parts(Parts {
            env: Some("".into()),
            ..Parts::default()
        });
        assert!(empty.folders().is_empty(), "{empty:?}");
    }

    #[test]
    fn the_data_folder_defaults_to_home_and_ignores_a_relative_xdg_data_home() {
        for xdg in [None, Some(OsString::from("")), Some("relative/data".into())] {
            let path = SearchPath::from_parts(Parts {
                xdg_data_home: xdg.clone(),
                home: Some("/home/u".into()),
                ..Parts::default()
            });
            assert_eq!(
                dirs(&path),
                vec![("/home/u/.local/share/horus/plugins".into(), Origin::DataHome)],
                "XDG_DATA_HOME={xdg:?}"
            );
        }
        assert!(SearchPath::from_parts(Parts::default()).folders().is_empty());
    }

    #[test]
    fn a_folder_named_twice_is_searched_at_its_first_place() {
        let path = SearchPath::from_parts(Parts {
            manifest: vec!["/same".into()],
            env: Some("/same:/other".into()),
            exe: Some("/other/horus".into()),
            ..Parts::default()
        });
        assert_eq!(
            dirs(&path),
            vec![("/same".into(), Origin::Manifest), ("/other".into(), Origin::Env)]
        );
    }

    #[test]
    fn names_map_to_library_files_and_back() {
        assert_eq!(file_name("imu-sim"), "libimu_sim.so");
        assert_eq!(file_name("imu_sim"), "libimu_sim.so");
        assert_eq!(file_name("x"), "libx.so");
        assert_eq!(name_of("libimu_sim.so").as_deref(), Some("imu-sim"));
        assert_eq!(name_of("imu_sim.so"), None);
        assert_eq!(name_of("libimu.so.1"), None);
        assert_eq!(name_of("lib.so"), None);
        for path in ["../target/debug/libimu_sim.so", "libimu_sim.so", "./x", "a/b"] {
            assert!(is_file_path(path), "{path}");
        }
        for name in ["imu-sim", "imu_sim", "ImuSim2"] {
            assert!(!is_file_path(name) && is_plugin_name(name), "{name}");
        }
        for bad in ["", "imu sim", "imu.sim", "é"] {
            assert!(!is_plugin_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_first_folder_with_the_file_wins_and_later_ones_are_shadowed() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
        std::fs::create_dir_all(&a).unwrap();
        let in_b = touch(&b, "libimu_sim.so");
        let in_c = touch(&c, "libimu_sim.so");
        touch(&c, "libonly_c.so");
        let path = SearchPath::from_parts(Parts {
            manifest: vec![a.clone()],
            env: Some(OsString::from(format!("{}:{}", b.display(), c.display()))),
            ..Parts::default()
        });
        let found = path.find_by_name("imu-sim").unwrap();
        assert_eq!(found.file, in_b);
        assert_eq!(found.shadowed, vec![in_c]);
        assert_eq!(path.find_by_name("only-c").unwrap().file, c.join("libonly_c.so"));
        // A folder is not a plugin, and neither is a file of another name.
        std::fs::create_dir_all(a.join("libfolder.so")).unwrap();
        assert!(path.find_by_name("folder").is_err());
    }

    #[test]
    fn a_missing_name_suggests_the_closest_one_on_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path(), "libimu_sim.so");
        touch(tmp.path(), "libattitude_filter.so");
        touch(tmp.path(), "notes.txt");
        let path = SearchPath::from_parts(Parts {
            manifest: vec![tmp.path().to_path_buf(), tmp.path().join("missing")],
            ..Parts::default()
        });
        let err = path.find_by_name("imu-sm").unwrap_err();
        assert_eq!(err.file_name, "libimu_sm.so");
        assert_eq!(err.suggestion.as_deref(), Some("imu-sim"));
        assert_eq!(path.suggest_name("imu_simm").as_deref(), Some("imu-sim"));
        assert_eq!(path.suggest_name("telemetry"), None);
        assert_eq!(path.plugin_names(), vec!["attitude-filter", "imu-sim"]);
        let described = path.describe();
        assert!(
            described.contains("missing ([plugins] path, missing)"),
            "{described}"
        );
    }
}
