//! The `riverwatch` command line: parses arguments, loads the config, runs one command and
//! maps its outcome to an exit code (SPEC §2): 0 success, 64 invalid usage or config (a
//! command-line error, a problem in the file, a secret that cannot be read), 69 a service
//! marked `required = true` unreachable at start, 1 anything else.

use clap::{Parser, Subcommand};
use riverwatch::commands::demo;
use riverwatch::{app, config, telemetry};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Water-quality early warning for the rivers Guangzhou and Qingyuan share.
#[derive(Parser)]
#[command(name = "riverwatch", version, propagate_version = true)]
struct Cli {
    /// Log lines on stderr: "text" (one line per event) or "json" (one object per line with
    /// timestamp, level, target, message and the event's fields).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "RIVERWATCH_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: MQTT → quality judgement → InfluxDB, alerts by email and SMS.
    Run {
        /// Config file (default: $RIVERWATCH_CONFIG, else config/riverwatch.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config and print every problem at once.
    CheckConfig {
        /// Config file (default: $RIVERWATCH_CONFIG, else config/riverwatch.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the whole pipeline on simulated stations with an in-process broker.
    Demo(demo::Options),
    /// Judge a file of readings offline: classes, QC flags, trends (JSON lines or CSV).
    Assess {
        /// Readings: CSV with a header `station,ts,<param>...`, or JSON lines with `station`.
        #[arg(long)]
        input: PathBuf,
        /// Config file (default: $RIVERWATCH_CONFIG, else config/riverwatch.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Judge every station by this profile instead of its configured one.
        #[arg(long, value_enum)]
        profile: Option<riverwatch::commands::assess::ProfileChoice>,
        /// Output: JSON lines (SPEC §11) or CSV with a header row.
        #[arg(long, value_enum, default_value = "json")]
        format: riverwatch::commands::assess::OutputFormat,
    },
    /// Publish station readings to a real broker at QoS 1 (load generator, scenario player).
    Simulate {
        /// Config file (default: $RIVERWATCH_CONFIG, else config/riverwatch.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: riverwatch::commands::simulate::Options,
    },
    /// Monthly attainment report of the boundary sections from the stored data.
    Report(riverwatch::commands::report::Options),
    /// HJ 212 tools for station integrators.
    Hj212 {
        #[command(subcommand)]
        command: Hj212Command,
    },
}

#[derive(Subcommand)]
enum Hj212Command {
    /// Decode HJ 212 frames from standard input, one per line, to JSON lines.
    Decode,
}

const EXIT_CONFIG: u8 = 64;
/// A service marked `required = true` did not answer at start (SPEC §2, sysexits' EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// How long `run` waits for a required service to accept a connection at start.
const REQUIRED_TIMEOUT: Duration = Duration::from_secs(5);

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("RIVERWATCH_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/riverwatch.toml"))
}

fn main() -> ExitCode {
    // reqwest 0.11 and lettre use their own rustls; rumqttc uses rustls 0.23, which needs one
    // process-wide crypto provider before the first TLS handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // clap exits 2 on a usage error; SPEC §2 says 64. Help and version are no errors.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    telemetry::init_logging(cli.log_format);
    match cli.command {
        Command::CheckConfig { config } => check_config(&config_path(config)),
        Command::Run { config } => run(&config_path(config)),
        Command::Demo(options) => demo::main(options),
        Command::Simulate { config, options } => simulate(&config_path(config), &options),
        Command::Report(options) => report(&options),
        Command::Assess {
            input,
            config,
            profile,
            format,
        } => {
            let path = config_path(config);
            let cfg = match config::load(&path) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match riverwatch::commands::assess::run(&input, &cfg, profile, format) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(n) => {
                    eprintln!(
                        "{}: {n} rows could not be read (listed above)",
                        input.display()
                    );
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Hj212 {
            command: Hj212Command::Decode,
        } => {
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            match riverwatch::commands::hj212::decode_stream(stdin, stdout) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hj212 decode: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            let n = &cfg.network;
            riverwatch::commands::say(&format!(
                "{}: valid ({} stations, {} rivers, {} bureaus)\n",
                path.display(),
                n.stations.len(),
                n.rivers.len(),
                n.bureaus.len()
            ));
            for note in config::secret_notes(&cfg) {
                riverwatch::commands::say(&format!("  note: {note}\n"));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The validated config and the runtime a long-running command needs, or the exit code that
/// says why not (the reason is already on stderr).
fn config_and_runtime(
    path: &std::path::Path,
) -> Result<(config::Config, tokio::runtime::Runtime), ExitCode> {
    let cfg = config::load(path).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let runtime = app::runtime().ok_or(ExitCode::FAILURE)?;
    Ok((cfg, runtime))
}

fn run(path: &std::path::Path) -> ExitCode {
    let (cfg, runtime) = match config_and_runtime(path) {
        Ok(both) => both,
        Err(code) => return code,
    };
    // Every secret that cannot be read, at once, before anything connects.
    let unreadable = config::unreadable_secrets(&cfg);
    if !unreadable.is_empty() {
        eprintln!(
            "{}: {} secret{} cannot be read",
            path.display(),
            unreadable.len(),
            if unreadable.len() == 1 { "" } else { "s" }
        );
        for why in unreadable {
            eprintln!("  {}: {why}", path.display());
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    runtime.block_on(async {
        if let Err(e) = app::check_required(&cfg, REQUIRED_TIMEOUT).await {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
        // Built inside the runtime: lettre's connection pool spawns its task when built.
        let built = match app::inputs(&cfg).await {
            Ok(inputs) => app::outputs(&cfg).map(|o| (inputs, o)),
            Err(e) => Err(e),
        };
        let (inputs, outputs) = match built {
            Ok(built) => built,
            // A port already taken is no config problem: exit 1, as for the HTTP listener.
            Err(e @ app::BuildError::Hj212Tcp(riverwatch::ingest::hj212_tcp::SetupError::Bind { .. })) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let running = match app::start(&cfg, inputs, outputs) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let http = match riverwatch::http::serve(cfg.http.listen, riverwatch::http::Shared::of(&running)).await {
            Ok((addr, task)) => {
                tracing::info!(%addr, "HTTP listening (/healthz, /readyz, /metrics)");
                task
            }
            Err(e) => {
                tracing::error!(listen = %cfg.http.listen, error = %e, "cannot listen for HTTP (http.listen)");
                running.stop(Duration::from_secs(10)).await;
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(config = %path.display(), stations = cfg.network.stations.len(), "riverwatch running");
        // Under systemd (Type=notify): READY=1, then watchdog pings while the pipeline lives.
        let session = std::sync::Arc::clone(&running.session);
        tokio::select! {
            signal = shutdown_signal() => if let Err(e) = signal {
                tracing::error!(error = %e, "cannot listen for signals; stopping");
            },
            _ = riverwatch::systemd::supervise(|| session.is_subscribed(), || running.ended_stage()) => {}
        }
        riverwatch::systemd::stopping();
        tracing::info!("stopping: draining the pipeline");
        let clean = running.stop(Duration::from_secs(10)).await;
        http.abort();
        tracing::info!(clean, "stopped");
        ExitCode::SUCCESS
    })
}

fn simulate(path: &std::path::Path, options: &riverwatch::commands::simulate::Options) -> ExitCode {
    let (cfg, runtime) = match config_and_runtime(path) {
        Ok(both) => both,
        Err(code) => return code,
    };
    match runtime.block_on(riverwatch::commands::simulate::run(&cfg, options)) {
        Ok((count, seconds)) => {
            riverwatch::commands::say(&format!(
                "{}\n",
                serde_json::json!({
                    "published": count,
                    "seconds": (seconds * 1000.0).round() / 1000.0,
                    "rate": (count as f64 / seconds.max(1e-9)).round(),
                })
            ));
            ExitCode::SUCCESS
        }
        Err(e) if e.is_usage() => {
            eprintln!("simulate: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("simulate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report(options: &riverwatch::commands::report::Options) -> ExitCode {
    let (cfg, runtime) = match config_and_runtime(&config_path(options.config.clone())) {
        Ok(both) => both,
        Err(code) => return code,
    };
    match runtime.block_on(riverwatch::commands::report::run(&cfg, options)) {
        Ok(text) => {
            riverwatch::commands::say(&text);
            ExitCode::SUCCESS
        }
        // A bad option or a config without what the report needs (a secret it cannot read,
        // no [influxdb], no boundary section) is the operator's to fix: 64.
        Err(e) if e.is_usage() => {
            eprintln!("report: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
