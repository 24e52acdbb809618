//! `gantry-server`, the reference CI server standing on Gantry's crates: webhooks are verified
//! and durably recorded before the 202 ([`api`]); a worker turns each delivery into runs
//! ([`work`]): the commit is fetched into a local mirror ([`git`]), the forge's CI files are
//! found and their triggers applied; runs wait in the durable, capacity-gated
//! [`JobQueue`](ci_engine::store::queue::JobQueue) and are executed by local workers through
//! the engine, which records them in the run store, writes live logs to the blob store and
//! posts commit statuses. Leases carry heartbeats: a server killed mid-run leaves leases that
//! expire (or, restarting under the same `server_id`, are given up at once), and the run
//! resumes where it stopped — finished jobs keep their results.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = gantry_server::config::Config::parse(r#"
//! listen = "127.0.0.1:8080"
//! state_dir = "/var/lib/gantry"
//! [tokens]
//! anonymous_read = true
//! [[forges]]
//! kind = "github"
//! "#)?;
//! gantry_server::serve(config, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

/// Remote agents (the protocol lives in `ci_forge::agent`, shared with `gantry agent`).
pub use ci_forge::agent;
pub mod api;
pub mod config;
pub mod git;
pub mod schedule;
pub mod state;
pub mod tls;
pub mod ui;
pub mod work;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::state::{now_ms, AppState};

/// Runs the server until `stop` is cancelled (then stops taking work and lets running work
/// finish, up to the lease time).
pub async fn serve(config: config::Config, stop: CancellationToken) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    // A broken certificate stops the server before it takes any work.
    let acceptor = match &config.tls {
        Some(t) => Some(tls::acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let state = AppState::open(config).await?;
    // Leases this server held before a restart are lost now, not after they expire.
    let lost = state
        .queue
        .abandon(&format!("{}/intake", state.config.server_id), now_ms())
        .await?;
    let mut requeued = lost.len();
    for i in 0..state.config.workers {
        let worker = format!("{}/worker-{i}", state.config.server_id);
        requeued += state.queue.abandon(&worker, now_ms()).await?.len();
    }
    if requeued > 0 {
        tracing::warn!(requeued, "gave up the leases of the previous process");
    }
    let mut tasks = tokio::task::JoinSet::new();
    let workers_stop = CancellationToken::new();
    tasks.spawn(work::reaper(state.clone(), workers_stop.clone()));
    tasks.spawn(schedule::scheduler(state.clone(), workers_stop.clone()));
    tasks.spawn(work::worker(
        state.clone(),
        format!("{}/intake", state.config.server_id),
        vec![work::INTAKE.to_owned()],
        workers_stop.clone(),
    ));
    for i in 0..state.config.workers {
        tasks.spawn(work::worker(
            state.clone(),
            format!("{}/worker-{i}", state.config.server_id),
            state.config.worker_labels.clone(),
            workers_stop.clone(),
        ));
    }
    let mut app = api::router(state.clone());
    if let Some(agents) = &state.config.agents {
        let token = config::env_value(&agents.token_env)?;
        app = app.merge(agent::routes(state.hub.clone(), Some(token)));
        let (hub, timeout, stop) = (
            state.hub.clone(),
            std::time::Duration::from_secs(agents.timeout_seconds),
            workers_stop.clone(),
        );
        tasks.spawn(async move { hub.reap_until(timeout, stop).await });
    }
    let shutdown = stop.clone();
    let service = app.into_make_service_with_connect_info::<tls::ClientAddr>();
    match acceptor {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor)?;
            tracing::info!(listen = %axum::serve::Listener::local_addr(&listener)?, "gantry-server ready (https)");
            axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await?;
        }
        None => {
            tracing::info!(listen = %listener.local_addr()?, "gantry-server ready");
            axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await?;
        }
    }
    // Drain: no new leases; running work finishes.
    workers_stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
