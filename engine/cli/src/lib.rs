//! The `idflow` command line: verbs, their reports (text or `--json`), progress bars on a
//! terminal, and the benchmarks. It builds the connector registry and hands it to the engine.
#![deny(clippy::unwrap_used, clippy::todo, clippy::unimplemented)]
#![warn(unreachable_pub)]

use clap::{Parser, Subcommand};
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use idflow_engine::{Config, Engine, Mode, RunReport};
use idflow_store::{ReadOps, Store};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod bench;
mod bench_drsr;
mod bench_phs;
mod functions;
pub mod generate;
mod plan_text;
mod progress;
mod render;
mod service_text;

/// Exit codes: 0 done, 1 failed (nothing or part done, see the message), 2 done with errors on
/// some objects, 3 `plan --exit-code` found changes.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_OBJECT_ERRORS: i32 = 2;
pub const EXIT_CHANGES: i32 = 3;

#[derive(Parser, Debug)]
#[command(name = "idflow", version, about = "Hybrid-identity sync: connectors in TOML, rules in Rhai, plans before changes")]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "idflow.toml")]
    pub config: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the configuration and rules (compiles every expression).
    Validate {
        /// Do not open the metaverse database or connectors.
        #[arg(long)]
        offline: bool,
        /// Warnings are errors (exit 1): for CI.
        #[arg(long)]
        strict: bool,
    },
    /// Import connectors into their connector spaces (delta where possible, unless --full).
    Import {
        /// Read every object; objects not read are deleted (only when the read was complete).
        #[arg(long, conflicts_with = "delta")]
        full: bool,
        /// Read only what changed since the last watermark (the default where the connector can).
        #[arg(long)]
        delta: bool,
        /// Accept an import that reads no objects although the connector space holds some.
        #[arg(long)]
        allow_empty: bool,
        /// The connectors to import (default: all).
        connectors: Vec<String>,
    },
    /// Sync connector spaces through the metaverse (delta unless --full or the rules changed).
    Sync {
        /// Run every object through the rules, not only those that changed.
        #[arg(long)]
        full: bool,
    },
    /// Export pending changes to targets.
    Export {
        /// Allow up to N deletes per connector, above the deletion threshold.
        #[arg(long)]
        allow_deletes: Option<usize>,
        /// The connectors to export to (default: all that can be written).
        connectors: Vec<String>,
    },
    /// Show what a run would change in every target, touching nothing.
    Plan {
        /// Exit with 3 when there are changes (for CI and monitoring).
        #[arg(long)]
        exit_code: bool,
        /// List every change; without it, a large group of changes that read alike is one summary with examples.
        #[arg(long)]
        detail: bool,
        /// Save the plan (JSON, owner-only) for `apply --plan` to apply exactly.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Import, sync and export: carry out what `plan` shows.
    Apply {
        /// Allow up to N deletes per connector, above the deletion threshold.
        #[arg(long)]
        allow_deletes: Option<usize>,
        /// Apply exactly this saved plan (`plan --out`); refuse, naming what moved, if what is pending now differs.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// A whole cycle over all connectors: import, sync, export.
    Run {
        /// Allow up to N deletes per connector, above the deletion threshold.
        #[arg(long)]
        allow_deletes: Option<usize>,
    },
    /// Password hash sync: run the stage (only changed hashes are delivered), or check a PPH1 string.
    Phs {
        /// Deliver every hash again, changed or not.
        #[arg(long)]
        full: bool,
        #[command(subcommand)]
        action: Option<PhsAction>,
    },
    /// Measure the password hash sync stage against a bare PBKDF2 loop on all cores.
    BenchPhs {
        /// How many users to generate and hash.
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        /// Where the generated configuration and databases go (wiped first).
        #[arg(long, default_value = "target/bench-phs")]
        dir: PathBuf,
    },
    /// Measure MS-DRSR: pull and decrypt the password hash source's hashes (no PBKDF2, nothing
    /// delivered). Incremental from the stored watermark unless --full; --keep stores the new one.
    BenchDrsr {
        /// Pull every hash, not only those changed since the stored watermark.
        #[arg(long)]
        full: bool,
        /// Store the new watermark (the next password hash sync starts from it).
        #[arg(long)]
        keep: bool,
    },
    /// Why one object ends up the way it does (nothing is changed).
    Preview {
        /// The connector the object is in.
        connector: String,
        /// The object's DN, anchor, or #id.
        object: String,
    },
    /// Run the test cases (*_test.toml) beside the rules.
    Test {
        /// The rule folder (default: every folder in [rules] paths).
        rules_dir: Option<PathBuf>,
    },
    /// The functions rules can call.
    Functions {
        /// Print a Markdown table (name, signature, documentation).
        #[arg(long)]
        markdown: bool,
    },
    /// Run as a service: cycles on the `[service]` schedule and when a directory reports a
    /// change, a control API for `status`, `cycle` and `scheduler`; SIGTERM stops cleanly, SIGHUP reloads.
    Serve,
    /// What the running service is doing: scheduler, current cycle and stage, next runs, each connector.
    Status,
    /// Ask the running service for a cycle now.
    Cycle {
        /// Start it now (queued behind the cycle running, if any).
        #[arg(long, required = true)]
        now: bool,
        /// A full cycle: full import of the connectors and full sync.
        #[arg(long)]
        full: bool,
        /// Wait until the cycle has ended, and exit as it did (0 ok, 2 errors, 1 failed).
        #[arg(long)]
        wait: bool,
        /// The connectors to import (default: all).
        connectors: Vec<String>,
    },
    /// The running service's dashboard: its address, and a link that signs your browser in.
    Dashboard,
    /// Pause or resume the running service's scheduled and change-driven cycles.
    Scheduler {
        #[command(subcommand)]
        action: SchedulerAction,
    },
    /// A copy of the metaverse to keep, as of one moment (runs and the service go on
    /// meanwhile): compacted, checked, readable by its owner alone; never replaces a file.
    Backup {
        /// The file to write (it must not exist).
        to: PathBuf,
    },
    /// Puts a copy `backup` made in place of the metaverse, once no run or service holds it;
    /// the metaverse it replaces is kept beside it. Run `plan` next.
    Restore {
        /// The backup to put back.
        from: PathBuf,
    },
    /// Recent runs and their outcome.
    History {
        /// How many runs to show, newest first.
        #[arg(short = 'n', default_value_t = 10)]
        n: i64,
    },
    /// The errors objects are in now, by category (from the latest run of each stage); exits 2
    /// when there are any.
    Errors {
        /// Only this category (duplicate-attribute, data-mismatch, data-validation-failure,
        /// large-attribute, rule-error, dangling-reference, connectivity, threshold, other).
        #[arg(long)]
        category: Option<String>,
        /// Only errors of this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only this stage (import, sync, export, phs).
        #[arg(long)]
        stage: Option<String>,
        /// Only errors whose object, message, rule or attribute holds these words.
        #[arg(long)]
        search: Option<String>,
        /// text, csv or json (--json is the same as --format json).
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// The service's health alerts, open ones first, then the history of raises and resolves.
    Alerts {
        /// How many alerts of the history to show, newest first.
        #[arg(short = 'n', default_value_t = 20)]
        n: i64,
    },
    /// Pass-through authentication.
    Pta {
        #[command(subcommand)]
        action: PtaAction,
    },
    /// Write a generated directory as LDIF (people with managers, groups, non-ASCII names).
    #[command(hide = true)]
    Generate {
        /// How many people.
        #[arg(long, default_value_t = 1000)]
        people: usize,
        /// How many groups.
        #[arg(long, default_value_t = 50)]
        groups: usize,
        /// The same seed writes the same directory.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The LDIF file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Measure import, sync, plan, export and deltas on a generated directory.
    Bench {
        /// How many people to generate.
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        /// How many groups to generate.
        #[arg(long, default_value_t = 5_000)]
        groups: usize,
        /// Where the generated directory, configuration and databases go (wiped first).
        #[arg(long, default_value = "target/bench")]
        dir: PathBuf,
        /// Delta sizes, in percent of the people.
        #[arg(long, value_delimiter = ',', default_value = "0.1,1")]
        deltas: Vec<f64>,
        /// Run the initial cycle (full import, full sync, plan, export into an empty database)
        /// this many times and print each stage's fastest, median and slowest: one run's time
        /// moves with the machine's load.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum PtaAction {
    /// Check a password as pass-through authentication does (read from standard input, one
    /// line): by a bind to the [pta] connector's directory over LDAPS or StartTLS. Prints the
    /// result (success, invalid_credentials, account_disabled, must_change_password, ...);
    /// exits 0 on success, 2 when refused, 1 when no directory answered.
    Check {
        /// The name the user signs in with (sAMAccountName or userPrincipalName; uid or mail).
        user: String,
    },
    /// Serve only pass-through authentication's front ends ([pta] radius_listen, hook_listen):
    /// no sync, no metaverse (`idflow serve` serves them too, beside the sync).
    Serve,
    /// The relay: the front ends, with passwords checked by the agents that dial in to
    /// [pta] relay_listen (mutual TLS: tls_ca, tls_cert, tls_key).
    Relay,
    /// An agent: dials out to [pta] relay (mutual TLS; it never listens) and checks the
    /// passwords the relay sends against the [pta] connector's directory.
    Agent,
}

#[derive(Subcommand, Debug)]
pub enum SchedulerAction {
    /// No scheduled or change-driven cycles until `resume` (password hash sync goes on, as in Entra Connect).
    Pause,
    /// Cycles run on schedule and on change again.
    Resume,
}

#[derive(Subcommand, Debug)]
pub enum PhsAction {
    /// Reads a cleartext password from standard input (one line, without its newline) and checks
    /// it against a PPH1 string: exit 0 when it matches, 1 when it does not, 2 when the string is malformed.
    Verify {
        /// The PPH1 string (`v1;PPH1_MD4,<salt>,<iterations>,<hash>;`).
        pph1: String,
    },
}

/// Log lines on standard error. The service logs at info (one line per cycle), as JSON when
/// `[service] log_format = "json"`; other verbs warn only unless -v.
fn init_logging(cli: &Cli) {
    let serving = matches!(cli.command, Command::Serve | Command::Pta { action: PtaAction::Serve | PtaAction::Relay | PtaAction::Agent });
    let default = match (cli.verbose, serving) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("idflow={default},warn")));
    let json = serving && Config::load(&cli.config).is_ok_and(|c| c.service.log_format == idflow_engine::LogFormat::Json);
    // Colours only on a terminal: a log file or journald gets plain text.
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { fmt.json().flatten_event(true).try_init() } else { fmt.try_init() };
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
}

fn report(cli: &Cli, r: &RunReport) -> i32 {
    if cli.json {
        print_json(r);
    } else {
        print!("{}", render::summary(r));
    }
    if r.errors.is_empty() {
        0
    } else {
        EXIT_OBJECT_ERRORS
    }
}

fn open(cli: &Cli, registry: Arc<Registry>) -> Result<Engine> {
    let mut e = Engine::open(&cli.config, registry)?;
    if !cli.json && std::io::stderr().is_terminal() {
        e.set_observer(Arc::new(progress::Bars::default()));
    }
    Ok(e)
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli);
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                print_json(&serde_json::json!({ "error": e.to_string() }));
            }
            eprintln!("idflow: {e}");
            EXIT_FAILED
        }
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    let registry = Arc::new(idflow_connectors::builtin());
    let open = |cli: &Cli| open(cli, registry.clone());
    match &cli.command {
        Command::Validate { offline, strict } => {
            let v = Engine::validate(&cli.config, &registry, *offline)?;
            if *strict && !v.warnings.is_empty() {
                for w in &v.warnings {
                    eprintln!("idflow: {w}");
                }
                return Err(Error::Refused(format!("{} warnings, and --strict makes them errors", v.warnings.len())));
            }
            if cli.json {
                let mut j = serde_json::json!({"valid": true, "rules": v.rules, "expressions": v.expressions, "connectors": v.connectors});
                if !v.warnings.is_empty() {
                    j["warnings"] = serde_json::json!(v.warnings);
                }
                print_json(&j);
            } else {
                for w in &v.warnings {
                    println!("warning: {w}");
                }
                println!("valid: {} connectors, {} rules, {} expressions compiled", v.connectors, v.rules, v.expressions);
            }
            Ok(0)
        }
        Command::Import { full, delta: _, allow_empty, connectors } => {
            let mut e = open(cli)?;
            let r = e.import(connectors, if *full { Mode::Full } else { Mode::Delta }, *allow_empty)?;
            Ok(report(cli, &r))
        }
        Command::Sync { full } => {
            let mut e = open(cli)?;
            let r = e.sync(*full)?;
            Ok(report(cli, &r))
        }
        Command::Export { allow_deletes, connectors } => {
            let mut e = open(cli)?;
            let r = e.export(connectors, *allow_deletes)?;
            Ok(report(cli, &r))
        }
        Command::Apply { allow_deletes, plan: None } => {
            let mut e = open(cli)?;
            let r = e.run(*allow_deletes, "apply")?;
            Ok(report(cli, &r))
        }
        Command::Apply { allow_deletes, plan: Some(path) } => {
            let saved = idflow_engine::SavedPlan::read(path)?;
            let mut e = open(cli)?;
            let r = e.apply_plan(&saved, *allow_deletes)?;
            Ok(report(cli, &r))
        }
        Command::Run { allow_deletes } => {
            let mut e = open(cli)?;
            let r = e.run(*allow_deletes, "run")?;
            Ok(report(cli, &r))
        }
        Command::Plan { exit_code, detail, out } => {
            // While the service holds the metaverse, it computes the plan.
            let (saved, notes) = match open(cli) {
                Ok(mut e) => {
                    let (p, r) = e.plan()?;
                    (idflow_engine::SavedPlan::new(&e, p), r.notes)
                }
                Err(err) => match idflow_service::client::Client::connect(&cli.config) {
                    Ok(client) => client.plan()?,
                    Err(_) => return Err(err),
                },
            };
            if let Some(path) = out {
                saved.write(path)?;
            }
            let p = saved.plan;
            let r = RunReport { notes, ..Default::default() };
            if cli.json {
                // Written as its changes are read back: a large plan is never whole in memory.
                #[derive(serde::Serialize)]
                struct Shown<'a> {
                    notes: &'a [String],
                    plan: &'a idflow_engine::Plan,
                }
                use std::io::Write as _;
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                let written = serde_json::to_writer_pretty(&mut w, &Shown { notes: &r.notes, plan: &p });
                let written = written.map_err(std::io::Error::from).and_then(|()| writeln!(w)).and_then(|()| w.flush());
                match written {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    Err(e) => return Err(Error::Refused(format!("cannot write the plan: {e}"))),
                    Ok(()) => {}
                }
            } else {
                print!("{}", plan_text::plan(&p, *detail)?);
                for n in &r.notes {
                    println!("note: {n}");
                }
                if let Some(path) = out {
                    println!("Saved to {}: idflow apply --plan {} applies exactly this plan.", path.display(), path.display());
                }
            }
            Ok(if *exit_code && !p.is_empty() {
                EXIT_CHANGES
            } else if !p.errors.is_empty() || !p.collisions.is_empty() {
                EXIT_OBJECT_ERRORS
            } else {
                0
            })
        }
        Command::Preview { connector, object } => {
            let e = open(cli)?;
            let p = idflow_engine::preview(&e, connector, object)?;
            if cli.json {
                print_json(&p);
            } else {
                print!("{}", render::preview(&p));
            }
            Ok(0)
        }
        Command::Test { rules_dir } => {
            let config = if cli.config.exists() { Some(Config::load(&cli.config)?) } else { None };
            let dirs: Vec<PathBuf> = match (rules_dir, &config) {
                (Some(d), _) => vec![d.clone()],
                (None, Some(c)) => c.rule_paths.clone(),
                (None, None) => return Err(Error::Config(format!("no {} and no RULES_DIR given", cli.config.display()))),
            };
            let mut all = Vec::new();
            for d in dirs {
                all.extend(idflow_engine::test_rules(&d, config.as_ref(), registry.clone())?);
            }
            let failed = all.iter().filter(|r| !r.passed).count();
            if cli.json {
                print_json(&all);
            } else {
                for r in &all {
                    println!("{} {} :: {}", if r.passed { "ok  " } else { "FAIL" }, short(&r.file), r.name);
                    for f in &r.failures {
                        println!("       {f}");
                    }
                }
                println!("{} passed, {} failed", all.len() - failed, failed);
            }
            Ok(if failed > 0 { EXIT_FAILED } else { 0 })
        }
        Command::Phs { action: Some(PhsAction::Verify { pph1 }), .. } => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line).map_err(|e| Error::Refused(format!("reading the password from standard input: {e}")))?;
            let pw = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
            match idflow_engine::phs::pph1::verify(pph1, pw) {
                Ok(true) => {
                    eprintln!("match");
                    Ok(0)
                }
                Ok(false) => {
                    eprintln!("no match");
                    Ok(1)
                }
                Err(e) => {
                    eprintln!("idflow: {e}");
                    Ok(2)
                }
            }
        }
        Command::Phs { full, action: None } => {
            let mut e = open(cli)?;
            let r = e.phs(*full)?;
            Ok(report(cli, &r))
        }
        Command::BenchDrsr { full, keep } => {
            bench_drsr::run(&cli.config, registry.clone(), *full, *keep)?;
            Ok(0)
        }
        Command::BenchPhs { users, dir } => {
            bench_phs::run(registry.clone(), *users, dir)?;
            Ok(0)
        }
        Command::Functions { markdown } => {
            if cli.json {
                print_json(&functions::docs());
            } else {
                print!("{}", functions::render(*markdown));
            }
            Ok(0)
        }
        Command::Serve => idflow_service::serve(&cli.config, registry.clone()),
        Command::Status => {
            let s = idflow_service::client::Client::connect(&cli.config)?.status()?;
            if cli.json {
                print_json(&s);
            } else {
                print!("{}", service_text::status(&s));
            }
            Ok(0)
        }
        Command::Cycle { now: _, full, wait, connectors } => {
            let client = idflow_service::client::Client::connect(&cli.config)?;
            let (m, ticket) = client.cycle(*full, connectors)?;
            if !*wait {
                println!("{m}");
                return Ok(0);
            }
            let last = service_text::wait_for_cycle(&client, ticket)?;
            if cli.json {
                print_json(&last);
            } else {
                print!("{}", service_text::last_cycle(&last));
            }
            Ok(match last.status.as_str() {
                "ok" => 0,
                "errors" => EXIT_OBJECT_ERRORS,
                _ => EXIT_FAILED,
            })
        }
        Command::Dashboard => {
            let (address, link) = idflow_service::client::Client::connect(&cli.config)?.dashboard_links()?;
            if cli.json {
                print_json(&serde_json::json!({ "address": address, "sign_in": link }));
            } else {
                println!("The dashboard: {address}");
                println!("Sign in with this link (once, within 2 minutes; or give the API token on the sign-in page):\n  {link}");
            }
            Ok(0)
        }
        Command::Scheduler { action } => {
            let client = idflow_service::client::Client::connect(&cli.config)?;
            println!("{}", client.scheduler(matches!(action, SchedulerAction::Pause))?);
            Ok(0)
        }
        Command::Backup { to } => {
            let config = Config::load(&cli.config)?;
            let from = &config.metaverse_path;
            let started = std::time::Instant::now();
            let bytes = idflow_store::backup(from, to)?;
            if cli.json {
                print_json(&serde_json::json!({ "metaverse": from, "backup": to, "bytes": bytes }));
            } else {
                println!(
                    "backed up {} to {} ({:.1} MiB, checked) in {:.2} s",
                    from.display(),
                    to.display(),
                    bytes as f64 / 1_048_576.0,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(0)
        }
        Command::Restore { from } => {
            let config = Config::load(&cli.config)?;
            let db = &config.metaverse_path;
            let lock = idflow_store::RunLock::take(db, "restore")?;
            let done = idflow_store::restore(&lock, from, db)?;
            drop(lock);
            if cli.json {
                print_json(
                    &serde_json::json!({ "metaverse": db, "restored": from, "schema_version": done.version, "replaced": done.kept }),
                );
            } else {
                println!("restored {} from {}", db.display(), from.display());
                if let Some(kept) = &done.kept {
                    println!("the metaverse it replaced is kept as {} (with its -wal and -shm files, if any)", kept.display());
                }
                println!(
                    "next: `idflow plan`. What changed in the sources since the backup is imported again; objects exported since \
                     are made again where no outbound rule's join finds them"
                );
            }
            Ok(0)
        }
        Command::History { n } => {
            let config = Config::load(&cli.config)?;
            let store = Store::open(&config.metaverse_path)?;
            let runs = store.read()?.history_recent(*n)?;
            if cli.json {
                print_json(&runs);
            } else {
                print!("{}", render::history(&runs));
            }
            Ok(0)
        }
        Command::Errors { category, connector, stage, search, format } => {
            let filter = error_filter(category.as_deref(), connector.clone(), stage.as_deref(), search.clone())?;
            let config = Config::load(&cli.config)?;
            let store = Store::open(&config.metaverse_path)?;
            let scope = idflow_engine::ErrorScope {
                connectors: config.connectors.iter().map(|c| c.name.clone()).collect(),
                phs: config.password_hash_sync.is_some(),
            };
            let report = idflow_engine::error_report(&store.read()?, &filter, Some(&scope))?;
            match (cli.json, format.as_str()) {
                (true, _) | (_, "json") => print_json(&report),
                (_, "csv") => print!("{}", idflow_engine::error_csv(&report)),
                (_, "text") => print!("{}", render::error_report(&report)),
                (_, other) => return Err(Error::Config(format!("--format {other}: use text, csv or json"))),
            }
            Ok(if report.errors.is_empty() { 0 } else { EXIT_OBJECT_ERRORS })
        }
        Command::Alerts { n } => {
            let config = Config::load(&cli.config)?;
            let store = Store::open(&config.metaverse_path)?;
            let r = store.read()?;
            let (open, history) = (r.alert_open()?, r.alert_history(*n)?);
            if cli.json {
                print_json(&serde_json::json!({ "open": open, "history": history }));
            } else {
                print!("{}", render::alerts(&open, &history));
            }
            Ok(if open.iter().any(|a| a.severity == "critical") { EXIT_OBJECT_ERRORS } else { 0 })
        }
        Command::Pta { action: PtaAction::Serve } => idflow_service::serve_pta(&cli.config, registry.clone()),
        Command::Pta { action: PtaAction::Relay } => idflow_service::serve_pta_role(&cli.config, registry.clone(), true),
        Command::Pta { action: PtaAction::Agent } => idflow_service::serve_pta_role(&cli.config, registry.clone(), false),
        Command::Pta { action: PtaAction::Check { user } } => {
            let config = Config::load(&cli.config)?;
            let check = idflow_engine::password_check(&config, &registry)?;
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line).map_err(|e| Error::Refused(format!("reading the password from standard input: {e}")))?;
            let pw = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
            let c = check.check(user, pw);
            if cli.json {
                print_json(&c);
            } else {
                println!("{}{}", c.result.as_str(), c.server.as_ref().map(|s| format!(" ({s})")).unwrap_or_default());
                if let Some(d) = &c.detail {
                    eprintln!("{d}");
                }
            }
            Ok(match c.result {
                idflow_core::password_check::CheckResult::Success => 0,
                idflow_core::password_check::CheckResult::Unreachable => EXIT_FAILED,
                _ => EXIT_OBJECT_ERRORS,
            })
        }
        Command::Generate { people, groups, seed, out } => {
            let mut f = std::fs::File::create(out).map_err(|e| Error::io(out, "", e))?;
            generate::generate(*people, *groups, *seed, &mut f).map_err(|e| Error::io(out, "", e))?;
            Ok(0)
        }
        Command::Bench { people, groups, dir, deltas, repeat } => {
            bench::run(registry.clone(), *people, *groups, dir, deltas, *repeat as usize)?;
            Ok(0)
        }
    }
}

/// The error report's filter from the command line's words, refusing unknown ones.
pub(crate) fn error_filter(
    category: Option<&str>,
    connector: Option<String>,
    stage: Option<&str>,
    text: Option<String>,
) -> Result<idflow_engine::ErrorFilter> {
    let category = match category {
        None => None,
        Some(c) => Some(idflow_core::Category::parse(c).ok_or_else(|| {
            let known: Vec<&str> = idflow_core::Category::ALL.iter().map(|c| c.as_str()).collect();
            Error::Config(format!("--category {c}: not a category; use one of {}", known.join(", ")))
        })?),
    };
    let stage = match stage {
        None => None,
        Some(s) => {
            Some(idflow_core::Stage::parse(s).ok_or_else(|| Error::Config(format!("--stage {s}: use import, sync, export or phs")))?)
        }
    };
    Ok(idflow_engine::ErrorFilter { category, connector, stage, text })
}

fn short(p: &str) -> String {
    let path = Path::new(p);
    let n = path.components().count();
    path.components().skip(n.saturating_sub(2)).collect::<PathBuf>().display().to_string()
}
