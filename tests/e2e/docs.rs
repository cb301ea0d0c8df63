//! The docs' code is real: the plugin tutorial shows the example crate the suite builds.

use horus_e2e::repo_root;

#[test]
fn plugins_md_shows_hello_counter_verbatim() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("docs/plugins.md")).expect("docs/plugins.md");
    let source =
        std::fs::read_to_string(root.join("plugins/hello-counter/src/lib.rs")).expect("hello-counter");
    let block = format!("```rust\n{source}```");
    assert!(
        doc.contains(&block),
        "docs/plugins.md must contain plugins/hello-counter/src/lib.rs verbatim in a ```rust block"
    );
}

#[test]
fn every_error_code_has_a_page() {
    let root = repo_root();
    let diag = std::fs::read_to_string(root.join("host/src/diag.rs")).unwrap();
    let codes: Vec<&str> = diag
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Code::")?.split(' ').next())
        .filter(|c| c.starts_with('H'))
        .collect();
    assert!(codes.len() >= 15, "{codes:?}");
    for code in codes {
        let page = root.join(format!("docs/errors/{code}.md"));
        assert!(page.is_file(), "{} is missing", page.display());
    }
}
