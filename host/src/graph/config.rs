//! A graph step: each node's `config` table against the config keys its node type declares (its
//! schema). Pure: it reads the validated manifest and the schemas, so it is tested without any
//! plugin file; `horus check`, `horus run` and hot reload all run it without creating a node.
//!
//! Decisions: a key the schema does not declare is an error (H0040, with did-you-mean); a value
//! of another type is an error (H0041) except an integer where a float is declared (`gain = 1`
//! is a fine float, as `Context::config_f64` converts it; the opposite, `2.0` for an integer key,
//! is refused like the getter refuses it); a required key that is absent is an error (H0042).
//! A type that declares no schema is not checked. Array items and nested tables' keys are not
//! checked.

use crate::diag::{suggest, Code, Diagnostic, Diagnostics};
use crate::ffi::{ConfigKeyInfo, ConfigKind};
use crate::manifest::NodeSpec;
use std::path::Path;

/// A node type's schema, as the check needs it.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    /// The node type's name, for messages (`ImuSim`, or a Python class).
    pub type_name: &'a str,
    /// Its keys.
    pub keys: &'a [ConfigKeyInfo],
}

/// Every problem of `spec`'s `config` against `schema`, located in the manifest at `path`: each
/// unknown key and wrong type at the key, a missing required key at the node's `config` (or at
/// the node when it has none).
pub fn check_node_config(path: &Path, spec: &NodeSpec, schema: Schema<'_>) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let names: Vec<&str> = schema.keys.iter().map(|k| k.name.as_str()).collect();
    let ty = schema.type_name;
    let key_at = |key: &str| {
        spec.config_at
            .key(key)
            .map_or(spec.config_at.table.unwrap_or(spec.at), |k| k.key)
    };
    // In the order written, so the report reads top to bottom.
    let mut written: Vec<(&String, &toml::Value)> = spec.config.iter().collect();
    written.sort_by_key(|(k, _)| {
        let at = key_at(k);
        (at.line, at.col)
    });
    for (key, value) in written {
        let Some(decl) = schema.keys.iter().find(|k| &k.name == key) else {
            let hint = match (suggest(key, names.iter().copied()), names.is_empty()) {
                (_, true) => format!("`{ty}` takes no config keys: remove it"),
                (Some(s), false) => format!("did you mean `{s}`? `{ty}` takes: {}", names.join(", ")),
                (None, false) => format!("remove it; `{ty}` takes: {}", names.join(", ")),
            };
            diags.push(
                Diagnostic::new(
                    Code::H0040,
                    path,
                    format!("unknown config key `{key}` for node type `{ty}`"),
                )
                .at(key_at(key))
                .node(spec.name.clone())
                .key(format!("config.{key}"))
                .hint(hint),
            );
            continue;
        };
        if !accepts(decl.kind, value) {
            diags.push(
                Diagnostic::new(
                    Code::H0041,
                    path,
                    format!(
                        "config `{key}` must be {} (node type `{ty}`), not {}",
                        expected(decl.kind),
                        found(value)
                    ),
                )
                .at(key_at(key))
                .node(spec.name.clone())
                .key(format!("config.{key}"))
                .hint(example(decl)),
            );
        }
    }
    for decl in schema.keys.iter().filter(|k| k.required) {
        if spec.config.contains_key(&decl.name) {
            continue;
        }
        let doc = if decl.doc.is_empty() {
            String::new()
        } else {
            format!(" ({})", decl.doc)
        };
        diags.push(
            Diagnostic::new(
                Code::H0042,
                path,
                format!("missing required config key `{}` of node type `{ty}`", decl.name),
            )
            .at(spec.config_at.table.unwrap_or(spec.at))
            .node(spec.name.clone())
            .key(format!("config.{}", decl.name))
            .hint(format!("add {} to the node's `config`{doc}", sample(decl))),
        );
    }
    diags
}

/// Whether a value of a key declared as `kind` may be `value`.
pub fn accepts(kind: ConfigKind, value: &toml::Value) -> bool {
    use toml::Value as V;
    matches!(
        (kind, value),
        (ConfigKind::Bool, V::Boolean(_))
            | (ConfigKind::Int, V::Integer(_))
            | (ConfigKind::Float, V::Float(_) | V::Integer(_))
            | (ConfigKind::Str, V::String(_))
            | (ConfigKind::Array, V::Array(_))
            | (ConfigKind::Table, V::Table(_))
    )
}

fn expected(kind: ConfigKind) -> &'static str {
    match kind {
        ConfigKind::Bool => "`true` or `false`",
        ConfigKind::Int => "an integer",
        ConfigKind::Float => "a number",
        ConfigKind::Str => "a string",
        ConfigKind::Array => "an array",
        ConfigKind::Table => "a table",
    }
}

fn found(value: &toml::Value) -> String {
    use toml::Value as V;
    match value {
        V::Boolean(b) => format!("the boolean {b}"),
        V::Integer(i) => format!("the integer {i}"),
        V::Float(f) => format!("the float {f}"),
        V::String(s) => format!("the string {s:?}"),
        V::Array(_) => "an array".to_owned(),
        V::Table(_) => "a table".to_owned(),
        V::Datetime(d) => format!("the date-time {d}"),
    }
}

/// `key = <a value of its type>`, the default when it has one.
fn sample(decl: &ConfigKeyInfo) -> String {
    let value = match (&decl.default, decl.kind) {
        (Some(v), _) => v.to_string(),
        (None, ConfigKind::Bool) => "true".to_owned(),
        (None, ConfigKind::Int) => "1".to_owned(),
        (None, ConfigKind::Float) => "1.0".to_owned(),
        (None, ConfigKind::Str) => "\"...\"".to_owned(),
        (None, ConfigKind::Array) => "[...]".to_owned(),
        (None, ConfigKind::Table) => "{ ... }".to_owned(),
    };
    format!("`{} = {value}`", decl.name)
}

fn example(decl: &ConfigKeyInfo) -> String {
    let mut hint = format!("write e.g. {}", sample(decl));
    if decl.kind == ConfigKind::Int {
        hint.push_str(" (a whole number, no decimal point)");
    }
    if !decl.doc.is_empty() {
        hint.push_str(&format!(" — {}", decl.doc));
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;

    fn key(name: &str, kind: ConfigKind, required: bool, default: Option<toml::Value>) -> ConfigKeyInfo {
        ConfigKeyInfo {
            name: name.into(),
            kind,
            required,
            default,
            doc: format!("the {name}"),
        }
    }

    fn pid() -> Vec<ConfigKeyInfo> {
        vec![
            key("k_p", ConfigKind::Float, true, None),
            key("k_i", ConfigKind::Float, false, Some(toml::Value::Float(0.0))),
            key("k_d", ConfigKind::Float, false, Some(toml::Value::Float(0.0))),
            key("limit", ConfigKind::Int, false, None),
            key("frame", ConfigKind::Str, false, None),
            key("enabled", ConfigKind::Bool, false, None),
        ]
    }

    fn node(manifest: &str) -> NodeSpec {
        let m = crate::manifest::parse(manifest, Path::new("robot.toml"), Path::new("/")).unwrap();
        m.nodes.into_iter().next().unwrap()
    }

    fn check(manifest: &str, keys: &[ConfigKeyInfo]) -> Vec<Diagnostic> {
        let spec = node(manifest);
        check_node_config(
            Path::new("robot.toml"),
            &spec,
            Schema {
                type_name: "Pid",
                keys,
            },
        )
        .0
    }

    const HEAD: &str = "[[node]]\nname = \"pid\"\nplugin = \"/x/libpid.so\"\n";

    #[test]
    fn a_config_that_matches_is_clean_and_an_integer_is_a_fine_float() {
        let d = check(
            &format!(
                "{HEAD}config = {{ k_p = 1, k_i = 0.5, limit = 3, frame = \"odom\", enabled = true }}\n"
            ),
            &pid(),
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn a_misspelt_key_is_located_at_the_key_with_did_you_mean() {
        let d = check(&format!("{HEAD}config = {{ k_p = 1.0, ki = 0.1 }}\n"), &pid());
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, Code::H0040);
        assert_eq!(d[0].location, Location { line: 4, col: 23 });
        assert_eq!(d[0].key.as_deref(), Some("config.ki"));
        assert_eq!(d[0].node.as_deref(), Some("pid"));
        let hint = d[0].hint.as_deref().unwrap();
        assert!(hint.starts_with("did you mean `k_i`?"), "{hint}");
        assert!(hint.contains("k_p, k_i, k_d, limit, frame, enabled"), "{hint}");
    }

    #[test]
    fn keys_of_a_config_table_are_located_on_their_own_lines() {
        let d = check(
            &format!("{HEAD}[node.config]\nk_p = 1.0\nlimit = 2.5\nframe = 7\nbogus = true\n"),
            &pid(),
        );
        let got: Vec<(Code, usize, usize, &str)> = d
            .iter()
            .map(|d| (d.code, d.location.line, d.location.col, d.key.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (Code::H0041, 6, 1, "config.limit"),
                (Code::H0041, 7, 1, "config.frame"),
                (Code::H0040, 8, 1, "config.bogus"),
            ]
        );
        assert_eq!(
            d[0].message,
            "config `limit` must be an integer (node type `Pid`), not the float 2.5"
        );
        assert!(d[1]
            .message
            .ends_with("must be a string (node type `Pid`), not the integer 7"));
        assert!(d[1].hint.as_deref().unwrap().contains("the frame"));
        // No suggestion close to `bogus`: the hint lists the keys.
        assert!(d[2]
            .hint
            .as_deref()
            .unwrap()
            .starts_with("remove it; `Pid` takes: k_p"));
    }

    #[test]
    fn a_missing_required_key_is_at_the_config_or_at_the_node() {
        let d = check(&format!("{HEAD}config = {{ k_i = 0.5 }}\n"), &pid());
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, Code::H0042);
        assert_eq!(d[0].location, Location { line: 4, col: 10 });
        assert_eq!(
            d[0].message,
            "missing required config key `k_p` of node type `Pid`"
        );
        assert_eq!(
            d[0].hint.as_deref(),
            Some("add `k_p = 1.0` to the node's `config` (the k_p)")
        );
        let d = check(HEAD, &pid());
        assert_eq!(d[0].code, Code::H0042);
        assert_eq!(d[0].location, Location { line: 1, col: 1 });
    }

    #[test]
    fn a_type_that_takes_no_keys_refuses_any() {
        let d = check(&format!("{HEAD}config = {{ step = 1 }}\n"), &[]);
        assert_eq!(d[0].code, Code::H0040);
        assert_eq!(
            d[0].hint.as_deref(),
            Some("`Pid` takes no config keys: remove it")
        );
    }

    #[test]
    fn kinds_accept_exactly_their_values() {
        use toml::Value as V;
        assert!(accepts(ConfigKind::Float, &V::Integer(1)));
        assert!(!accepts(ConfigKind::Int, &V::Float(1.0)));
        assert!(!accepts(ConfigKind::Bool, &V::Integer(1)));
        assert!(!accepts(ConfigKind::Str, &V::Boolean(true)));
        assert!(accepts(ConfigKind::Array, &V::Array(vec![V::Integer(1)])));
        assert!(accepts(ConfigKind::Table, &V::Table(toml::Table::new())));
        assert!(!accepts(ConfigKind::Table, &V::Array(Vec::new())));
    }
}
