//! `gantry-server --config FILE [--check-config]`, and `gantry-server agent …` on the machines
//! that run jobs for it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// The reference CI server: webhooks → a durable queue → runs → live logs and statuses.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, short, default_value = "gantry-server.toml")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs jobs for a server on this machine (its executors map `agent:LABEL`).
    Agent(AgentArgs),
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// The server's address (`http://ci.internal:8080`; https works).
    #[arg(long)]
    server: String,
    /// The environment variable holding the agent token (the server's `agents.token_env`).
    #[arg(long, default_value = "GANTRY_AGENT_TOKEN")]
    token_env: String,
    /// This agent's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// A label this agent offers; repeatable.
    #[arg(long = "label", required = true)]
    labels: Vec<String>,
    /// Jobs at once.
    #[arg(long, default_value_t = 1)]
    capacity: usize,
    /// How jobs run here: host, bwrap, docker://IMAGE, swarm://IMAGE, k8s://IMAGE[?settings].
    #[arg(long, default_value = "host")]
    executor: String,
    /// A PEM file of the certificate authority (or the self-signed certificate) of an
    /// `https://` server whose certificate is not signed by a public one.
    #[arg(long)]
    ca_cert: Option<std::path::PathBuf>,
}

fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: draining");
        on_signal.cancel();
    });
    stop
}

async fn agent(args: AgentArgs) -> Result<()> {
    let token = std::env::var(&args.token_env)
        .with_context(|| format!("environment variable {} is not set", args.token_env))?;
    let options = gantry_server::agent::AgentOptions {
        server: args.server,
        token,
        name: args.name,
        labels: args.labels,
        capacity: args.capacity,
        executor: args.executor,
        ca_cert: args.ca_cert,
    };
    Ok(gantry_server::agent::run_agent_process(options, stop_on_signal()).await?)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "gantry_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::Agent(a)) = args.command {
        return agent(a).await;
    }
    let config = gantry_server::config::Config::load(&args.config)?;
    if args.check_config {
        if let Some(t) = &config.tls {
            gantry_server::tls::acceptor(&t.cert, &t.key)?;
        }
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    gantry_server::serve(config, stop_on_signal()).await
}
