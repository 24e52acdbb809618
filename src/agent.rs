//! `gantry agent`: runs jobs on this machine for a server (`gantry-server`, or a `gantry run
//! --agent-listen`) with one of Gantry's executors; `gantry run`'s side of agents.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use ci_forge::agent::{AgentExecutor, AgentOptions, Hub};
use tokio_util::sync::CancellationToken;

/// The environment variable with the agents' token.
pub(crate) const TOKEN_ENV: &str = "GANTRY_AGENT_TOKEN";

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The server's address (`http://ci.internal:8080`; https is verified).
    #[arg(long)]
    server: String,
    /// The agent token (better given in the environment than on the command line).
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    token: String,
    /// Labels this agent offers (`--labels a,b` or repeated).
    #[arg(
        long = "labels",
        alias = "label",
        value_delimiter = ',',
        required = true
    )]
    labels: Vec<String>,
    /// This agent's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Jobs at once.
    #[arg(long, default_value_t = 1)]
    capacity: usize,
    /// How jobs run here: host, bwrap, docker://IMAGE, swarm://IMAGE, k8s://IMAGE[?settings].
    #[arg(long, default_value = "host")]
    executor: String,
    /// A PEM file of the certificate authority of an `https://` server whose certificate is
    /// not signed by a public one.
    #[arg(long)]
    ca_cert: Option<std::path::PathBuf>,
}

/// Cancelled on SIGTERM or Ctrl-C: the agent drains (no new jobs; running ones finish).
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("gantry agent: draining");
        on_signal.cancel();
    });
    stop
}

pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let options = AgentOptions {
            server: args.server,
            token: args.token,
            name: args.name,
            labels: args.labels,
            capacity: args.capacity,
            executor: args.executor,
            ca_cert: args.ca_cert,
        };
        ci_forge::agent::run_agent_process(options, stop_on_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Agents of one `gantry run`: the hub its `agent:LABEL` executors hand jobs to, served
/// on `listen` until the run ends.
pub(crate) struct Agents {
    hub: Hub,
    stop: CancellationToken,
}

impl Drop for Agents {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How long an agent may go unheard before its jobs run again elsewhere.
const LOST_AFTER: std::time::Duration = std::time::Duration::from_secs(15);

impl Agents {
    /// Serves the agent protocol on `listen` (token from `GANTRY_AGENT_TOKEN`).
    pub(crate) async fn serve(listen: std::net::SocketAddr) -> Result<Agents> {
        let token = std::env::var(TOKEN_ENV).with_context(|| {
            format!("--agent-listen: set {TOKEN_ENV} to the token agents present")
        })?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("--agent-listen {listen}"))?;
        let hub = Hub::default();
        let stop = CancellationToken::new();
        let app = ci_forge::agent::routes(hub.clone(), Some(token));
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
        });
        let (reaper, reaper_stop) = (hub.clone(), stop.clone());
        tokio::spawn(async move { reaper.reap_until(LOST_AFTER, reaper_stop).await });
        Ok(Agents { hub, stop })
    }

    /// The executor of `agent:LABEL`.
    pub(crate) fn executor(&self, label: &str) -> Arc<dyn ci_exec::Executor> {
        Arc::new(AgentExecutor::new(self.hub.clone(), label))
    }
}
