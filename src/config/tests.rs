//! The configuration's tests: the top level, problems and their positions, and what no
//! problem may print. Each provider's own section is tested beside it.
#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error

use super::*;
use crate::validate::{MAX_ACCOUNTS, MAX_NAME_BYTES, MAX_SECRET_BYTES, MAX_SECRET_FILE_BYTES};

/// A good file of one ScaleEngine account (the providers' section tests start from it too).
pub(crate) const GOOD: &str = r#"
    [[scaleengine]]
    name = "main"
    cdn = 158
    api_key = "k"
    api_secret = "s"
    video_apps = ["live", 42]
    budget_usd = 500
"#;

#[test]
fn answer_limits_are_read_and_checked() {
    let ok = format!("{GOOD}\n[answer_limits]\nsummary_bytes = 65536\nvideo_pages = 3\n");
    let c = Config::from_toml_str(&ok, "test").unwrap();
    assert_eq!(c.limits.answers.summary_bytes, 65536);
    assert_eq!(c.limits.answers.video_pages, 3);
    assert_eq!(c.limits.answers.table_rows, AnswerLimits::default().table_rows);
    let bad = format!("{GOOD}\n[answer_limits]\nsummary_bytes = 10\ntable_rowz = 5\npage_entries = \"9\"\n");
    let text = Config::from_toml_str(&bad, "test").unwrap_err().to_string();
    for needle in
        ["answer_limits.summary_bytes", "4096", "answer_limits.table_rowz", "table_rows", "answer_limits.page_entries"]
    {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let bad = r#"
        listen_address = "nowhere"
        [[scaleengine]]
        name = "main"
        cdn = "158"
        api_key = "k"
        summary_interval = "15x"
        api_secrte = "s"
        [[scaleengine]]
        name = "main"
        cdn = 1
        api_key = "k"
        api_secret = "s"
    "#;
    // In a Jail: another test sets CDN_EXPORTER_LISTEN_ADDRESS, and Jail serializes them.
    figment::Jail::expect_with(|_| {
        let err = Config::from_toml_str(bad, "test").unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listen_address",
                "scaleengine[0].cdn",
                "scaleengine[0].api_secret",
                "scaleengine[0].summary_interval",
                "scaleengine[0].api_secrte",
                "scaleengine[1].name",
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("has 6 problems"), "{text}");
        assert!(text.contains("Did you mean `api_secret`?"), "{text}");
        Ok(())
    });
}

#[test]
fn environment_overrides_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CDN_EXPORTER_LISTEN_ADDRESS", "127.0.0.1:9999");
        jail.set_env("CDN_EXPORTER_REQUIRE_TOOLS", "1");
        let toml = format!("listen_address = \"0.0.0.0:1\"\n{GOOD}");
        let c = Config::from_toml_str(&toml, "test").map_err(|e| e.to_string())?;
        assert_eq!(c.listen_address, Some("127.0.0.1:9999".parse().unwrap()));
        Ok(())
    });
}

#[test]
fn debug_print_has_no_secret() {
    let c = Config::from_toml_str(&GOOD.replace("\"s\"", "\"topsecretvalue\""), "test").unwrap();
    assert!(!format!("{c:?}").contains("topsecretvalue"));
}

#[test]
fn typos_get_a_suggestion_among_every_known_key() {
    let err = Config::from_toml_str(&GOOD.replace("budget_usd", "max_ag = \"1h\"\nbudget_usd"), "test").unwrap_err();
    assert_eq!(err.problems[0].path, "scaleengine[0].max_ag");
    assert!(err.problems[0].message.contains("Did you mean `max_age`?"), "{err}");
}

#[test]
fn no_account_is_an_error() {
    let err = Config::from_toml_str("", "test").unwrap_err();
    assert_eq!(err.problems[0].path, "scaleengine");
}

const HUNTER: &str = "hunter2-s3cr3t";

/// A good file whose `api_secret` line is broken by `line`.
fn with_secret_line(line: &str) -> String {
    GOOD.replace("api_secret = \"s\"", line)
}

#[test]
fn broken_secret_lines_name_line_and_column_but_never_the_value() {
    let cases = [
        // A syntax error on the secret's line (unterminated string, missing quote, bad escape).
        (format!("api_secret = \"{HUNTER}"), "TOML syntax error"),
        (format!("api_secret = {HUNTER}\""), "TOML syntax error"),
        (format!("api_secret = \"{HUNTER}\\q\""), "TOML syntax error"),
        // A duplicate key on the secret's line.
        (format!("api_secret = \"{HUNTER}\"\napi_secret = \"{HUNTER}\""), "duplicate key `api_secret`"),
        // A wrong type for a secret.
        (format!("api_secret = [\"{HUNTER}\"]"), "scaleengine[0].api_secret: expected a string, found an array"),
        (format!("api_secret = {{ v = \"{HUNTER}\" }}"), "scaleengine[0].api_secret: expected a string"),
        // A misspelled secret key.
        (format!("api_secert = \"{HUNTER}\""), "Did you mean `api_secret`?"),
        // A secret in a key that takes a duration, a number, a name.
        (format!("api_secret = \"s\"\ntimeout = [\"{HUNTER}\"]"), "scaleengine[0].timeout"),
        (format!("api_secret = \"s\"\nvideo_top_n = \"{HUNTER}\""), "scaleengine[0].video_top_n"),
        // Weird characters in the value do not break out of the message either.
        ("api_secret = \"a\\u0000b\\nc\\u001b[31m\"\ntimeout = true".to_owned(), "scaleengine[0].timeout"),
        (format!("api_secret = \"{HUNTER}\\u0000\\u001b[31m\\n\" x"), "TOML syntax error"),
    ];
    for (line, expect) in cases {
        let toml = with_secret_line(&line);
        let text = Config::from_toml_str(&toml, "test.toml").unwrap_err().to_string();
        assert!(!text.contains(HUNTER) && !text.contains("hunter2"), "value echoed for {line:?}:\n{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\0'), "raw control character for {line:?}:\n{text}");
        assert!(text.contains(expect), "{line:?}: expected {expect:?} in:\n{text}");
        assert!(text.contains("line ") && text.contains(", column "), "no position for {line:?}:\n{text}");
    }
}

#[test]
fn a_syntax_error_points_at_its_line_and_column() {
    let toml = format!("[[scaleengine]]\nname = \"main\"\napi_secret = \"{HUNTER}\n");
    let err = Config::from_toml_str(&toml, "f.toml").unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    let at = err.problems[0].at.unwrap();
    assert_eq!(at.line, 3, "{err}");
    assert!(at.column > 1, "{err}");
    assert!(err.to_string().starts_with("the configuration in f.toml has 1 problem:\n  - line 3, column "));
}

#[test]
fn validation_problems_carry_the_position_of_their_key() {
    let toml = "\n[[scaleengine]]\nname = \"main\"\ncdn = \"158\"\napi_key = \"k\"\napi_secret = \"s\"\n";
    let err = Config::from_toml_str(toml, "f.toml").unwrap_err();
    assert_eq!(err.problems[0].path, "scaleengine[0].cdn");
    assert_eq!(err.problems[0].at, Some(Position { line: 4, column: 1 }), "{err}");
    // A missing key points at its table.
    let err = Config::from_toml_str(&toml.replace("api_key = \"k\"\n", ""), "f.toml").unwrap_err();
    let missing = err.problems.iter().find(|p| p.path == "scaleengine[0].api_key").unwrap();
    assert_eq!(missing.at, Some(Position { line: 2, column: 1 }), "{err}");
    // Inline tables in arrays too.
    let cn = "[[cdnetworks]]\nname = \"c\"\nusername = \"u\"\napi_key = \"k\"\ndomains = [\n  { domain = \"a.example\", contract = \"C\" },\n  { domain = \"b example\", contract = \"C\" },\n]\n";
    let err = Config::from_toml_str(cn, "f.toml").unwrap_err();
    assert_eq!(err.problems[0].path, "cdnetworks[0].domains[1].domain", "{err}");
    assert_eq!(err.problems[0].at, Some(Position { line: 7, column: 5 }), "{err}");
}

#[test]
fn names_and_accounts_are_bounded() {
    let long = |n: usize| "a".repeat(n);
    let ok = GOOD.replace("name = \"main\"", &format!("name = \"{}\"", long(MAX_NAME_BYTES)));
    assert!(Config::from_toml_str(&ok, "t").is_ok());
    let err = Config::from_toml_str(&GOOD.replace("\"main\"", &format!("\"{}\"", long(MAX_NAME_BYTES + 1))), "t")
        .unwrap_err();
    assert_eq!(err.problems[0].path, "scaleengine[0].name");
    assert!(err.problems[0].message.contains("the limit is 128 bytes"), "{err}");
    assert!(!err.to_string().contains(&long(40)), "the value is not echoed: {err}");
    let err = Config::from_toml_str(&GOOD.replace("\"main\"", "\"a\\u0007b\""), "t").unwrap_err();
    assert!(err.problems[0].message.contains("control characters"), "{err}");

    let accounts: String = (0..=MAX_ACCOUNTS)
        .map(|i| format!("[[scaleengine]]\nname = \"a{i}\"\ncdn = 1\napi_key = \"k\"\napi_secret = \"s\"\n"))
        .collect();
    let err = Config::from_toml_str(&accounts, "t").unwrap_err();
    assert_eq!(err.problems[0].path, "scaleengine");
    assert!(err.problems[0].message.contains(&format!("the limit is {MAX_ACCOUNTS}")), "{err}");
}

#[test]
fn unknown_keys_are_escaped_and_cut() {
    let toml = format!("\"a\\u001b[2Jb\\nc\" = 1\n\"{}\" = 2\n{GOOD}", "k".repeat(10_000));
    let err = Config::from_toml_str(&toml, "t").unwrap_err();
    let text = err.to_string();
    assert!(!text.contains('\u{1b}') && text.contains("a\\u{1b}[2Jb\\nc: unknown key"), "{text}");
    assert!(text.len() < 2_000, "{}", text.len());
}

#[test]
fn non_finite_numbers_are_refused_by_name() {
    for (value, path) in [
        ("budget_usd = nan", "scaleengine[0].budget_usd"),
        ("budget_usd = inf", "scaleengine[0].budget_usd"),
        ("budget_usd = -inf", "scaleengine[0].budget_usd"),
        ("budget_usd = 500\nvideo_top_n = nan", "scaleengine[0].video_top_n"),
        ("budget_usd = 500\ntimeout = inf", "scaleengine[0].timeout"),
    ] {
        let err = Config::from_toml_str(&GOOD.replace("budget_usd = 500", value), "t").unwrap_err();
        assert_eq!(err.problems.len(), 1, "{value}: {err}");
        assert_eq!(err.problems[0].path, path, "{err}");
        assert!(err.problems[0].message.contains("nan or inf, which is not a finite number"), "{value}: {err}");
    }
    // A float too big for f64 is a syntax error of TOML's own.
    let err = Config::from_toml_str(&GOOD.replace("500", "1e400"), "t").unwrap_err();
    assert!(err.to_string().contains("invalid floating-point number"), "{err}");
    let err = Config::from_toml_str(&format!("max_series = nan\n{GOOD}"), "t").unwrap_err();
    assert!(err.to_string().contains("max_series: expected a whole number, found nan or inf"), "{err}");
}

#[test]
fn base_url_credentials_are_refused_and_never_printed() {
    for url in [
        "https://user:pa55word@api.example.com/",
        "https://token123@api.example.com/",
        "https://api.example.com/?token=pa55word",
        "https://api.example.com/#pa55word",
    ] {
        let toml = GOOD.replace("budget_usd = 500", &format!("base_url = \"{url}\""));
        let err = Config::from_toml_str(&toml, "t").unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems[0].path, "scaleengine[0].base_url", "{text}");
        assert!(text.contains("credential fields"), "{text}");
        assert!(!text.contains("pa55word") && !text.contains("token123"), "{text}");
    }
    let err = Config::from_toml_str(&GOOD.replace("budget_usd = 500", "base_url = \"ftp://x/\""), "t").unwrap_err();
    assert!(err.to_string().contains("is not an http(s) URL"), "{err}");
}

#[test]
fn big_files_and_secret_files_are_refused_unread() {
    figment::Jail::expect_with(|jail| {
        let big = format!("{GOOD}\n#{}\n", "x".repeat(MAX_CONFIG_BYTES as usize));
        jail.create_file("big.toml", &big)?;
        let err = Config::load(Path::new("big.toml")).unwrap_err();
        assert!(err.to_string().contains("larger than 1048576 bytes"), "{err}");
        let err = Config::from_toml_str(&big, "t").unwrap_err();
        assert!(err.to_string().contains("larger than 1048576 bytes"), "{err}");
        jail.create_file("secret.txt", &"k".repeat(MAX_SECRET_FILE_BYTES as usize + 1))?;
        let toml = GOOD.replace("api_key = \"k\"", "api_key_file = \"secret.txt\"");
        let err = Config::from_toml_str(&toml, "t").unwrap_err();
        assert_eq!(err.problems[0].path, "scaleengine[0].api_key_file", "{err}");
        assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
        jail.create_file("secret.txt", &"k".repeat(MAX_SECRET_BYTES + 1))?;
        let err = Config::from_toml_str(&toml, "t").unwrap_err();
        assert!(err.to_string().contains("longer than 4096 bytes"), "{err}");
        assert!(!err.to_string().contains("kkkk"), "{err}");
        Ok(())
    });
}
