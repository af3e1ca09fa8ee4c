//! The forecast evaluation of issue 24, full form: `cargo bench --bench forecast_eval`
//! (options after `--`: `--months N` (default 13), `--kinds a,b`, `--rules FILE` (default
//! deploy/prometheus/rules.yml), `--seed N`, `--now YYYY-MM-DD` (the history ends before that
//! day's month; default today), `--seeds A-B` (the whole evaluation once per seed, and a table
//! of each seed's results against the targets: the randomness the method was not tuned on)).
//!
//! Generates hourly billing history of every kind of account, backfills it and the forecast
//! recording rules into a real Prometheus on loopback (promtool and prometheus must be on the
//! PATH), and prints Markdown tables of forecast error, interval coverage and alert timing.

#[path = "../tests/it/forecast_eval/lib.rs"]
mod eval;

use cdn_usage_exporter::timeutil;

fn tool(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("{name} is not on the PATH (Debian: apt-get install prometheus)"))
}

fn main() {
    let mut opts = eval::Options::new(13, &[]);
    let mut seeds = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--months" => opts.months = value().parse().expect("--months N"),
            "--kinds" => opts.kinds = value().split(',').map(str::to_owned).collect(),
            "--rules" => opts.rules = value().into(),
            "--seed" => opts.seed = value().parse().expect("--seed N"),
            "--seeds" => {
                let v = value();
                let (a, b) = v.split_once('-').expect("--seeds A-B");
                seeds = Some(a.parse::<u64>().expect("--seeds A-B")..=b.parse::<u64>().expect("--seeds A-B"));
            }
            "--now" => opts.now = timeutil::parse_ymd(&value()).expect("--now YYYY-MM-DD") * 86_400,
            // cargo bench passes --bench to harness = false benches.
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    let tools = eval::Tools { prometheus: tool("prometheus"), promtool: tool("promtool") };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let started = std::time::Instant::now();
    if let Some(seeds) = seeds {
        let mut runs = Vec::new();
        for seed in seeds.clone() {
            let opts = eval::Options { seed, ..opts.clone() };
            let evaluation = runtime.block_on(eval::run(&opts, &tools)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            eprintln!("seed {seed} done after {:.0} s", started.elapsed().as_secs_f64());
            runs.push((seed, evaluation.summary));
        }
        println!("{}", eval::analysis::seeds_report(&runs));
        println!(
            "Run time {:.1} s.\n\nReproduce: cargo bench --bench forecast_eval -- --months {} --rules {} --seeds {}-{} --now {}",
            started.elapsed().as_secs_f64(),
            opts.months,
            opts.rules.display(),
            seeds.start(),
            seeds.end(),
            timeutil::format_ymd(opts.now.div_euclid(86_400))
        );
        return;
    }
    let evaluation = runtime.block_on(eval::run(&opts, &tools)).unwrap_or_else(|e| panic!("evaluation: {e}"));
    println!("{}", evaluation.report);
    if let Some(row) = evaluation.summary.bucket("4–10") {
        let (old, new) = (row.old.median.unwrap_or(f64::NAN), row.new.median.unwrap_or(f64::NAN));
        println!("Days 4–10, tuning kinds: median APE new {:.1} % vs old {:.1} %.", new * 100.0, old * 100.0);
    }
    let phases: Vec<String> = evaluation.timings.iter().map(|(name, s)| format!("{name} {s:.1} s")).collect();
    println!("Run time {:.1} s: {}.", started.elapsed().as_secs_f64(), phases.join(", "));
    let kinds = if opts.kinds.is_empty() { String::new() } else { format!(" --kinds {}", opts.kinds.join(",")) };
    println!(
        "\nReproduce: cargo bench --bench forecast_eval -- --months {}{kinds} --rules {} --seed {} --now {}",
        opts.months,
        opts.rules.display(),
        opts.seed,
        timeutil::format_ymd(opts.now.div_euclid(86_400))
    );
}
