//! The CloudFront provider against the simulator (every signature checked, the four APIs as AWS
//! serves them), and its configuration example. moto's judgement is in cloudfront_moto.rs.

use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::providers::cloudfront::CloudFrontAccount;
use cdn_usage_exporter::providers::cloudfront::config::Source;

#[test]
fn the_commented_example_table_validates() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.example.toml")).unwrap();
    let start = example.find("# [[cloudfront]]").expect("a [[cloudfront]] example");
    let end = example[start..].find("\n# One [[").map_or(example.len(), |e| start + e);
    let table: String = example[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| match l {
            l if l.starts_with("access_key_id_env") => "access_key_id = \"AKIAEXAMPLEEXAMPLE01\"",
            l if l.starts_with("secret_access_key_file") => "secret_access_key = \"example-secret\"",
            l if l.starts_with("external_id_env") => "external_id = \"example-external-id\"",
            l => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::from_toml_str(&table, "example").unwrap_or_else(|e| panic!("{e}\n{table}"));
    let a = config.accounts_of::<CloudFrontAccount>()[0];
    assert_eq!((a.name.as_str(), a.budget_usd), ("aws-prod", Some(1500.0)));
    assert!(matches!(&a.source, Source::Keys { from: "config", .. }));
    let role = a.assume_role.as_ref().expect("the example assumes a role");
    assert_eq!(role.role_arn, "arn:aws:iam::123456789012:role/cdn-usage-exporter");
}
