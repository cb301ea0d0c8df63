//! Hub tables — `[hub.<name>]` in TOML, `hub: {<name>: …}` in YAML — as `Hub.from_config`
//! reads them; the manifest's own `[hub.*]` tables go through the same [`spec`] check.
//!
//! Strict like manifests: an unknown key, a wrong type, an unknown mode, a tcp hub without an
//! address or a missing hub is an error that names the file (and line and column where the
//! parser knows them) and what to write. Other top-level tables (a manifest's `[scheduler]`,
//! `[[node]]`) are ignored, so a hub can live in a robot's manifest.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

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

/// Reads hub `name` from the TOML (`.toml`) or YAML (`.yaml`, `.yml`) file at `path`.
pub fn load(path: &Path, name: &str) -> Result<HubSpec, String> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read the hub config: {e}"))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let raw: RawFile = match ext {
        "toml" => toml::from_str(&text).map_err(|e| format!("{shown}: {}", e.to_string().trim_end()))?,
        "yaml" | "yml" => yaml_serde::from_str(&text).map_err(|e| format!("{shown}: {e}"))?,
        _ => {
            return Err(format!(
                "{shown}: unknown config format `.{ext}`: name the file .toml, .yaml or .yml"
            ))
        }
    };
    let Some(hub) = raw.hub.get(name) else {
        let known: Vec<&str> = raw.hub.keys().map(String::as_str).collect();
        return Err(match crate::diag::suggest(name, known.iter().copied()) {
            Some(s) => format!("{shown}: no hub `{name}` (did you mean `{s}`?)"),
            None if known.is_empty() => {
                format!("{shown}: no hub `{name}`: the file has no hub tables (`[hub.{name}]`)")
            }
            None => format!(
                "{shown}: no hub `{name}` (hubs in the file: {})",
                known.join(", ")
            ),
        });
    };
    spec(name, &hub.mode, hub.address.as_deref()).map_err(|e| format!("{shown}: hub `{name}`: {e}"))
}

/// Checks one hub table — its name, `mode` and `address` — as `Hub.from_config` and the
/// manifest's `[hub.<name>]` tables both do.
pub fn spec(name: &str, mode: &str, address: Option<&str>) -> Result<HubSpec, String> {
    check_hub_name(name)?;
    let mode = match mode {
        "local" => HubMode::Local,
        "tcp" => HubMode::Tcp,
        other => {
            return Err(format!(
                "unknown mode `{other}` (write mode = \"local\" or mode = \"tcp\")"
            ))
        }
    };
    match (mode, address) {
        (HubMode::Tcp, None) => return Err("a tcp hub needs `address = \"host:port\"`".into()),
        (HubMode::Tcp, Some(a)) => check_address(a)?,
        (HubMode::Local, Some(_)) => {
            return Err("a local hub has no `address` (remove it, or write mode = \"tcp\")".into())
        }
        (HubMode::Local, None) => {}
    }
    Ok(HubSpec {
        name: name.to_owned(),
        mode,
        address: address.map(str::to_owned),
    })
}

/// A hub name is a key-expression prefix on the network: letters, digits, `_` and `-`.
pub fn check_hub_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "hub name `{name}` must be letters, digits, `_` and `-` (it prefixes every key on the network)"
        ));
    }
    Ok(())
}

/// Checks a `host:port` address.
pub fn check_address(address: &str) -> Result<(), String> {
    let bad = || format!("address `{address}` is not `host:port` (e.g. \"127.0.0.1:8080\")");
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
    fn errors_name_the_file_and_the_fix() {
        let (_a, t) = write("c.toml", "[hub.a]\nmode = \"local\"\nadress = \"x\"\n");
        let e = load(&t, "a").unwrap_err();
        assert!(
            e.contains("c.toml") && e.contains("adress") && e.contains("line 3"),
            "{e}"
        );
        let (_b, t) = write("d.toml", "[hub.sensor_hub]\nmode = \"local\"\n");
        let e = load(&t, "sensor_hb").unwrap_err();
        assert!(e.contains("did you mean `sensor_hub`"), "{e}");
        let (_c, t) = write("e.toml", "[hub.a]\nmode = \"udp\"\n");
        assert!(load(&t, "a").unwrap_err().contains("unknown mode `udp`"));
        let (_d, t) = write("f.toml", "[hub.a]\nmode = \"tcp\"\naddress = \"nohost\"\n");
        assert!(load(&t, "a").unwrap_err().contains("host:port"));
        let (_f, t) = write("h.toml", "[hub.a]\nmode = \"local\"\naddress = \"127.0.0.1:1\"\n");
        assert!(load(&t, "a")
            .unwrap_err()
            .contains("a local hub has no `address`"));
        let (_g, t) = write("i.toml", "[hub.\"a/b\"]\nmode = \"local\"\n");
        assert!(load(&t, "a/b").unwrap_err().contains("letters, digits"));
        let (_e, y) = write("g.yaml", "hub:\n  a:\n    mode: [1\n");
        let e = load(&y, "a").unwrap_err();
        assert!(e.contains("g.yaml") && e.contains("line"), "{e}");
        assert!(load(Path::new("/nonexistent/h.toml"), "a")
            .unwrap_err()
            .contains("cannot read"));
    }
}
