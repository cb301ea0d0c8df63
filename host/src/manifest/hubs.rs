//! Hub tables — `[hub.<name>]` in TOML, `hub: {<name>: …}` in YAML — as `Hub.from_config`
//! reads them; the manifest's own `[hub.*]` tables go through the same [`spec`] check.
//!
//! Strict like manifests: an unknown key, a wrong type, an unknown mode, a tcp hub without an
//! address or a missing hub is an error that names the file (and line and column where the
//! parser knows them) and what to write. Other top-level tables (a manifest's `[scheduler]`,
//! `[[node]]`) are ignored, so a hub can live in a robot's manifest.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a hub carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubMode {
    /// Shared memory on this machine.
    Local,
    /// Over the network (Zenoh, TCP).
    Tcp,
}

/// One hub's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpec {
    /// The hub's name (the table's key).
    pub name: String,
    /// Its mode.
    pub mode: HubMode,
    /// `host:port` of a tcp hub.
    pub address: Option<String>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    hub: BTreeMap<String, RawHub>,
    #[serde(flatten)]
    _rest: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHub {
    mode: String,
    #[serde(default)]
    address: Option<String>,
}

/// Why a hub table's settings are wrong ([`spec`], [`check_hub_name`], [`check_address`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubSpecError {
    /// The name is not a valid key-expression prefix.
    #[error("hub name `{name}` must be letters, digits, `_` and `-` (it prefixes every key on the network)")]
    BadName {
        /// The name.
        name: String,
    },
    /// `mode` is neither `local` nor `tcp`.
    #[error("unknown mode `{mode}` (write mode = \"local\" or mode = \"tcp\")")]
    UnknownMode {
        /// The mode given.
        mode: String,
    },
    /// A tcp hub without `address`.
    #[error("a tcp hub needs `address = \"host:port\"`")]
    NoAddress,
    /// A local hub with an `address`.
    #[error("a local hub has no `address` (remove it, or write mode = \"tcp\")")]
    LocalAddress,
    /// The address is not `host:port` with a port from 1 to 65535.
    #[error("address `{address}` is not `host:port` (e.g. \"127.0.0.1:8080\")")]
    BadAddress {
        /// The address given.
        address: String,
    },
}

/// Why [`load`] could not read hub `name` from a config file. Every message starts with the
/// file's path.
#[derive(Debug, thiserror::Error)]
pub enum HubLoadError {
    /// The file could not be read.
    #[error("{}: cannot read the hub config: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or YAML, or a hub table has an unknown key or a wrong type.
    #[error("{}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// The extension is not `.toml`, `.yaml` or `.yml`.
    #[error("{}: unknown config format `.{ext}`: name the file .toml, .yaml or .yml", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Its extension.
        ext: String,
    },
    /// The file has no hub `name`.
    #[error("{}: no hub `{name}`{}", path.display(), missing_hint(name, suggestion.as_deref(), known))]
    NoHub {
        /// The file.
        path: PathBuf,
        /// The hub asked for.
        name: String,
        /// The closest hub name in the file, if one is close.
        suggestion: Option<String>,
        /// The hubs in the file.
        known: Vec<String>,
    },
    /// The hub's table has wrong settings.
    #[error("{}: hub `{name}`: {source}", path.display())]
    Spec {
        /// The file.
        path: PathBuf,
        /// The hub.
        name: String,
        /// What is wrong.
        source: HubSpecError,
    },
}

fn missing_hint(name: &str, suggestion: Option<&str>, known: &[String]) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None if known.is_empty() => format!(": the file has no hub tables (`[hub.{name}]`)"),
        None => format!(" (hubs in the file: {})", known.join(", ")),
    }
}

/// Reads hub `name` from the TOML (`.toml`) or YAML (`.yaml`, `.yml`) file at `path`.
pub fn load(path: &Path, name: &str) -> Result<HubSpec, HubLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| HubLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let syntax = |reason: String| HubLoadError::Syntax {
        path: path.to_owned(),
        reason,
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let raw: RawFile = match ext {
        "toml" => toml::from_str(&text).map_err(|e| syntax(e.to_string().trim_end().to_owned()))?,
        "yaml" | "yml" => yaml_serde::from_str(&text).map_err(|e| syntax(e.to_string()))?,
        _ => {
            return Err(HubLoadError::Format {
                path: path.to_owned(),
                ext: ext.to_owned(),
            })
        }
    };
    let Some(hub) = raw.hub.get(name) else {
        let known: Vec<String> = raw.hub.keys().cloned().collect();
        return Err(HubLoadError::NoHub {
            path: path.to_owned(),
            name: name.to_owned(),
            suggestion: crate::diag::suggest(name, known.iter().map(String::as_str)).map(|s| s.to_string()),
            known,
        });
    };
    spec(name, &hub.mode, hub.address.as_deref()).map_err(|source| HubLoadError::Spec {
        path: path.to_owned(),
        name: name.to_owned(),
        source,
    })
}

/// Checks one hub table — its name, `mode` and `address` — as `Hub.from_config` and the
/// manifest's `[hub.<name>]` tables both do.
pub fn spec(name: &str, mode: &str, address: Option<&str>) -> Result<HubSpec, HubSpecError> {
    check_hub_name(name)?;
    let mode = match mode {
        "local" => HubMode::Local,
        "tcp" => HubMode::Tcp,
        other => {
            return Err(HubSpecError::UnknownMode {
                mode: other.to_owned(),
            })
        }
    };
    match (mode, address) {
        (HubMode::Tcp, None) => return Err(HubSpecError::NoAddress),
        (HubMode::Tcp, Some(a)) => check_address(a)?,
        (HubMode::Local, Some(_)) => return Err(HubSpecError::LocalAddress),
        (HubMode::Local, None) => {}
    }
    Ok(HubSpec {
        name: name.to_owned(),
        mode,
        address: address.map(str::to_owned),
    })
}

/// A hub name is a key-expression prefix on the network: letters, digits, `_` and `-`.
pub fn check_hub_name(name: &str) -> Result<(), HubSpecError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(HubSpecError::BadName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a `host:port` address.
pub fn check_address(address: &str) -> Result<(), HubSpecError> {
    let bad = || HubSpecError::BadAddress {
        address: address.to_owned(),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn toml_and_yaml_give_equal_hubs() {
        let (_a, t) = write(
            "c.toml",
            "[scheduler]\ntick_rate = 5\n[hub.sensor_hub]\nmode = \"tcp\"\naddress = \"127.0.0.1:8080\"\n",
        );
        let (_b, y) = write(
            "c.yaml",
            "hub:\n  sensor_hub:\n    mode: tcp\n    address: \"127.0.0.1:8080\"\n",
        );
        let a = load(&t, "sensor_hub").unwrap();
        assert_eq!(a, load(&y, "sensor_hub").unwrap());
        assert_eq!(a.mode, HubMode::Tcp);
    }

    #[test]
    fn spec_errors_read_as_before() {
        // The text users see (Hub.from_config's ValueError, the manifest's H0006) is unchanged.
        let e = |r: Result<HubSpec, HubSpecError>| r.unwrap_err().to_string();
        assert_eq!(
            e(spec("a/b", "local", None)),
            "hub name `a/b` must be letters, digits, `_` and `-` (it prefixes every key on the network)"
        );
        assert_eq!(
            e(spec("a", "udp", None)),
            "unknown mode `udp` (write mode = \"local\" or mode = \"tcp\")"
        );
        assert_eq!(
            e(spec("a", "tcp", None)),
            "a tcp hub needs `address = \"host:port\"`"
        );
        assert_eq!(
            e(spec("a", "local", Some("h:1"))),
            "a local hub has no `address` (remove it, or write mode = \"tcp\")"
        );
        assert_eq!(
            e(spec("a", "tcp", Some("h:0"))),
            "address `h:0` is not `host:port` (e.g. \"127.0.0.1:8080\")"
        );
        assert_eq!(
            spec("a", "tcp", Some(":1")),
            Err(HubSpecError::BadAddress { address: ":1".into() })
        );
    }

    #[test]
    fn a_missing_hub_is_named_with_the_file_and_the_hubs_in_it() {
        let (_a, t) = write(
            "c.toml",
            "[hub.one]\nmode = \"local\"\n[hub.two]\nmode = \"local\"\n",
        );
        let e = load(&t, "zzzzzz").unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: no hub `zzzzzz` (hubs in the file: one, two)", t.display())
        );
        let (_b, t) = write("d.toml", "[scheduler]\n");
        let e = load(&t, "h").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: no hub `h`: the file has no hub tables (`[hub.h]`)",
                t.display()
            )
        );
        let (_c, t) = write("c.json", "{}");
        let e = load(&t, "h").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: unknown config format `.json`: name the file .toml, .yaml or .yml",
                t.display()
            )
        );
        let (_d, t) = write("e.toml", "[hub.a]\nmode = \"tcp\"\n");
        let e = load(&t, "a").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: hub `a`: a tcp hub needs `address = \"host:port\"`",
                t.display()
            )
        );
    }

    #[test]
    fn errors_name_the_file_and_the_fix() {
        let (_a, t) = write("c.toml", "[hub.a]\nmode = \"local\"\nadress = \"x\"\n");
        let e = load(&t, "a").unwrap_err().to_string();
        assert!(
            e.contains("c.toml") && e.contains("adress") && e.contains("line 3"),
            "{e}"
        );
        let (_b, t) = write("d.toml", "[hub.sensor_hub]\nmode = \"local\"\n");
        let e = load(&t, "sensor_hb").unwrap_err().to_string();
        assert!(e.contains("did you mean `sensor_hub`"), "{e}");
        let (_c, t) = write("e.toml", "[hub.a]\nmode = \"udp\"\n");
        assert!(load(&t, "a")
            .unwrap_err()
            .to_string()
            .contains("unknown mode `udp`"));
        let (_d, t) = write("f.toml", "[hub.a]\nmode = \"tcp\"\naddress = \"nohost\"\n");
        assert!(load(&t, "a").unwrap_err().to_string().contains("host:port"));
        let (_f, t) = write("h.toml", "[hub.a]\nmode = \"local\"\naddress = \"127.0.0.1:1\"\n");
        assert!(load(&t, "a")
            .unwrap_err()
            .to_string()
            .contains("a local hub has no `address`"));
        let (_g, t) = write("i.toml", "[hub.\"a/b\"]\nmode = \"local\"\n");
        assert!(load(&t, "a/b")
            .unwrap_err()
            .to_string()
            .contains("letters, digits"));
        let (_e, y) = write("g.yaml", "hub:\n  a:\n    mode: [1\n");
        let e = load(&y, "a").unwrap_err().to_string();
        assert!(e.contains("g.yaml") && e.contains("line"), "{e}");
        assert!(load(Path::new("/nonexistent/h.toml"), "a")
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }
}
