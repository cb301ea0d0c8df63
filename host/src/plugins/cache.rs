//! The registry cache: what each plugin file offers (or why it was refused), as a child process
//! found when it opened it, kept between runs so that `horus plugins`, `horus inspect` and
//! type-only nodes do not `dlopen` every library of the search path every time. GStreamer's
//! registry (`~/.cache/gstreamer-1.0/registry.*.bin`) is the model.
//!
//! An entry is keyed by the file's canonical path and is valid only while the file's identity
//! is unchanged: device, inode, size, modification and change times ([`Stamp`]). A rebuild (a new
//! inode, or new times) or a copy over it makes the entry stale, and the file is opened again.
//! The whole cache is also bound to this host's plugin ABI (version and layout hash): a host
//! that speaks another ABI judges plugins differently, and ignores it.
//!
//! The cache is an optimisation, never a source of errors: a missing, unreadable, truncated,
//! corrupt or foreign file is ignored (and rewritten at the next save), and a cache that cannot
//! be written is logged at debug level and skipped. It is written atomically (a temp file in the
//! same folder, then `rename`), so a reader never sees half of it, and two hosts saving at once
//! leave one whole file. Owns the file and its format; not what is inspected ([`super::scan`]).

use super::scan::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name in its folder. The version in the name changes with the format, so that an
/// older `horus` and a newer one never read each other's.
pub const FILE_NAME: &str = "registry-v2.json";

/// The format written in the file (see [`FILE_NAME`]).
const FORMAT: u32 = 1;

/// A cache file larger than this is not read (a plugin's entry is well under 1 KiB).
const MAX_BYTES: u64 = 16 << 20;

/// The identity of a file's content, as `stat` tells it without reading the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i128,
    /// Status change time, ns since the epoch (catches a copy that kept the mtime, `cp -p`).
    pub ctime_ns: i128,
}

impl Stamp {
    /// The stamp of `file` (symlinks followed); `None` when it cannot be read.
    pub fn of(file: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(file).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    verdict: Verdict,
}

/// The file as written.
#[derive(Debug, Serialize, Deserialize)]
struct Contents {
    format: u32,
    abi_version: u32,
    /// Hex, as JSON numbers above 2^53 do not survive every reader.
    layout_hash: String,
    /// Canonical path → entry.
    entries: BTreeMap<PathBuf, Entry>,
}

/// The registry cache, read into memory.
#[derive(Debug, Clone)]
pub struct Registry {
    path: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
    dirty: bool,
}

/// Where the cache lives: `$XDG_CACHE_HOME/horus/registry-v2.json` (an absolute
/// `XDG_CACHE_HOME`), else `~/.cache/horus/registry-v2.json`; `None` without either.
pub fn default_path() -> Option<PathBuf> {
    path_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

fn path_from(
    xdg_cache_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    // The XDG base directory spec: a relative XDG_CACHE_HOME is invalid and ignored.
    let base = xdg_cache_home
        .filter(|d| Path::new(d).is_absolute())
        .map(PathBuf::from)
        .or_else(|| Some(Path::new(&home.filter(|h| !h.is_empty())?).join(".cache")))?;
    Some(base.join("horus").join(FILE_NAME))
}

impl Registry {
    /// The cache at `path`, read if it is there and whole; empty otherwise (never an error).
    pub fn open(path: &Path) -> Registry {
        let entries = match read(path) {
            Ok(entries) => entries,
            Err(why) => {
                tracing::debug!(cache = %path.display(), "plugin registry cache not used: {why}");
                BTreeMap::new()
            }
        };
        Registry {
            path: path.to_path_buf(),
            entries,
            dirty: false,
        }
    }

    /// The cache at [`default_path`], if there is one.
    pub fn open_default() -> Option<Registry> {
        default_path().map(|p| Registry::open(&p))
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many files it knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when it knows no file.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the cache knows of `file` (a canonical path), if the file is unchanged since.
    pub fn get(&self, file: &Path) -> Option<&Verdict> {
        let entry = self.entries.get(file)?;
        (Stamp::of(file)? == entry.stamp).then_some(&entry.verdict)
    }

    /// Records what `file` (a canonical path) is, under its current stamp.
    pub fn insert(&mut self, file: &Path, verdict: &Verdict) {
        let Some(stamp) = Stamp::of(file) else {
            return;
        };
        self.entries.insert(
            file.to_path_buf(),
            Entry {
                stamp,
                verdict: verdict.clone(),
            },
        );
        self.dirty = true;
    }

    /// Writes the cache if anything was added, leaving out files that are gone or changed.
    /// A failure is logged (debug) and otherwise ignored: the next run inspects again.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        self.entries
            .retain(|file, entry| Stamp::of(file).is_some_and(|s| s == entry.stamp));
        match write(&self.path, &self.entries) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::debug!(cache = %self.path.display(), "cannot write the plugin registry cache: {e}")
            }
        }
    }
}

fn read(path: &Path) -> Result<BTreeMap<PathBuf, Entry>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_BYTES {
        return Err(format!("{len} bytes, more than a cache can be"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let contents: Contents = serde_json::from_str(&text).map_err(|e| format!("not a registry cache: {e}"))?;
    let (abi, layout) = host_abi();
    if contents.format != FORMAT || contents.abi_version != abi || contents.layout_hash != layout {
        return Err(format!(
            "written for another plugin ABI (format {}, ABI v{}, layout {})",
            contents.format, contents.abi_version, contents.layout_hash
        ));
    }
    Ok(contents.entries)
}

fn write(path: &Path, entries: &BTreeMap<PathBuf, Entry>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let (abi_version, layout_hash) = host_abi();
    let contents = Contents {
        format: FORMAT,
        abi_version,
        layout_hash,
        entries: entries.clone(),
    };
    let text = serde_json::to_vec(&contents).map_err(std::io::Error::other)?;
    // A temp file of this process beside the cache, renamed over it: readers see the old file
    // or the new one, never a part.
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn host_abi() -> (u32, String) {
    use horus_plugin_api::abi;
    (abi::ABI_VERSION, format!("{:016x}", abi::LAYOUT_HASH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::scan::{Refusal, RefusalKind};

    fn refused(why: &str) -> Verdict {
        Verdict::Refused(Refusal {
            kind: RefusalKind::Crashed,
            reason: why.to_owned(),
        })
    }

    /// A plugin file and a cache path in a fresh folder.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("libx.so");
        std::fs::write(&file, b"first build").unwrap();
        let file = std::fs::canonicalize(&file).unwrap();
        let cache = tmp.path().join("cache/horus").join(FILE_NAME);
        (tmp, file, cache)
    }

    #[test]
    fn an_entry_survives_a_save_and_a_reopen() {
        let (_tmp, file, cache) = setup();
        let mut reg = Registry::open(&cache);
        assert!(reg.is_empty());
        reg.insert(&file, &refused("signal 11"));
        reg.save();
        assert!(cache.is_file());
        let again = Registry::open(&cache);
        assert_eq!(again.len(), 1);
        assert_eq!(again.get(&file), Some(&refused("signal 11")));
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(cache.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn a_changed_or_replaced_file_is_not_taken_from_the_cache() {
        let (tmp, file, cache) = setup();
        let mut reg = Registry::open(&cache);
        reg.insert(&file, &refused("old"));
        // Same size, new content and times.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, b"other build").unwrap();
        assert_eq!(reg.get(&file), None);
        // Replaced by a rename (a new inode), as cargo and `cp --remove-destination` do.
        reg.insert(&file, &refused("new"));
        assert!(reg.get(&file).is_some());
        let next = tmp.path().join("next.so");
        std::fs::write(&next, b"other build").unwrap();
        std::fs::rename(&next, &file).unwrap();
        assert_eq!(reg.get(&file), None);
        // A file that is gone is not there, and is dropped at the next save.
        reg.insert(&file, &refused("newer"));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(reg.get(&file), None);
        reg.save();
        assert!(Registry::open(&cache).is_empty());
    }

    #[test]
    fn a_corrupt_or_foreign_cache_is_ignored_and_rewritten() {
        let (_tmp, file, cache) = setup();
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        let foreign = format!(
            "{{\"format\":1,\"abi_version\":999,\"layout_hash\":\"0\",\"entries\":{{\"{}\":{{}}}}}}",
            file.display()
        );
        for garbage in [
            &b""[..],
            b"{",
            b"\xff\xfe not json",
            b"[1,2,3]",
            b"{\"format\":1}",
            foreign.as_bytes(),
        ] {
            std::fs::write(&cache, garbage).unwrap();
            let mut reg = Registry::open(&cache);
            assert!(reg.is_empty(), "{:?}", String::from_utf8_lossy(garbage));
            assert_eq!(reg.get(&file), None);
            reg.insert(&file, &refused("x"));
            reg.save();
            assert_eq!(Registry::open(&cache).len(), 1);
        }
        // A cache path that cannot be written (its folder is a file) is no error either.
        let blocked = file.join("horus").join(FILE_NAME);
        let mut reg = Registry::open(&blocked);
        reg.insert(&file, &refused("x"));
        reg.save();
        assert!(!blocked.exists());
    }

    #[test]
    fn the_cache_lives_under_xdg_cache_home_or_home() {
        assert_eq!(
            path_from(Some("/xdg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/xdg/horus/registry-v2.json"))
        );
        for xdg in [None, Some("".into()), Some("relative".into())] {
            assert_eq!(
                path_from(xdg, Some("/home/u".into())),
                Some(PathBuf::from("/home/u/.cache/horus/registry-v2.json"))
            );
        }
        assert_eq!(path_from(None, None), None);
    }
}
