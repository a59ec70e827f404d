//! docs/architecture.md's table of crates says what each crate's
//! Cargo.toml says: its workspace dependencies exactly, and every other
//! direct dependency by name.

use std::collections::BTreeSet;
use std::path::Path;

const CRATES: [(&str, &str); 6] = [
    ("scsp", "."),
    ("scsp-ffi", "ffi"),
    ("scsp-bridge", "bridge"),
    ("scsp-lab", "lab"),
    ("scsp-cli", "cli"),
    ("childguard", "childguard"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The packages in the `[dependencies]` of a crate's Cargo.toml.
fn dependencies(dir: &str) -> BTreeSet<String> {
    let manifest = |dir: &str| -> toml::Table {
        let text = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
        text.parse().unwrap()
    };
    let workspace = manifest(".")["workspace"]["dependencies"].clone();
    manifest(dir)
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| {
            d.iter()
                .map(|(key, spec)| {
                    // A renamed dependency, here or where the workspace
                    // declares it.
                    let inherited = spec.get("workspace").is_some();
                    let spec = if inherited { &workspace[key] } else { spec };
                    let renamed = spec.get("package").and_then(|p| p.as_str());
                    renamed.unwrap_or(key).to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_crate_table_in_architecture_md_matches_the_manifests() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let members: BTreeSet<&str> = CRATES.iter().map(|c| c.0).collect();
    for (name, dir) in CRATES {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("docs/architecture.md has no row for {name}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (workspace, other) = (cells[3], cells[4]);
        let deps = dependencies(dir);
        let in_doc: BTreeSet<&str> = workspace
            .split(',')
            .map(str::trim)
            .filter(|s| *s != "—")
            .collect();
        let in_toml: BTreeSet<&str> = deps
            .iter()
            .map(String::as_str)
            .filter(|d| members.contains(d))
            .collect();
        assert_eq!(in_doc, in_toml, "{name}: workspace dependencies in {row}");
        let words: BTreeSet<&str> = other
            .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
            .collect();
        for d in deps.iter().filter(|d| !members.contains(d.as_str())) {
            assert!(
                words.contains(d.as_str()),
                "{name}: {d} is missing from {row}"
            );
        }
    }
}
