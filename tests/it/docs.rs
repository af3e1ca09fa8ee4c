//! docs/metrics.md lists exactly the families the code declares.

use std::collections::BTreeSet;

use cdn_usage_exporter::families::FamilyId;

#[test]
fn metrics_doc_lists_every_declared_family() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
    let doc = std::fs::read_to_string(path).expect("docs/metrics.md exists");
    // Family names as the first cell of a table row: | `cdn_...` |
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|name| name.starts_with("cdn_"))
        .collect();
    let declared: BTreeSet<&str> = FamilyId::ALL.iter().map(|f| f.def().name).collect();
    let missing: Vec<_> = declared.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented: {missing:?}; documented but not declared: {extra:?}"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn metrics_doc_lists_every_process_metric() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let rendered = cdn_usage_exporter::process::render();
    let names: Vec<&str> = rendered.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    assert_eq!(names.len(), 6, "{rendered}");
    for name in names {
        assert!(doc.contains(&format!("| `{name}` |")), "docs/metrics.md lacks {name}");
    }
}
