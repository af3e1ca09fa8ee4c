//! The FinOps Foundation's `focus-validator` (PyPI 2.2.1) as a judge of FOCUS 1.2 CSV files: a
//! venv under the target dir, one validator run per file, every rule's outcome parsed, and the
//! per-row checks that the validator makes only per dataset (docs/focus-validator.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{first_python, on_path, pyenv_pythons, run_ok};

/// What pip installs. focus-validator 2.2.1 needs numpy < 2, which has no wheel for Python 3.13,
/// so the venv is made with a 3.12. The libraries that read the CSV (polars), run the checks
/// (duckdb, sqlglot) and type the columns are pinned to the set measured in
/// docs/focus-validator.md, so that a new release cannot change a verdict unnoticed.
const PACKAGES: &[&str] = &[
    "focus-validator==2.2.1",
    "numpy==1.26.4",
    "pyarrow==17.0.0",
    "duckdb==1.5.6",
    "polars==1.44.2",
    "pandas==2.3.3",
    "pandera==0.26.1",
    "sqlglot==27.29.0",
];

/// What a CDN bill supports, claimed by [`Judge::validate`]: usage is measured (ConsumedQuantity
/// and ConsumedUnit are checked). Without it the validator skips every ConsumedQuantity rule.
pub const CDN_CRITERIA: &[&str] = &["USAGE_MEASUREMENT_SUPPORTED"];

/// One validator run is about 2 s; anything near this is a hang.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Its log goes to stderr at WARNING, instead of a DEBUG file in site-packages (the working
/// directory it must run from), which parallel runs would share and rotate.
const LOGGING_YAML: &str = "version: 1
disable_existing_loggers: false
handlers:
  stderr:
    class: logging.StreamHandler
    stream: ext://sys.stderr
    level: WARNING
root:
  level: WARNING
  handlers: [stderr]
";

/// The validator in a venv, ready to run.
#[derive(Clone)]
pub struct Judge {
    validator: PathBuf,
    site_packages: PathBuf,
    logging: PathBuf,
    model: Arc<Model>,
}

/// The judge, made once per test run (the venv is kept in the target dir between runs). `None`
/// after a `SKIPPED:` notice when no Python 3.12, venv or pip is there, unless
/// `CDN_EXPORTER_REQUIRE_TOOLS=1`, under which that is a panic.
pub fn judge() -> Option<Judge> {
    static JUDGE: OnceLock<Option<Judge>> = OnceLock::new();
    JUDGE.get_or_init(make_judge).clone()
}

fn skip(why: String) -> Option<Judge> {
    crate::support::skip_tool("focus-validator", &why, "see docs/focus-validator.md")
}

fn make_judge() -> Option<Judge> {
    let started = Instant::now();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("focus-validator");
    let python = dir.join("bin/python");
    let marker = dir.join("cdn-exporter-packages.txt");
    let wanted = PACKAGES.join("\n");
    let installed = std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted)
        && run_ok(&python, &["-c", "import focus_validator.main, numpy, pyarrow"]);
    if !installed {
        let Some(base) = find_python() else {
            return skip("no Python 3.12 found (python3.12 on PATH, pyenv's versions/3.12.*, python3)".into());
        };
        let venv = Command::new(&base).args(["-m", "venv", "--clear"]).arg(&dir).output();
        match venv {
            Ok(o) if o.status.success() => {}
            Ok(o) => return skip(format!("{} -m venv failed: {}", base.display(), lossy(&o.stderr))),
            Err(e) => return skip(format!("{} -m venv did not run: {e}", base.display())),
        }
        let pip = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "--no-input"])
            .args(PACKAGES)
            .output();
        match pip {
            Ok(o) if o.status.success() => {}
            Ok(o) => return skip(format!("pip install {} failed: {}", PACKAGES.join(" "), lossy(&o.stderr))),
            Err(e) => return skip(format!("pip did not run: {e}")),
        }
        std::fs::write(&marker, &wanted).expect("write the venv's package marker");
        eprintln!("focus-validator: venv made with {} in {:.1?}", base.display(), started.elapsed());
    }
    let where_ = Command::new(&python)
        .args(["-c", "import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))"])
        .output()
        .expect("the venv's python runs");
    assert!(where_.status.success(), "focus_validator does not import: {}", lossy(&where_.stderr));
    let site_packages = PathBuf::from(String::from_utf8_lossy(&where_.stdout).trim());
    let logging = dir.join("logging.yaml");
    std::fs::write(&logging, LOGGING_YAML).expect("write logging.yaml");
    let model = Model::load(&site_packages.join("focus_validator/rules"));
    Some(Judge { validator: dir.join("bin/focus-validator"), site_packages, logging, model: Arc::new(model) })
}

/// Python 3.12: on PATH, then pyenv's 3.12.* (newest first), then `python3` if it is one.
/// 3.13 and later are passed over: numpy < 2 (which focus-validator 2.2.1 requires) and
/// pyarrow < 18 have no wheels for them.
fn find_python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = on_path("python3.12").into_iter().collect();
    candidates.extend(pyenv_pythons(|minor| minor == 12));
    candidates.extend(on_path("python3"));
    first_python(candidates, "import sys; print(sys.version_info[:2] == (3, 12))")
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

impl Judge {
    /// Validates `csv` against FOCUS 1.2 claiming [`CDN_CRITERIA`].
    pub fn validate(&self, csv: &Path) -> Verdict {
        self.validate_with(csv, CDN_CRITERIA)
    }

    /// Validates `csv` against FOCUS 1.2 claiming the applicability `criteria` (none: the
    /// validator's default, which skips every rule that needs one). Panics if the validator
    /// crashes, hangs for [`TIMEOUT`], or prints something this parser does not know.
    pub fn validate_with(&self, csv: &Path, criteria: &[&str]) -> Verdict {
        let file = std::path::absolute(csv).expect("absolute path");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let mut command = Command::new(&self.validator);
        command.arg("--data-file").arg(&file).args(["--validate-version", "1.2"]);
        if !criteria.is_empty() {
            command.args(["--applicability-criteria", &criteria.join(",")]);
        }
        // It opens focus_validator/rules/currency_codes.csv relative to the working directory.
        command
            .current_dir(&self.site_packages)
            .env("LOGGING_CONFIG", &self.logging)
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let (status, stdout, stderr) = run_bounded(command, TIMEOUT);
        let raw = format!("{stdout}{stderr}");
        assert!(status.success(), "focus-validator on {} exited with {status}:\n{raw}", file.display());
        let printed = parse_console(&stdout).unwrap_or_else(|e| panic!("focus-validator's output: {e}\n{raw}"));
        let table = Table::parse(&text);
        let rules = self.model.judge(printed, &table);
        Verdict {
            file,
            criteria: criteria.iter().map(|c| (*c).to_owned()).collect(),
            rules,
            raw,
            elapsed: started.elapsed(),
        }
    }
}

/// Runs focus-validator to the end or kills it after `timeout` (a panic), reading both pipes
/// meanwhile.
fn run_bounded(command: Command, timeout: Duration) -> (std::process::ExitStatus, String, String) {
    crate::support::run_input(command, None, timeout).unwrap_or_else(|e| panic!("focus-validator {e}"))
}

/// A rule's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Checked and met.
    Pass,
    /// Checked and not met.
    Fail,
    /// Not checked: not applicable (criteria), optional, dynamic, or under a skipped rule.
    Skip,
}

/// One line of the validator's console report: rule id, outcome, the text in parentheses.
#[derive(Debug, Clone, PartialEq)]
struct Printed {
    id: String,
    outcome: Outcome,
    detail: String,
}

/// Reads the console report: `=== Validation Results ===`, `Total: N | Pass: P | Fail: F |
/// Skipped: S`, then one `<icon> <RuleId>: PASS|FAIL|SKIPPED  (<details>)` line per rule. The
/// counts must agree with the lines, so a change of format is an error, not an empty verdict.
fn parse_console(stdout: &str) -> Result<Vec<Printed>, String> {
    let mut lines = stdout.lines().skip_while(|l| l.trim() != "=== Validation Results ===").skip(1);
    let total = lines.next().ok_or("no `=== Validation Results ===` section")?;
    let counts: Vec<usize> = total
        .split('|')
        .map(|part| part.rsplit(':').next().unwrap_or_default().trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("summary line {total:?}: {e}"))?;
    let [all, pass, fail, skip] = counts[..] else { return Err(format!("summary line {total:?}")) };
    let mut printed = Vec::new();
    for line in lines.take_while(|l| !l.trim().is_empty() && !l.starts_with("--- ")) {
        let bad = || format!("rule line {line:?}");
        // The icon (✅, ❌, ⏭️ or [PASS]...) comes first, then a space.
        let (_, rest) = line.split_once(' ').ok_or_else(bad)?;
        let (id, rest) = rest.split_once(": ").ok_or_else(bad)?;
        let (status, detail) = rest.split_once("  (").unwrap_or((rest, ""));
        let outcome = match status.trim() {
            "PASS" => Outcome::Pass,
            "FAIL" => Outcome::Fail,
            "SKIPPED" => Outcome::Skip,
            _ => return Err(bad()),
        };
        let detail = detail.strip_suffix(')').unwrap_or(detail).to_owned();
        printed.push(Printed { id: id.to_owned(), outcome, detail });
    }
    let count = |o| printed.iter().filter(|p| p.outcome == o).count();
    let seen = (printed.len(), count(Outcome::Pass), count(Outcome::Fail), count(Outcome::Skip));
    if seen != (all, pass, fail, skip) {
        return Err(format!("{total:?} but read {} rules: {seen:?}", printed.len()));
    }
    Ok(printed)
}

/// One rule as judged.
#[derive(Debug, Clone)]
pub struct RuleResult {
    /// The rule id, e.g. `BilledCost-C-003-M`.
    pub id: String,
    /// The judge's outcome: the validator's, or `Fail` where a per-row check found rows.
    pub outcome: Outcome,
    /// What the validator printed.
    pub validator_outcome: Outcome,
    /// `MUST`, `MUST NOT`, `SHOULD`, `SHOULD NOT`, `RECOMMENDED` or `MAY`, from the validator's
    /// rule model (`None`: the rule is not in it).
    pub keyword: Option<String>,
    /// The rule's sentence from the FOCUS spec.
    pub must_satisfy: String,
    /// The validator's details (violations, reason, message).
    pub detail: String,
    /// What the judge's per-row check found, where it overrode a pass.
    pub judge_note: Option<String>,
    /// The OR composite that passed through another alternative, where this rule is one of its
    /// alternatives (InvoiceId-C-004-C "MUST be null" and -005-C "MUST NOT be null"): its failure
    /// does not count.
    pub excused_by: Option<String>,
    /// Whether its failure counts: failed and not excused.
    pub counts: bool,
    /// Whether its failure counts against a MUST: a MUST or MUST NOT rule (or one missing from the
    /// model) that failed on its own, or a composite with a failed MUST child. A MUST composite
    /// that fails only because a SHOULD child did (PricingUnit-C-000-M over -003-O) is not one.
    pub mandatory_failure: bool,
}

impl RuleResult {
    /// A MUST or MUST NOT rule (or one missing from the model, to fail closed).
    pub fn is_mandatory(&self) -> bool {
        self.keyword.as_deref().is_none_or(|k| k.starts_with("MUST"))
    }
}

impl fmt::Display for RuleResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyword = self.keyword.as_deref().unwrap_or("?");
        write!(f, "{} [{keyword}] {}", self.id, self.must_satisfy)?;
        if let Some(note) = &self.judge_note {
            write!(f, "\n      judge: {note} (the validator said {:?})", self.validator_outcome)?;
        }
        if !self.detail.is_empty() {
            write!(f, "\n      validator: {}", self.detail)?;
        }
        Ok(())
    }
}

/// Every rule's outcome for one file.
pub struct Verdict {
    /// The file, as passed to the validator.
    pub file: PathBuf,
    /// The applicability criteria claimed.
    pub criteria: Vec<String>,
    /// Every rule the validator reported, by id.
    pub rules: Vec<RuleResult>,
    /// Its whole output (stdout, then stderr).
    pub raw: String,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Verdict {
    /// Failures that count against a MUST: see [`RuleResult::mandatory_failure`].
    pub fn failed_mandatory(&self) -> Vec<&RuleResult> {
        self.rules.iter().filter(|r| r.mandatory_failure).collect()
    }

    /// Every failure that counts, SHOULD and MAY included.
    pub fn failed(&self) -> Vec<&RuleResult> {
        self.rules.iter().filter(|r| r.counts).collect()
    }

    /// The ids of [`Verdict::failed_mandatory`].
    pub fn failed_mandatory_ids(&self) -> BTreeSet<&str> {
        self.failed_mandatory().into_iter().map(|r| r.id.as_str()).collect()
    }

    /// The rule `id`, if the validator reported it.
    pub fn rule(&self, id: &str) -> Option<&RuleResult> {
        self.rules.iter().find(|r| r.id == id)
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.rules.iter().filter(|r| r.outcome == outcome).count()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "focus-validator 2.2.1, FOCUS 1.2, criteria [{}], {} ({:.1?}): {} rules, {} passed, {} skipped, {} failed \
             ({} against a MUST)",
            self.criteria.join(","),
            self.file.display(),
            self.elapsed,
            self.rules.len(),
            self.count(Outcome::Pass),
            self.count(Outcome::Skip),
            self.failed().len(),
            self.failed_mandatory().len(),
        )?;
        for rule in self.failed() {
            let tag = if rule.mandatory_failure { "FAILED" } else { "failed (not a MUST)" };
            writeln!(f, "  {tag} {rule}")?;
        }
        for rule in self.rules.iter().filter(|r| r.excused_by.is_some()) {
            writeln!(
                f,
                "  excused {} (an alternative of {}, which passed)",
                rule.id,
                rule.excused_by.as_deref().unwrap_or("")
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The validator's rule model (`rules/model-1.2.0.1.json` in its package).
struct Model {
    rules: BTreeMap<String, ModelRule>,
    /// The composites that refer to each rule.
    parents: BTreeMap<String, Vec<String>>,
}

struct ModelRule {
    keyword: String,
    must_satisfy: String,
    requirement: Value,
    condition: Value,
}

/// A check of one row that the validator makes per dataset or on parsed values only.
enum RowCheck<'a> {
    /// An OR of allowed values (or of allowed pairs): the validator passes it when any row has
    /// any of them; each row must.
    AllowedValues(&'a Value),
    /// `YYYY-MM-DDTHH:mm:ssZ`; the validator sees the column only after parsing it as a timestamp.
    DateTime(&'a str),
    /// FOCUS NumericFormat; the validator sees the column only after parsing it as a number.
    Numeric(&'a str),
    /// A value check under conditions (its own and its parents') with a `X is not "v"` in them,
    /// which the validator compiles as `X IS NOT NULL AND X <> 'v'`: a null X (ChargeClass on
    /// every row that is not a correction) never meets it, so the rule never applies there.
    Conditional { requirement: &'a Value, conditions: Vec<&'a Value> },
    /// NullHandling-A-002-M: no empty (or blank) strings in FOCUS columns, null or not. The
    /// validator skips it as "dynamic"; a quoted `""` passes every "MUST NOT be null" rule.
    NoEmptyStrings,
}

impl Model {
    fn load(rules_dir: &Path) -> Model {
        let file = std::fs::read_dir(rules_dir)
            .expect("the validator's rules dir")
            .filter_map(|e| Some(e.ok()?.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("model-1.2") && n.ends_with(".json"))
            })
            .unwrap_or_else(|| panic!("no model-1.2*.json in {}", rules_dir.display()));
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read the rule model"))
            .expect("the rule model is JSON");
        let rules = json["ModelRules"]
            .as_object()
            .expect("ModelRules")
            .iter()
            .map(|(id, rule)| {
                let criteria = &rule["ValidationCriteria"];
                let rule = ModelRule {
                    keyword: criteria["Keyword"].as_str().unwrap_or_default().to_owned(),
                    must_satisfy: criteria["MustSatisfy"].as_str().unwrap_or_default().to_owned(),
                    requirement: criteria["Requirement"].clone(),
                    condition: criteria["Condition"].clone(),
                };
                (id.clone(), rule)
            })
            .collect::<BTreeMap<String, ModelRule>>();
        let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, rule) in &rules {
            let mut children = Vec::new();
            model_rule_refs(&rule.requirement, &mut children);
            for child in children {
                parents.entry(child.to_owned()).or_default().push(id.clone());
            }
        }
        Model { rules, parents }
    }

    /// The validator's outcomes, with the per-row checks applied, OR alternatives excused and
    /// failures attributed to MUST or not.
    fn judge(&self, printed: Vec<Printed>, table: &Table) -> Vec<RuleResult> {
        let outcome: BTreeMap<&str, Outcome> = printed.iter().map(|p| (p.id.as_str(), p.outcome)).collect();
        let mut results: Vec<RuleResult> = printed
            .iter()
            .map(|p| {
                let model = self.rules.get(&p.id);
                let judge_note = match (p.outcome, self.row_check(&p.id)) {
                    (Outcome::Pass, Some(check)) | (Outcome::Skip, Some(check @ RowCheck::NoEmptyStrings)) => {
                        table.violations(&check)
                    }
                    _ => None,
                };
                RuleResult {
                    id: p.id.clone(),
                    outcome: if judge_note.is_some() { Outcome::Fail } else { p.outcome },
                    validator_outcome: p.outcome,
                    keyword: model.map(|m| m.keyword.clone()),
                    must_satisfy: model.map(|m| m.must_satisfy.clone()).unwrap_or_default(),
                    detail: p.detail.clone(),
                    judge_note,
                    excused_by: None,
                    counts: false,
                    mandatory_failure: false,
                }
            })
            .collect();
        // OR composites of rules that passed: their failed alternatives do not count.
        for (id, rule) in &self.rules {
            if outcome.get(id.as_str()) == Some(&Outcome::Pass) && rule.requirement["CheckFunction"] == "OR" {
                let mut alternatives = Vec::new();
                model_rule_refs(&rule.requirement, &mut alternatives);
                let failed = |r: &RuleResult| r.outcome == Outcome::Fail && alternatives.contains(&r.id.as_str());
                for r in results.iter_mut().filter(|r| failed(r)) {
                    r.excused_by = Some(id.clone());
                }
            }
        }
        for r in &mut results {
            r.counts = r.outcome == Outcome::Fail && r.excused_by.is_none();
        }
        let counts: BTreeMap<String, (bool, bool)> =
            results.iter().map(|r| (r.id.clone(), (r.counts, r.is_mandatory()))).collect();
        let mut memo = BTreeMap::new();
        for r in &mut results {
            r.mandatory_failure = self.mandatory_failure(&r.id, &counts, &mut memo, 0);
        }
        results.sort_by(|a, b| a.id.cmp(&b.id));
        results
    }

    /// Whether rule `id` fails against a MUST: it counts as failed, is mandatory, and either has
    /// no failed child rule (it failed on its own) or has a child that fails against a MUST.
    fn mandatory_failure(
        &self,
        id: &str,
        counts: &BTreeMap<String, (bool, bool)>,
        memo: &mut BTreeMap<String, bool>,
        depth: usize,
    ) -> bool {
        if let Some(&known) = memo.get(id) {
            return known;
        }
        let Some(&(failed, mandatory)) = counts.get(id) else { return false };
        let mut result = failed && mandatory;
        if result && depth < 64 {
            let mut children = Vec::new();
            if let Some(rule) = self.rules.get(id) {
                model_rule_refs(&rule.requirement, &mut children);
            }
            let failed_children: Vec<&str> =
                children.into_iter().filter(|c| counts.get(*c).is_some_and(|&(failed, _)| failed)).collect();
            if !failed_children.is_empty() {
                result = failed_children.iter().any(|c| self.mandatory_failure(c, counts, memo, depth + 1));
            }
        }
        memo.insert(id.to_owned(), result);
        result
    }

    /// The per-row check the judge adds to rule `id`, if any.
    fn row_check(&self, id: &str) -> Option<RowCheck<'_>> {
        if id == "NullHandling-A-002-M" {
            return Some(RowCheck::NoEmptyStrings);
        }
        let rule = self.rules.get(id)?;
        let conditions = self.conditions(id)?;
        let requirement = &rule.requirement;
        let column = || requirement["ColumnName"].as_str();
        match requirement["CheckFunction"].as_str()? {
            "OR" if conditions.is_empty() && only_values(requirement) => Some(RowCheck::AllowedValues(requirement)),
            "FormatDateTime" if conditions.is_empty() => Some(RowCheck::DateTime(column()?)),
            "FormatNumeric" if conditions.is_empty() => Some(RowCheck::Numeric(column()?)),
            "CheckValue" | "CheckNotValue"
                if conditions.iter().all(|c| only_values(c)) && conditions.iter().any(|c| not_value(c)) =>
            {
                Some(RowCheck::Conditional { requirement, conditions })
            }
            _ => None,
        }
    }

    /// The non-empty conditions of rule `id` and of its ancestors (the validator ANDs them);
    /// `None` where a rule has several parents.
    fn conditions(&self, id: &str) -> Option<Vec<&Value>> {
        let mut out = Vec::new();
        let mut id = id;
        for _ in 0..64 {
            let rule = self.rules.get(id)?;
            if rule.condition.as_object().is_some_and(|c| !c.is_empty()) {
                out.push(&rule.condition);
            }
            match self.parents.get(id).map(Vec::as_slice) {
                None | Some([]) => return Some(out),
                Some([parent]) => id = parent,
                Some(_) => return None,
            }
        }
        None
    }
}

/// Ids of every `CheckModelRule` in a requirement tree.
fn model_rule_refs<'a>(requirement: &'a Value, out: &mut Vec<&'a str>) {
    if let Some(id) = requirement.get("ModelRuleId").and_then(Value::as_str) {
        out.push(id);
    }
    for item in requirement.get("Items").and_then(Value::as_array).into_iter().flatten() {
        model_rule_refs(item, out);
    }
}

/// Whether a requirement is made of `CheckValue`, `CheckNotValue`, `AND` and `OR` only.
fn only_values(requirement: &Value) -> bool {
    match requirement["CheckFunction"].as_str() {
        Some("CheckValue" | "CheckNotValue") => requirement["ColumnName"].is_string(),
        Some("AND" | "OR") => requirement["Items"].as_array().is_some_and(|items| items.iter().all(only_values)),
        _ => false,
    }
}

/// Whether a condition holds a `CheckNotValue` of a non-null value.
fn not_value(condition: &Value) -> bool {
    let items = condition["Items"].as_array().into_iter().flatten();
    (condition["CheckFunction"] == "CheckNotValue" && !condition["Value"].is_null()) || items.into_iter().any(not_value)
}

/// A CSV file as the validator reads it: an unquoted empty field is null (`None`), a quoted one
/// (`""`) is an empty string.
struct Table {
    header: Vec<String>,
    /// (line number where the record starts, fields)
    rows: Vec<(usize, Row)>,
}

/// One record's fields: `None` for null.
type Row = Vec<Option<String>>;

impl Table {
    fn parse(text: &str) -> Table {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut records: Vec<(usize, Row)> = Vec::new();
        let mut chars = text.chars().peekable();
        let mut line = 1;
        while chars.peek().is_some() {
            let start = line;
            let mut fields = Vec::new();
            loop {
                let mut field = String::new();
                let mut quoted = false;
                if chars.peek() == Some(&'"') {
                    quoted = true;
                    chars.next();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            '"' => break,
                            c => {
                                line += usize::from(c == '\n');
                                field.push(c);
                            }
                        }
                    }
                }
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '\n' || c == '\r' {
                        break;
                    }
                    field.push(c);
                    chars.next();
                }
                fields.push(if field.is_empty() && !quoted { None } else { Some(field) });
                match chars.next() {
                    Some(',') => continue,
                    Some('\r') if chars.peek() == Some(&'\n') => {
                        chars.next();
                    }
                    _ => {}
                }
                line += 1;
                break;
            }
            if fields.len() > 1 || fields[0].is_some() {
                records.push((start, fields));
            }
        }
        let mut records = records.into_iter();
        let header =
            records.next().map(|(_, h)| h.into_iter().map(Option::unwrap_or_default).collect()).unwrap_or_default();
        Table { header, rows: records.collect() }
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The rows that fail `check`, as a sentence; `None` if none does.
    fn violations(&self, check: &RowCheck<'_>) -> Option<String> {
        let mut bad = Vec::new();
        for (line, row) in &self.rows {
            let cell = |name: &str| self.column(name).and_then(|i| row.get(i).cloned().flatten());
            let found = match check {
                RowCheck::AllowedValues(requirement) => {
                    let mut columns = BTreeSet::new();
                    referenced_columns(requirement, &mut columns);
                    // Null rows are the nullability rules' business; a missing column the
                    // presence rules'.
                    if columns.iter().any(|c| cell(c).is_none()) {
                        continue;
                    }
                    (!matches_values(requirement, &cell)).then(|| {
                        columns
                            .iter()
                            .map(|c| format!("{c}={:?}", cell(c).unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                }
                RowCheck::Conditional { requirement, conditions } => {
                    let mut columns = BTreeSet::new();
                    referenced_columns(requirement, &mut columns);
                    conditions.iter().for_each(|c| referenced_columns(c, &mut columns));
                    // A missing column is the presence rules' business.
                    if columns.iter().any(|c| self.column(c).is_none()) {
                        return None;
                    }
                    let applies = conditions.iter().all(|c| matches_values(c, &cell));
                    (applies && !matches_values(requirement, &cell)).then(|| {
                        let shown = |c: &&str| match cell(c) {
                            Some(v) => format!("{c}={v:?}"),
                            None => format!("{c}=null"),
                        };
                        columns.iter().map(shown).collect::<Vec<_>>().join(", ")
                    })
                }
                RowCheck::NoEmptyStrings => {
                    let blank = |(name, v): (&String, &Option<String>)| {
                        (!name.starts_with("x_") && v.as_deref().is_some_and(|v| v.trim().is_empty()))
                            .then(|| format!("{name}={:?}", v.as_deref().unwrap_or_default()))
                    };
                    let found: Vec<String> = self.header.iter().zip(row).filter_map(blank).collect();
                    (!found.is_empty()).then(|| found.join(", "))
                }
                RowCheck::DateTime(column) => {
                    cell(column).filter(|v| !is_focus_datetime(v)).map(|v| format!("{column}={v:?}"))
                }
                RowCheck::Numeric(column) => {
                    cell(column).filter(|v| !is_focus_numeric(v)).map(|v| format!("{column}={v:?}"))
                }
            };
            if let Some(found) = found {
                bad.push(format!("line {line}: {found}"));
            }
        }
        if bad.is_empty() {
            return None;
        }
        let what = match check {
            RowCheck::AllowedValues(_) => "match none of the allowed values",
            RowCheck::DateTime(_) => "are not YYYY-MM-DDTHH:mm:ssZ",
            RowCheck::Numeric(_) => "are not FOCUS NumericFormat (-?digits[.digits][E-?digits])",
            RowCheck::NoEmptyStrings => "hold an empty string (write null as an empty unquoted field)",
            RowCheck::Conditional { .. } => {
                "fail it once a null X meets `X is not \"v\"` in its conditions (the validator's SQL lets no null meet it)"
            }
        };
        Some(format!("{} row(s) {what}: {}", bad.len(), bad.join("; ")))
    }
}

fn referenced_columns<'a>(requirement: &'a Value, out: &mut BTreeSet<&'a str>) {
    if let Some(c) = requirement.get("ColumnName").and_then(Value::as_str) {
        out.insert(c);
    }
    for item in requirement.get("Items").and_then(Value::as_array).into_iter().flatten() {
        referenced_columns(item, out);
    }
}

/// Evaluates a tree of `CheckValue`, `CheckNotValue`, `AND` and `OR` on one row, as the spec
/// reads: "X is not v" holds for a null X; a number is compared as a number.
fn matches_values(requirement: &Value, cell: &dyn Fn(&str) -> Option<String>) -> bool {
    let items = || requirement["Items"].as_array().into_iter().flatten();
    let equals = || {
        let value = cell(requirement["ColumnName"].as_str().unwrap_or_default());
        match &requirement["Value"] {
            Value::Null => value.is_none(),
            Value::String(s) => value.as_deref() == Some(s.as_str()),
            Value::Number(n) => value.and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| Some(v) == n.as_f64()),
            _ => false,
        }
    };
    match requirement["CheckFunction"].as_str() {
        Some("CheckValue") => equals(),
        Some("CheckNotValue") => !equals(),
        Some("AND") => items().all(|i| matches_values(i, cell)),
        Some("OR") => items().any(|i| matches_values(i, cell)),
        _ => true,
    }
}

/// `YYYY-MM-DDTHH:mm:ssZ` exactly (FOCUS DateTimeFormat), with plausible field ranges.
fn is_focus_datetime(v: &str) -> bool {
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| v[r].parse::<u32>().unwrap_or(99);
    b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z'
        && (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) < 24
        && num(14..16) < 60
        && num(17..19) < 60
}

/// FOCUS NumericFormat: an optional `-` (never `+`), digits with an optional `.digits`, an
/// optional exponent `E` with an optional `-` (a `+` there is forbidden too); no commas,
/// symbols or units.
fn is_focus_numeric(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let v = v.strip_prefix('-').unwrap_or(v);
    let (mantissa, exponent) = match v.split_once(['E', 'e']) {
        Some((m, e)) => (m, Some(e.strip_prefix('-').unwrap_or(e))),
        None => (v, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(digits)
}

// ---------------------------------------------------------------------------------------------
// Tests

const VALID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/focus/valid.csv");

/// Writes `table` back as CSV: `None` as an empty field, an empty string as `""`.
fn write_csv(header: &[String], rows: &[Row]) -> String {
    let field = |v: &Option<String>| match v {
        None => String::new(),
        Some(s) if s.is_empty() || s.contains([',', '"', '\n', '\r']) => format!("\"{}\"", s.replace('"', "\"\"")),
        Some(s) => s.clone(),
    };
    let mut out = header.join(",") + "\n";
    for row in rows {
        out += &row.iter().map(field).collect::<Vec<_>>().join(",");
        out.push('\n');
    }
    out
}

/// The valid fixture with `edit` applied to its header and rows.
fn broken(edit: &dyn Fn(&mut Vec<String>, &mut Vec<Row>)) -> String {
    let table = Table::parse(&std::fs::read_to_string(VALID).expect("the valid fixture"));
    let mut header = table.header.clone();
    let mut rows: Vec<Row> = table.rows.into_iter().map(|(_, r)| r).collect();
    edit(&mut header, &mut rows);
    write_csv(&header, &rows)
}

/// Sets column `name` of row `row` (0: the first data row; `None`: every row) with `value(old)`.
fn set(
    header: &[String],
    rows: &mut [Row],
    name: &str,
    row: Option<usize>,
    value: &dyn Fn(Option<&str>) -> Option<String>,
) {
    let i = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    for (n, r) in rows.iter_mut().enumerate() {
        if row.is_none_or(|row| row == n) {
            r[i] = value(r[i].as_deref());
        }
    }
}

fn to(v: &'static str) -> impl Fn(Option<&str>) -> Option<String> {
    move |_| Some(v.to_owned())
}

#[test]
fn the_valid_fixture_fails_no_rule() {
    let Some(judge) = judge() else { return };
    let table = Table::parse(&std::fs::read_to_string(VALID).expect("the valid fixture"));
    assert_eq!(table.rows.len(), 5);
    for criteria in [CDN_CRITERIA, &[]] {
        let verdict = judge.validate_with(Path::new(VALID), criteria);
        eprintln!("{verdict}");
        assert!(verdict.raw.contains("=== Validation Results ==="), "{}", verdict.raw);
        assert!(verdict.failed_mandatory().is_empty(), "{verdict}");
        assert!(verdict.failed().is_empty(), "not even a SHOULD fails: {verdict}");
        // It did check: the model's column rules ran and passed.
        assert!(verdict.rules.len() > 500, "{verdict}");
        assert!(verdict.rules.iter().filter(|r| r.outcome == Outcome::Pass).count() > 130, "{verdict}");
        for id in [
            "BilledCost-C-000-M",
            "BillingCurrency-C-000-M",
            "ChargeCategory-C-003-M",
            "ChargeFrequency-C-000-O",
            "ChargePeriodStart-C-002-M",
            "InvoiceId-C-003-C",
            "ServiceSubcategory-C-004-M",
            "PricingUnit-C-000-M",
        ] {
            assert_eq!(verdict.rule(id).map(|r| r.outcome), Some(Outcome::Pass), "{id}: {verdict}");
        }
        // Invoiced rows: "InvoiceId MUST be null when not invoiced" fails, as the alternative
        // of an OR that passed.
        assert_eq!(verdict.rule("InvoiceId-C-004-C").and_then(|r| r.excused_by.as_deref()), Some("InvoiceId-C-003-C"));
        let consumed = verdict.rule("ConsumedQuantity-C-000-C").map(|r| r.outcome);
        assert_eq!(consumed, Some(if criteria.is_empty() { Outcome::Skip } else { Outcome::Pass }), "{verdict}");
    }
}

#[test]
fn broken_copies_of_the_valid_fixture_fail_the_named_rules() {
    type Edit = Box<dyn Fn(&mut Vec<String>, &mut Vec<Row>)>;
    // (what, edit, the rules that must then fail against a MUST)
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("BilledCost null", Box::new(|h, r| set(h, r, "BilledCost", Some(0), &|_| None)), &["BilledCost-C-003-M"]),
        (
            "BilledCost all whole numbers",
            Box::new(|h, r| set(h, r, "BilledCost", None, &|v| v.map(|v| v.split('.').next().unwrap_or(v).to_owned()))),
            &["BilledCost-C-001-M"],
        ),
        (
            "BilledCost +98.76",
            Box::new(|h, r| set(h, r, "BilledCost", Some(0), &to("+98.76"))),
            &["BilledCost-C-002-M"],
        ),
        (
            "ChargeCategory Bogus on one row (the validator passes it)",
            Box::new(|h, r| set(h, r, "ChargeCategory", Some(1), &to("Bogus"))),
            &["ChargeCategory-C-003-M"],
        ),
        (
            "ChargeCategory Bogus on every row",
            Box::new(|h, r| set(h, r, "ChargeCategory", None, &to("Bogus"))),
            &["ChargeCategory-C-003-M"],
        ),
        (
            "ServiceSubcategory of another ServiceCategory on one row",
            Box::new(|h, r| set(h, r, "ServiceSubcategory", Some(0), &to("Object Storage"))),
            &["ServiceSubcategory-C-004-M"],
        ),
        (
            "ChargePeriodStart without T and Z",
            Box::new(|h, r| set(h, r, "ChargePeriodStart", Some(0), &to("2026-11-14 00:00:00"))),
            &["ChargePeriodStart-C-002-M"],
        ),
        (
            "BillingPeriodEnd a date only",
            Box::new(|h, r| set(h, r, "BillingPeriodEnd", None, &to("2026-12-01"))),
            &["CostAndUsage-D-010-M"],
        ),
        (
            "InvoiceIssuerName not the ProviderName",
            Box::new(|h, r| set(h, r, "InvoiceIssuerName", Some(0), &to("Fastly Inc."))),
            &["BilledCost-C-005-C"],
        ),
        (
            "BillingAccountId all digits",
            Box::new(|h, r| {
                set(h, r, "BillingAccountId", None, &|v| {
                    Some(if v.is_some_and(|v| v.starts_with("fastly")) { "158" } else { "4242" }.into())
                })
            }),
            &["BillingAccountId-C-002-M"],
        ),
        (
            "ChargeClass an empty string",
            Box::new(|h, r| set(h, r, "ChargeClass", Some(0), &to(""))),
            &["ChargeClass-C-005-C", "NullHandling-A-002-M"],
        ),
        (
            "ServiceName an empty string (the validator passes it)",
            Box::new(|h, r| set(h, r, "ServiceName", Some(0), &to(""))),
            &["NullHandling-A-002-M"],
        ),
        (
            "no ChargeFrequency column",
            Box::new(|h, r| {
                let i = h.iter().position(|c| c == "ChargeFrequency").expect("ChargeFrequency");
                h.remove(i);
                r.iter_mut().for_each(|row| drop(row.remove(i)));
            }),
            &["ChargeFrequency-C-001-M", "ChargeFrequency-C-002-M"],
        ),
        (
            "Purchase with its EffectiveCost",
            Box::new(|h, r| set(h, r, "EffectiveCost", Some(3), &to("450.00"))),
            &["EffectiveCost-C-005-C"],
        ),
        (
            "Tax with a PricingQuantity",
            Box::new(|h, r| {
                set(h, r, "PricingQuantity", Some(2), &to("1.00"));
                set(h, r, "PricingUnit", Some(2), &to("Months"));
            }),
            &["PricingQuantity-C-004-C"],
        ),
        (
            "no PricingQuantity on a usage row (the validator passes it)",
            Box::new(|h, r| {
                set(h, r, "PricingQuantity", Some(0), &|_| None);
                set(h, r, "PricingUnit", Some(0), &|_| None);
            }),
            &["PricingQuantity-C-005-C"],
        ),
        (
            "ConsumedQuantity on the tax row",
            Box::new(|h, r| {
                set(h, r, "ConsumedQuantity", Some(2), &to("1.00"));
                set(h, r, "ConsumedUnit", Some(2), &to("GB"));
            }),
            &["ConsumedQuantity-C-004-C"],
        ),
    ];
    let Some(judge) = judge() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, (what, edit, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("broken-{n}.csv"));
        std::fs::write(&path, broken(edit.as_ref())).expect("write");
        let verdict = judge.validate(&path);
        eprintln!("{what}: {verdict}");
        let failed = verdict.failed_mandatory_ids();
        for id in *expected {
            assert!(failed.contains(id), "{what}: {id} did not fail:\n{verdict}");
        }
    }
    // A SHOULD: a unit outside FOCUS's list fails PricingUnit-C-003-O (and so its MUST
    // composite PricingUnit-C-000-M), but nothing against a MUST.
    let path = dir.path().join("should.csv");
    std::fs::write(&path, broken(&|h, r| set(h, r, "PricingUnit", Some(0), &to("GB-Month")))).expect("write");
    let verdict = judge.validate(&path);
    let failed: BTreeSet<&str> = verdict.failed().into_iter().map(|r| r.id.as_str()).collect();
    assert!(failed.contains("PricingUnit-C-003-O") && failed.contains("PricingUnit-C-000-M"), "{verdict}");
    assert!(verdict.failed_mandatory().is_empty(), "{verdict}");
}

#[test]
fn console_report_is_read_and_checked_against_its_summary() {
    let out = "\n=== Validation Results ===\nTotal: 3 | Pass: 1 | Fail: 1 | Skipped: 1\n\
        ⏭️ A-C-000-C: SKIPPED  (violations=0, reason=rule not applicable, msg=x)\n\
        ❌ B-C-001-M: FAIL  (violations=5, msg=B MUST be NULL., 1.2ms)\n\
        [PASS] C-C-002-M: PASS\n\n--- Failures ---\n- B-C-001-M: violations=5; B MUST be NULL.\n";
    let printed = parse_console(out).expect("parses");
    assert_eq!(printed.len(), 3);
    assert_eq!(
        printed[1],
        Printed {
            id: "B-C-001-M".into(),
            outcome: Outcome::Fail,
            detail: "violations=5, msg=B MUST be NULL., 1.2ms".into()
        }
    );
    assert_eq!(printed[2].outcome, Outcome::Pass);
    assert!(parse_console(&out.replace("Total: 3", "Total: 4")).is_err(), "a count that disagrees is an error");
    assert!(parse_console("Traceback (most recent call last):\n").is_err());
}

#[test]
fn csv_reader_tells_null_from_empty_string_and_line_numbers() {
    let t = Table::parse("\u{feff}A,B,C\r\n1,,\"\"\r\n\"x,\"\"y\"\"\nz\",2,3\n");
    assert_eq!(t.header, ["A", "B", "C"]);
    assert_eq!(t.rows[0], (2, vec![Some("1".into()), None, Some(String::new())]));
    assert_eq!(t.rows[1], (3, vec![Some("x,\"y\"\nz".into()), Some("2".into()), Some("3".into())]));
    let again = Table::parse(&write_csv(&t.header, &t.rows.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()));
    assert_eq!(
        again.rows.iter().map(|(_, r)| r).collect::<Vec<_>>(),
        t.rows.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
}

#[test]
fn focus_formats_are_recognised() {
    for ok in ["2026-11-01T00:00:00Z", "1999-12-31T23:59:59Z"] {
        assert!(is_focus_datetime(ok), "{ok}");
    }
    for bad in [
        "2026-11-01 00:00:00",
        "2026-11-01T00:00:00",
        "2026-11-01T00:00:00.000Z",
        "2026-11-01T00:00:00+00:00",
        "2026-11-01",
        "2026-13-01T00:00:00Z",
    ] {
        assert!(!is_focus_datetime(bad), "{bad}");
    }
    for ok in ["0", "12.00", "-25.50", "9.876E1", "1e-3", "1234.5"] {
        assert!(is_focus_numeric(ok), "{ok}");
    }
    for bad in ["+1", "1,234.50", "1.", ".5", "1E+3", "$1", "1/2", "12 GB", ""] {
        assert!(!is_focus_numeric(bad), "{bad}");
    }
}
