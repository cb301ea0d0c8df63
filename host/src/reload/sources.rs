//! Which source files a node's `build =` reads, and noticing their changes.
//!
//! Owns turning `watch = [...]` globs (or a crate's folder) into [`SourceRule`]s, deciding whether
//! a changed path is a source ([`SourceRule::matches`], [`ignored`]), and the folder watches
//! ([`SourceWatcher`]). It does not own debouncing or running the build: [`super::build`] does.
//!
//! Folders are watched one by one, non-recursively, skipping `target/` and hidden folders, and a
//! folder created later under a watched tree is added when it appears: a recursive `notify` watch
//! would also follow `target/`, where every build creates and removes thousands of files.

use notify::{EventKind, RecursiveMode, Watcher as _};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, Receiver};

/// How globs match paths: `*` stays within a name, `**` crosses folders, a leading dot needs
/// no literal dot (hidden files are left out by [`ignored`] instead).
const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// One glob of a node's sources, split at its first wildcard: the folder before it (watched)
/// and the rest (matched against paths under that folder).
#[derive(Debug, Clone)]
pub struct SourceRule {
    /// The folder whose files may match (absolute, `..` resolved).
    pub root: PathBuf,
    /// The rest of the glob, relative to `root`.
    pattern: glob::Pattern,
    /// Whether files below sub-folders of `root` can match (else only `root`'s own entries).
    pub recursive: bool,
}

impl SourceRule {
    /// The rule of glob `pattern` (already checked to parse), relative to `base`.
    pub fn glob(base: &Path, pattern: &str) -> Result<SourceRule, glob::PatternError> {
        let path = Path::new(pattern);
        let components: Vec<Component<'_>> = path.components().collect();
        let literal = components
            .iter()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .count();
        if literal == components.len() {
            // A plain file name: its folder, non-recursively.
            let file = normalize(&base.join(path));
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(SourceRule {
                root: file.parent().map_or_else(|| file.clone(), Path::to_path_buf),
                pattern: glob::Pattern::new(&glob::Pattern::escape(&name))?,
                recursive: false,
            });
        }
        let root: PathBuf = components[..literal].iter().collect();
        let rest: PathBuf = components[literal..].iter().collect();
        let rest = rest.to_string_lossy().into_owned();
        Ok(SourceRule {
            root: normalize(&base.join(root)),
            recursive: rest.contains("**") || components.len() - literal > 1,
            pattern: glob::Pattern::new(&rest)?,
        })
    }

    /// Every file under `folder` (a crate's folder).
    pub fn tree(folder: &Path) -> SourceRule {
        SourceRule {
            root: normalize(folder),
            pattern: glob::Pattern::new("**").expect("`**` is a valid glob"),
            recursive: true,
        }
    }

    /// Whether a change of `path` (absolute) concerns this rule: under its root, matched by its
    /// glob, and not [`ignored`].
    pub fn matches(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        !ignored(rel) && self.pattern.matches_path_with(rel, MATCH)
    }
}

/// Paths that are never sources: anything under `target/` or a hidden folder, and the files
/// editors write beside the one they save (hidden files, `x~`, `#x#`, `.swp`, `.tmp`, vim's
/// `4913`). `rel` is relative to a watched root.
pub fn ignored(rel: &Path) -> bool {
    let mut names = rel.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_string_lossy()),
        _ => None,
    });
    let Some(file) = names.next_back() else {
        return true;
    };
    names.any(|dir| dir == "target" || dir.starts_with('.'))
        || file.starts_with('.')
        || file.starts_with('#')
        || file.ends_with('~')
        || [".swp", ".swx", ".tmp", ".bak"]
            .iter()
            .any(|ext| file.ends_with(ext))
        || file == "4913"
}

/// Resolves `.` and `..` without touching the file system (the folder may not exist yet).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A changed path and whether it is a folder that was just created (to be watched too).
#[derive(Debug)]
pub struct Change {
    /// The path (absolute).
    pub path: PathBuf,
    /// A folder appeared here.
    pub new_folder: bool,
}

/// Watches the folders of a set of [`SourceRule`]s; see the module docs.
pub struct SourceWatcher {
    watcher: notify::RecommendedWatcher,
    rules: Vec<SourceRule>,
}

impl std::fmt::Debug for SourceWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceWatcher")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl SourceWatcher {
    /// Watches the roots of `rules` (and, for recursive rules, their folders below, but
    /// `target/` and hidden ones). A root that does not exist is skipped with a warning.
    pub fn start(rules: Vec<SourceRule>) -> Result<(SourceWatcher, Receiver<Change>), notify::Error> {
        let (tx, rx) = mpsc::channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                let created = matches!(event.kind, EventKind::Create(_));
                let renamed = matches!(event.kind, EventKind::Modify(notify::event::ModifyKind::Name(_)));
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                for path in event.paths {
                    let new_folder = (created || renamed) && path.is_dir();
                    let _ = tx.send(Change { path, new_folder });
                }
            }
            Err(error) => tracing::warn!(%error, "source watcher error; a change may be missed"),
        })?;
        let mut sources = SourceWatcher {
            watcher,
            rules: Vec::new(),
        };
        for rule in &rules {
            if !rule.root.is_dir() {
                tracing::warn!(
                    folder = %rule.root.display(),
                    "build: the folder of a `watch` glob does not exist; its files are not watched"
                );
                continue;
            }
            sources.add_tree(&rule.root.clone(), rule.recursive)?;
        }
        sources.rules = rules;
        Ok((sources, rx))
    }

    /// Watches a folder created under a recursive rule's root since the start.
    pub fn folder_created(&mut self, folder: &Path) {
        let under_rule = self.rules.iter().any(|r| {
            r.recursive
                && folder
                    .strip_prefix(&r.root)
                    .is_ok_and(|rel| !rel.as_os_str().is_empty() && !ignored(&rel.join("x")))
        });
        if under_rule {
            if let Err(error) = self.add_tree(folder, true) {
                tracing::warn!(%error, folder = %folder.display(), "build: cannot watch a new source folder");
            }
        }
    }

    fn add_tree(&mut self, folder: &Path, recursive: bool) -> Result<(), notify::Error> {
        self.watcher.watch(folder, RecursiveMode::NonRecursive)?;
        if !recursive {
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(folder) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "target" || name.starts_with('.') {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.add_tree(&entry.path(), true)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn globs_split_at_their_first_wildcard() {
        let base = Path::new("/m/robot");
        let r = SourceRule::glob(base, "src/**").unwrap();
        assert_eq!((r.root.as_path(), r.recursive), (Path::new("/m/robot/src"), true));
        assert!(r.matches(Path::new("/m/robot/src/lib.rs")));
        assert!(r.matches(Path::new("/m/robot/src/a/b.rs")));
        assert!(!r.matches(Path::new("/m/robot/Cargo.toml")));

        let r = SourceRule::glob(base, "../nodes/x/Cargo.toml").unwrap();
        assert_eq!((r.root.as_path(), r.recursive), (Path::new("/m/nodes/x"), false));
        assert!(r.matches(Path::new("/m/nodes/x/Cargo.toml")));
        assert!(!r.matches(Path::new("/m/nodes/x/Cargo.lock")));

        let r = SourceRule::glob(base, "src/*.rs").unwrap();
        assert_eq!(
            (r.root.as_path(), r.recursive),
            (Path::new("/m/robot/src"), false)
        );
        assert!(r.matches(Path::new("/m/robot/src/lib.rs")));
        assert!(!r.matches(Path::new("/m/robot/src/a/b.rs")));

        let r = SourceRule::glob(base, "**/*.rs").unwrap();
        assert_eq!((r.root.as_path(), r.recursive), (Path::new("/m/robot"), true));
        assert!(r.matches(Path::new("/m/robot/x/y/lib.rs")));
        assert!(!r.matches(Path::new("/m/robot/target/debug/build/out.rs")));
    }

    #[test]
    fn editor_and_build_files_are_ignored() {
        let r = SourceRule::tree(Path::new("/c"));
        assert!(r.matches(Path::new("/c/src/lib.rs")));
        assert!(r.matches(Path::new("/c/Cargo.toml")));
        for path in [
            "/c/target/debug/libx.so",
            "/c/src/.lib.rs.swp",
            "/c/src/lib.rs~",
            "/c/src/#lib.rs#",
            "/c/src/4913",
            "/c/.git/index",
            "/c/src/lib.rs.tmp",
            "/other/src/lib.rs",
        ] {
            assert!(!r.matches(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn a_folder_made_later_is_watched_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("target/debug")).unwrap();
        let (mut w, rx) = SourceWatcher::start(vec![SourceRule::glob(&root, "src/**").unwrap()]).unwrap();
        std::fs::create_dir(root.join("src/sub")).unwrap();
        let wait = |rx: &Receiver<Change>, want: &Path| loop {
            let c = rx.recv_timeout(Duration::from_secs(5)).expect("an event");
            if c.path == want {
                return c;
            }
        };
        let c = wait(&rx, &root.join("src/sub"));
        assert!(c.new_folder);
        w.folder_created(&c.path);
        std::fs::write(root.join("src/sub/m.rs"), "x").unwrap();
        wait(&rx, &root.join("src/sub/m.rs"));
    }
}
