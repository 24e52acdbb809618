//! The `gantry` command line: argument parsing, terminal rendering and exit codes only.
//! The work lives in the `ci-*` crates.

mod agent;
mod expr;
mod fetch;
mod lint;
mod plan;
mod run;
mod runner;

// Reading large workflows allocates many small nodes; mimalloc is markedly faster at that
// than the system allocator (see the load benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Run GitHub Actions, GitLab CI and CircleCI pipelines locally, exactly as the forge would.
#[derive(Debug, Parser)]
#[command(name = "gantry", version, about, propagate_version = true)]
struct Cli {
    /// More output (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Read CI files as this dialect instead of telling it from the path and the file's shape.
    #[arg(long, global = true, value_enum)]
    dialect: Option<DialectArg>,
    #[command(flatten)]
    fetch: fetch::FetchArgs,
    #[command(subcommand)]
    command: Command,
}

/// A dialect named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DialectArg {
    /// GitHub Actions workflows.
    Github,
    /// GitLab CI pipelines.
    Gitlab,
    /// CircleCI configurations.
    Circleci,
}

impl From<DialectArg> for ci_config::Dialect {
    fn from(d: DialectArg) -> Self {
        match d {
            DialectArg::Github => ci_config::Dialect::GitHubActions,
            DialectArg::Gitlab => ci_config::Dialect::GitLabCi,
            DialectArg::Circleci => ci_config::Dialect::CircleCi,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workflow locally, as the forge would.
    ///
    /// Jobs run on the host unless --platform maps their runs-on label to Docker; the run is
    /// recorded under .gantry/ (see `gantry runs` and `gantry logs`).
    /// Exit status: 0 the run succeeded, 1 it failed or was cancelled, 2 usage or
    /// configuration error.
    Run(Box<run::RunArgs>),
    /// Run jobs for a server on this machine: register with labels, take the jobs of those
    /// labels (`agent:LABEL` executors of `gantry-server` or `gantry run --agent-listen`) and
    /// run them with an executor of this machine. SIGTERM drains.
    Agent(agent::AgentArgs),
    /// Be a Forgejo or Gitea Actions runner: register, then take the forge's jobs and run
    /// them with Gantry's executors.
    #[command(subcommand)]
    ForgejoRunner(runner::ForgejoRunner),
    /// Be a GitLab runner: verify a runner token, then take GitLab's jobs and run them with
    /// Gantry's executors.
    #[command(subcommand)]
    GitlabRunner(runner::GitLabRunner),
    /// List recorded runs, newest first.
    Runs {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per run.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// The state directory (default: .gantry in the repository).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<std::path::PathBuf>,
    },
    /// Print the log of a recorded run's jobs (RUN may be `last`).
    Logs {
        /// The run id (from `gantry runs`), or `last`.
        run: String,
        /// Only this job (its id as shown in the run).
        job: Option<String>,
        /// The state directory (default: .gantry in the repository).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<std::path::PathBuf>,
    },
    /// Print the test results (JUnit reports) of a recorded run's jobs (RUN may be `last`):
    /// counts, failed tests with their messages, the slowest tests.
    /// Exit status: 0 no test failed, 1 some did, 2 usage error.
    Tests {
        /// The run id (from `gantry runs`), or `last`.
        run: String,
        /// Only this job (its id as shown in the run).
        job: Option<String>,
        /// The state directory (default: .gantry in the repository).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<std::path::PathBuf>,
    },
    /// Evaluate a GitHub Actions expression (with or without `${{ }}`).
    ///
    /// Prints {"kind": …, "value": …} and exits 0, or {"error": {"kind", "message"}} and exits 1.
    /// The named values allowed are the top-level keys of the --context object; when it holds
    /// `job.status`, the status functions success(), failure(), always(), cancelled() exist.
    Expr {
        /// The expression.
        #[arg(required_unless_present = "jsonl")]
        expression: Option<String>,
        /// A JSON file with one object of contexts: {"github": {…}, "env": {…}}.
        #[arg(long, value_name = "FILE.json")]
        context: Option<std::path::PathBuf>,
        /// Read {"expr": …, "contexts": {…}} lines on stdin; write one result line each.
        #[arg(long, conflicts_with_all = ["expression", "context"])]
        jsonl: bool,
    },
    /// List the planned jobs: instances (matrix expanded), needs and stages.
    List {
        /// Workflow files or directories (default: the repository's workflows).
        paths: Vec<std::path::PathBuf>,
        #[command(flatten)]
        facts: FactArgs,
    },
    /// Print the job graph.
    Graph {
        /// Workflow files or directories (default: the repository's workflows).
        paths: Vec<std::path::PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = plan::GraphFormat::Dot)]
        format: plan::GraphFormat,
        #[command(flatten)]
        facts: FactArgs,
    },
    /// Check CI files and report every mistake with its location.
    ///
    /// Without paths: the repository's .github/workflows/*.{yml,yaml}, .gitlab-ci.yml and
    /// .circleci/config.yml. A directory stands for the YAML files directly in it.
    /// Exit status: 0 no errors, 1 errors found, 2 usage or I/O error.
    Lint {
        /// Files or directories to check.
        paths: Vec<std::path::PathBuf>,
        /// Print the configuration as the forge builds it instead of checking it: GitLab's
        /// merged configuration (includes, extends, !reference, defaults applied; its "full
        /// configuration" view) or CircleCI's compiled one (`circleci config process`:
        /// parameters, commands, executors, orbs and matrices resolved; also
        /// --show-compiled).
        #[arg(long, visible_alias = "show-compiled")]
        show_merged: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

/// Facts about the run, for planning.
#[derive(Debug, clap::Args)]
struct FactArgs {
    /// The triggering event (default: push).
    #[arg(long, value_name = "NAME")]
    event: Option<String>,
    /// A configuration variable (`vars` context), KEY=VALUE; repeatable.
    #[arg(long = "var", value_name = "K=V", value_parser = plan::key_value)]
    vars: Vec<(String, String)>,
    /// A workflow input (`inputs` context), KEY=VALUE; repeatable.
    #[arg(long = "input", value_name = "K=V", value_parser = plan::key_value)]
    inputs: Vec<(String, String)>,
}

impl FactArgs {
    fn facts(self) -> plan::Facts {
        plan::Facts {
            event: self.event,
            vars: self.vars,
            inputs: self.inputs,
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// rustc-style, with source snippets.
    Human,
    /// One JSON array of diagnostics.
    Json,
}

/// `-v` shows the engine's run, job and step spans with its info events on stderr, `-vv`
/// its debug events too; `RUST_LOG` overrides both.
fn trace(verbose: u8) {
    if verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let level = if verbose > 1 { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("ci_engine={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    trace(cli.verbose);
    fetch::configure(&cli.fetch);
    let dialect = cli.dialect.map(ci_config::Dialect::from);
    let result = match cli.command {
        Command::Lint {
            paths,
            show_merged: true,
            ..
        } => lint::show_merged(&paths, dialect),
        Command::Lint { paths, format, .. } => lint::run(&paths, format, cli.quiet, dialect),
        Command::Run(args) => run::run(*args, cli.quiet, dialect),
        Command::Agent(args) => agent::run(args),
        Command::ForgejoRunner(command) => runner::run(command),
        Command::GitlabRunner(command) => runner::run_gitlab(command),
        Command::Runs {
            limit,
            format,
            state_dir,
        } => run::runs(state_dir.as_deref(), limit, format == Format::Json),
        Command::Logs {
            run,
            job,
            state_dir,
        } => run::logs(state_dir.as_deref(), &run, job.as_deref()),
        Command::Tests {
            run,
            job,
            state_dir,
        } => run::tests(state_dir.as_deref(), &run, job.as_deref()),
        Command::List { paths, facts } => plan::list(&paths, &facts.facts(), dialect),
        Command::Graph {
            paths,
            format,
            facts,
        } => plan::graph(&paths, &facts.facts(), format, dialect),
        Command::Expr { jsonl: true, .. } => expr::run_jsonl(),
        Command::Expr {
            expression,
            context,
            ..
        } => expr::run(
            expression.as_deref().unwrap_or_default(),
            context.as_deref(),
        ),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            anstream::eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
