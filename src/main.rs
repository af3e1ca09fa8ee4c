//! The `cdn-usage-exporter` command: parse flags, validate configuration before anything
//! starts, then serve, demo, simulate or check.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use cdn_usage_exporter::config::{Config, DEFAULT_PORT, LogFormat};
use cdn_usage_exporter::shard::Shard;
use cdn_usage_exporter::simulator::{Simulator, demo_state};
use cdn_usage_exporter::{app, backfill, demo};

/// Exit code for bad usage or configuration (EX_USAGE of sysexits.h).
const EXIT_CONFIG: u8 = 64;
/// Exit code when the service cannot start (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code of a backfill that wrote everything but some windows.
const EXIT_PARTIAL: u8 = 3;

/// Default port of the standalone simulator.
const SIMULATOR_PORT: u16 = 9863;

#[derive(Debug, Parser)]
#[command(
    name = "cdn-usage-exporter",
    version,
    about = "Prometheus exporter for CDN usage and billing (ScaleEngine, CDNetworks).",
    long_about = "Prometheus exporter for CDN usage and billing (ScaleEngine, CDNetworks).\n\n\
        Polls every configured provider account on its own schedule and serves bandwidth, \
        requests, storage, CPU and billing figures as gauges on /metrics.\n\n\
        Try it without an account:  cdn-usage-exporter demo\n\
        Run it for real:            cdn-usage-exporter --config /etc/cdn-usage-exporter/config.toml",
    after_help = "Configuration reference: README.md and deploy/config.example.toml. Exit codes: 0 ok, 64 bad flags or configuration, 69 cannot start."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// TOML configuration file (required by serve and check-config).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Address to serve /metrics on [default: 0.0.0.0:9862; simulate: 127.0.0.1:9863].
    #[arg(long = "web.listen-address", global = true, value_name = "HOST:PORT")]
    listen_address: Option<SocketAddr>,

    /// Web configuration file (exporter-toolkit format): TLS and basic auth for every endpoint.
    #[arg(long = "web.config.file", global = true, value_name = "PATH")]
    web_config_file: Option<PathBuf>,

    /// Serve POST /-/reload (without it: 403, as in Prometheus; SIGHUP always reloads).
    #[arg(
        long = "web.enable-lifecycle",
        global = true,
        env = "CDN_EXPORTER_WEB_ENABLE_LIFECYCLE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    enable_lifecycle: bool,

    /// Open HTTP connections at most; lowered to fit the open-files limit [default: 512].
    #[arg(long = "web.max-connections", global = true, value_name = "N")]
    max_connections: Option<usize>,

    /// Poll only the accounts whose name hashes into shard I of N (I counted from 1, e.g. 2/3);
    /// overrides the configuration's `shard`. See docs/scaling.md [default: 1/1].
    #[arg(long = "shard", global = true, env = "CDN_EXPORTER_SHARD", value_name = "I/N")]
    shard: Option<Shard>,

    /// Log line format [default: text].
    #[arg(long = "log.format", global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,

    /// Log level: error, warn, info, debug, trace, or a tracing filter directive [default: info].
    #[arg(long = "log.level", global = true, value_name = "LEVEL")]
    log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Poll the configured accounts and serve /metrics (the default).
    Serve,
    /// Run the built-in simulator and the exporter against it: a full /metrics, no account needed.
    Demo,
    /// Run only the provider simulator (ScaleEngine at /stable/, CDNetworks at /api/domain-usage).
    Simulate,
    /// Validate the configuration, print every problem, and exit (0 when valid, 64 when not).
    CheckConfig,
    /// Write history (up to two years) as OpenMetrics for `promtool tsdb create-blocks-from
    /// openmetrics`; see docs/backfill.md. Exits 3 when some windows failed (the rest is written).
    Backfill {
        /// First day, YYYY-MM-DD.
        #[arg(long, value_name = "DATE")]
        from: String,
        /// Last day, YYYY-MM-DD (inclusive; today and later days are not complete yet).
        #[arg(long, value_name = "DATE")]
        to: String,
        /// Output file, or - for standard output.
        #[arg(long, value_name = "FILE")]
        out: String,
        /// Only units whose name starts with this, e.g. cdnetworks/main/static.example.com.
        #[arg(long, value_name = "UNIT")]
        only: Option<String>,
    },
    /// Write every account's bill of a month as a FOCUS 1.2 cost-and-usage CSV (docs/focus.md).
    /// Exits 3 when some account or window could not be fetched (the rest is written).
    Focus {
        /// The month, YYYY-MM [default: last month]; the current month gives its charges to date.
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
        /// Output file, or - for standard output.
        #[arg(long, value_name = "FILE", default_value = "-")]
        out: String,
    },
    /// Probe a running exporter's /healthz on this host (for container HEALTHCHECKs); exits 0
    /// when it answers, 1 when not.
    Healthcheck,
}

fn main() -> ExitCode {
    cdn_usage_exporter::memory::limit_arenas();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn load(cli: &Cli) -> Result<Config, Failure> {
    let Some(path) = &cli.config else {
        return Err((EXIT_CONFIG, "no configuration given. Pass --config PATH (see deploy/config.example.toml), or try `cdn-usage-exporter demo`.".into()));
    };
    let config = Config::load(path).map_err(|e| (EXIT_CONFIG, e.to_string()))?;
    Ok(match cli.shard {
        Some(shard) => Config { shard, ..config },
        None => config,
    })
}

/// `source`, with the command line's shard applied at every (re)load.
fn sharded(cli: &Cli, source: app::ConfigSource) -> app::ConfigSource {
    match cli.shard {
        Some(shard) => app::ConfigSource::Sharded(Box::new(source), shard),
        None => source,
    }
}

fn init_logging(cli: &Cli, config: Option<&Config>) -> Result<(), Failure> {
    let level =
        cli.log_level.clone().or_else(|| config.and_then(|c| c.log_level.clone())).unwrap_or_else(|| "info".into());
    let format = cli.log_format.or_else(|| config.and_then(|c| c.log_format)).unwrap_or_default();
    // Our own crate at the chosen level; dependencies one step quieter unless a directive says otherwise.
    let directive = if level.contains('=') || level.contains(',') {
        level.clone()
    } else {
        format!("warn,cdn_usage_exporter={level}")
    };
    let filter = EnvFilter::try_new(&directive).map_err(|e| {
        (EXIT_CONFIG, format!("--log.level {level:?} is not a level ({e}). Use error, warn, info, debug or trace."))
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
    result.map_err(|e| (EXIT_UNAVAILABLE, format!("cannot set up logging: {e}")))
}

/// A web configuration problem is a configuration problem (64); anything else cannot start (69).
fn start_failure(e: app::StartError) -> Failure {
    match e {
        app::StartError::Web(_) => (EXIT_CONFIG, e.to_string()),
        _ => (EXIT_UNAVAILABLE, e.to_string()),
    }
}

fn web_options(cli: &Cli) -> app::WebOptions {
    app::WebOptions {
        config_file: cli.web_config_file.clone(),
        enable_lifecycle: cli.enable_lifecycle,
        max_connections: cli.max_connections,
    }
}

/// Runtime worker threads at most: an exporter serves a few scrapes, not a CPU-bound load.
const MAX_WORKER_THREADS: usize = 8;
/// Blocking-pool threads at most (DNS lookups of upstream hosts, file reads): the pool must not
/// grow with a burst of clients.
const MAX_BLOCKING_THREADS: usize = 8;

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.clamp(1, MAX_WORKER_THREADS))
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|e| (EXIT_UNAVAILABLE, format!("cannot start the async runtime: {e}")))
}

fn listen(cli: &Cli, config: Option<&Config>, default: SocketAddr) -> SocketAddr {
    cli.listen_address.or_else(|| config.and_then(|c| c.listen_address)).unwrap_or(default)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT))
}

/// GETs /healthz on loopback, over HTTP and then HTTPS (a local probe of a certificate made for
/// another name); 200 is alive, and so is 401 (basic auth guards every endpoint).
async fn healthcheck(port: u16) -> Result<(), Failure> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| (1, format!("cannot build an HTTP client: {e}")))?;
    let mut last = String::new();
    for scheme in ["http", "https"] {
        match client.get(format!("{scheme}://127.0.0.1:{port}/healthz")).send().await {
            Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::UNAUTHORIZED => return Ok(()),
            Ok(r) => last = format!("{scheme}: HTTP {}", r.status()),
            Err(e) => last = format!("{scheme}: {e}"),
        }
    }
    Err((1, format!("exporter on port {port} is not healthy ({last})")))
}

/// A URL a person can open for an address the exporter listens on.
fn browsable(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() { format!("http://127.0.0.1:{}", addr.port()) } else { format!("http://{addr}") }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        None | Some(Command::Serve) => {
            let config = load(&cli)?;
            init_logging(&cli, Some(&config))?;
            let addr = listen(&cli, Some(&config), default_listen());
            let source = sharded(&cli, app::ConfigSource::File(cli.config.clone().unwrap_or_default()));
            let web = web_options(&cli);
            runtime()?.block_on(async {
                let running = app::start_from(source, &config, addr, &web).await.map_err(start_failure)?;
                app::run_until_shutdown(&running).await;
                running.stop().await;
                Ok(())
            })
        }
        Some(Command::CheckConfig) => {
            let config = load(&cli)?;
            let path = cli.config.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
            if config.shard.is_sharded() {
                println!(
                    "{path}: configuration is valid ({} account(s); shard {} keeps {})",
                    config.account_count(),
                    config.shard,
                    config.sharded_account_count()
                );
            } else {
                println!("{path}: configuration is valid ({} account(s))", config.account_count());
            }
            Ok(())
        }
        Some(Command::Demo) => {
            init_logging(&cli, None)?;
            let addr = listen(&cli, None, default_listen());
            runtime()?.block_on(async {
                let sim = Simulator::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), demo_state())
                    .await
                    .map_err(|e| (EXIT_UNAVAILABLE, format!("cannot start the simulator: {e}")))?;
                let toml = demo::toml(&sim.addr.to_string());
                let source = sharded(&cli, app::ConfigSource::Text(toml, demo::SOURCE_NAME.into()));
                let config = source.load().map_err(|e| (EXIT_CONFIG, e.to_string()))?;
                let web = web_options(&cli);
                let running = app::start_from(source, &config, addr, &web).await.map_err(start_failure)?;
                println!(
                    "Demo running: simulator at {}, exporter at {}/metrics (Ctrl-C to stop)",
                    browsable(sim.addr),
                    browsable(running.addr)
                );
                app::run_until_shutdown(&running).await;
                running.stop().await;
                sim.stop().await;
                Ok(())
            })
        }
        Some(Command::Backfill { ref from, ref to, ref out, ref only }) => {
            let config = load(&cli)?;
            init_logging(&cli, Some(&config))?;
            let day = |flag: &str, v: &str| {
                cdn_usage_exporter::timeutil::parse_ymd(v)
                    .filter(|_| v.len() == 10)
                    .ok_or_else(|| (EXIT_CONFIG, format!("--{flag} {v:?} is not a date. Write it as YYYY-MM-DD.")))
            };
            let (from, to) = (day("from", from)?, day("to", to)?);
            if from > to {
                return Err((EXIT_CONFIG, "--from is after --to. Give the first day first.".into()));
            }
            let output = if out == "-" { backfill::Output::Stdout } else { backfill::Output::File(PathBuf::from(out)) };
            let opts = backfill::Options {
                from,
                to,
                out: output,
                only: only.clone(),
                config_path: cli.config.clone().unwrap_or_default(),
            };
            use std::io::IsTerminal as _;
            let progress: std::sync::Arc<dyn backfill::Progress> = if std::io::stderr().is_terminal() {
                std::sync::Arc::new(backfill::BarProgress::new())
            } else {
                std::sync::Arc::new(backfill::LogProgress::default())
            };
            let report = runtime()?
                .block_on(backfill::run(&config, &opts, progress))
                .map_err(|e| (EXIT_UNAVAILABLE, e.to_string()))?;
            eprintln!("backfill: {} samples from {} windows written to {out}", report.samples, report.windows);
            if report.failed.is_empty() {
                return Ok(());
            }
            eprintln!("backfill: {} window(s) failed after retries; fetch each again with:", report.failed.len());
            for f in &report.failed {
                eprintln!("  # {} {}..{}: {}", f.unit, f.from, f.to, f.error.message);
                eprintln!("  {}", f.command(&opts.config_path));
            }
            Err((EXIT_PARTIAL, format!("{} backfill window(s) failed; the rest is in {out}", report.failed.len())))
        }
        Some(Command::Focus { ref month, ref out }) => {
            let config = load(&cli)?;
            init_logging(&cli, Some(&config))?;
            let now = cdn_usage_exporter::timeutil::now_unix();
            let this_month = cdn_usage_exporter::timeutil::month_start(now.div_euclid(86_400));
            let month = match month {
                None => cdn_usage_exporter::timeutil::month_start(this_month - 1),
                Some(m) => cdn_usage_exporter::focus::parse_month(m)
                    .ok_or_else(|| (EXIT_CONFIG, format!("--month {m:?} is not a month. Write it as YYYY-MM.")))?,
            };
            if month > this_month {
                return Err((EXIT_CONFIG, "--month is in the future: it has no charges yet.".into()));
            }
            let report = runtime()?
                .block_on(cdn_usage_exporter::focus::collect::run(&config, month, now))
                .map_err(|e| (EXIT_UNAVAILABLE, e.to_string()))?;
            let text = cdn_usage_exporter::focus::csv(&report.bills);
            write_out(out, &text)?;
            let rows: usize = report.bills.iter().map(|b| b.charges.len()).sum();
            eprintln!("focus: {rows} rows of {} accounts written to {out}", report.bills.len());
            if report.failed.is_empty() {
                return Ok(());
            }
            for f in &report.failed {
                eprintln!("  {f}");
            }
            Err((EXIT_PARTIAL, format!("{} part(s) could not be fetched; the rest is in {out}", report.failed.len())))
        }
        Some(Command::Healthcheck) => {
            let port = cli.listen_address.map_or(DEFAULT_PORT, |a| a.port());
            runtime()?.block_on(healthcheck(port))
        }
        Some(Command::Simulate) => {
            init_logging(&cli, None)?;
            let addr = cli.listen_address.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, SIMULATOR_PORT)));
            runtime()?.block_on(async {
                let sim = Simulator::start(addr, demo_state())
                    .await
                    .map_err(|e| (EXIT_UNAVAILABLE, format!("cannot listen on {addr}: {e}")))?;
                print!("{}", sim.describe());
                println!("Faults: GET/POST {}/_sim/faults (JSON). Ctrl-C to stop.", browsable(sim.addr));
                app::shutdown_signal().await;
                sim.stop().await;
                Ok(())
            })
        }
    }
}

/// Writes `text` to `out` (`-`: standard output), a file through a temporary name renamed into
/// place, so that a reader never sees half of it.
fn write_out(out: &str, text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    if out == "-" {
        return std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| (EXIT_UNAVAILABLE, format!("cannot write to standard output: {e}")));
    }
    let path = PathBuf::from(out);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "focus.csv".into());
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        (EXIT_UNAVAILABLE, format!("cannot write {out}: {e}"))
    })
}
