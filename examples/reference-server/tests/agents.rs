//! Agents over loopback: the executor conformance suite through an agent (the hub's HTTP
//! routes in this process, an agent loop with the host executor reaching them over
//! 127.0.0.1), jobs spread over two agents, and a lost agent's step failing with the reason.

use std::sync::Arc;
use std::time::Duration;

use ci_engine::exec::{conformance, Executor, HostExecutor};
use gantry_server::agent::{run_agent, AgentExecutor, Hub, Register};
use tokio_util::sync::CancellationToken;

mod common;
use common::self_signed;

async fn hub_on_loopback(hub: Hub) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = gantry_server::agent::routes(hub, Some("agent-token".into()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn agent(url: &str, name: &str, capacity: usize, stop: &CancellationToken) {
    let client = gantry_server::agent::client(None).expect("client");
    agent_with(client, url, name, capacity, stop);
}

/// An agent with the host executor and its own HTTP client, labelled `linux`.
fn agent_with(
    client: reqwest::Client,
    url: &str,
    name: &str,
    capacity: usize,
    stop: &CancellationToken,
) {
    let host: Arc<dyn Executor> = Arc::new(HostExecutor {
        grace: Duration::from_millis(300),
        ..HostExecutor::default()
    });
    let (url, name, stop) = (url.to_owned(), name.to_owned(), stop.clone());
    tokio::spawn(async move {
        let register = Register {
            name,
            labels: vec!["linux".into()],
            capacity,
        };
        let token = "agent-token".to_owned();
        let result =
            gantry_server::agent::run_agent_with(client, url, token, register, host, stop).await;
        if let Err(e) = result {
            panic!("the agent stopped: {e}");
        }
    });
}

async fn wait_agents(hub: &Hub, n: usize) {
    for _ in 0..100 {
        if hub.agents().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} agents did not register");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_loopback_passes_the_executor_suite() {
    let hub = Hub::default();
    let url = hub_on_loopback(hub.clone()).await;
    let stop = CancellationToken::new();
    agent(&url, "a1", 4, &stop);
    wait_agents(&hub, 1).await;
    let executor = AgentExecutor::new(hub.clone(), "linux");
    executor.available().await.expect("an agent with the label");
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&executor, dir.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        AgentExecutor::new(hub.clone(), "gpu")
            .available()
            .await
            .is_err(),
        "no agent has 'gpu'"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused() {
    let hub = Hub::default();
    let url = hub_on_loopback(hub.clone()).await;
    let result = run_agent(
        url,
        "wrong".into(),
        Register {
            name: "x".into(),
            labels: vec![],
            capacity: 1,
        },
        Arc::new(HostExecutor::default()),
        CancellationToken::new(),
    )
    .await;
    assert!(result.is_err_and(|e| e.to_string().contains("refused")));
    assert!(hub.agents().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_told_to_stop_finishes_its_job_first() {
    use ci_engine::exec::{JobSpec, Shell, StepOutcome, StepSpec};
    let hub = Hub::default();
    let url = hub_on_loopback(hub.clone()).await;
    let stop = CancellationToken::new();
    let agent_task = {
        let host: Arc<dyn Executor> = Arc::new(HostExecutor::default());
        let (url, stop) = (url.clone(), stop.clone());
        tokio::spawn(async move {
            let register = Register {
                name: "d".into(),
                labels: vec!["linux".into()],
                capacity: 1,
            };
            run_agent(url, "agent-token".into(), register, host, stop).await
        })
    };
    wait_agents(&hub, 1).await;
    let executor = AgentExecutor::new(hub.clone(), "linux");
    let dir = tempfile::tempdir().expect("tempdir");
    let job = JobSpec {
        run_id: "drain".into(),
        job_id: "j".into(),
        workspace: dir.path().to_owned(),
        ..JobSpec::default()
    };
    let env = executor.prepare(&job).await.expect("prepares");
    let step = StepSpec {
        id: "s".into(),
        script: "sleep 1; echo done".into(),
        shell: Shell::Sh,
        ..StepSpec::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.cancel();
        })
    };
    let outcome = env.run_step(&step, tx, CancellationToken::new()).await;
    let mut out = Vec::new();
    while let Some(c) = rx.recv().await {
        out.extend_from_slice(&c.data);
    }
    assert_eq!(outcome, StepOutcome::Exited(0));
    assert_eq!(String::from_utf8_lossy(&out), "done\n");
    stopper.await.expect("stopper");
    assert_eq!(
        hub.agents()[0].capacity,
        0,
        "a draining agent takes no new job"
    );
    env.teardown().await.expect("teardown");
    tokio::time::timeout(Duration::from_secs(30), agent_task)
        .await
        .expect("the agent stops once its job is done")
        .expect("task")
        .expect("no error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reaches_an_https_server_it_trusts_and_only_that() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((cert, key)) = self_signed(dir.path()) else {
        return;
    };
    let hub = Hub::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = gantry_server::tls::acceptor(&cert, &key).expect("a TLS identity");
    let tls = gantry_server::tls::TlsListener::new(listener, acceptor).expect("listening");
    let app = gantry_server::agent::routes(hub.clone(), Some("agent-token".into()));
    tokio::spawn(async move {
        let _ = axum::serve(tls, app).await;
    });
    let url = format!("https://127.0.0.1:{port}");

    // Plain HTTP to the TLS port gets no answer; a client without the certificate refuses.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .is_err());
    let untrusting = gantry_server::agent::client(None).expect("client");
    let refused = untrusting
        .get(format!("{url}/"))
        .send()
        .await
        .expect_err("an unknown certificate is refused");
    assert!(refused.is_connect(), "{refused:?}");

    // The agent given the certificate registers and passes the executor suite over https.
    let stop = CancellationToken::new();
    let client = gantry_server::agent::client(Some(&cert)).expect("client");
    agent_with(client, &url, "tls", 4, &stop);
    wait_agents(&hub, 1).await;
    let executor = AgentExecutor::new(hub.clone(), "linux");
    let work = tempfile::tempdir().expect("tempdir");
    let failures = conformance::run_all(&executor, work.path()).await;
    assert!(failures.is_empty(), "{failures:#?}");
    stop.cancel();
}

#[test]
fn a_broken_tls_identity_is_reported_with_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let Err(e) = gantry_server::tls::acceptor(&missing, &missing) else {
        panic!("no files, no identity");
    };
    assert!(format!("{e:#}").contains("missing.pem"), "{e:#}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not pem\n").expect("write");
    let Err(e) = gantry_server::tls::acceptor(&empty, &empty) else {
        panic!("no certificate, no identity");
    };
    assert!(format!("{e:#}").contains("no certificate"), "{e:#}");
}
