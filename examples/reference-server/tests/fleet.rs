//! A server with two agent processes on loopback: a DAG's jobs spread over both; an agent
//! killed with SIGKILL mid-job is lost and its job runs again on the other, and the run
//! succeeds.

mod common;

use std::process::{Child, Command, Stdio};

use common::*;

const CONFIG: &str = r#"
workers = 2
[agents]
token_env = "GANTRY_AGENT_TOKEN"
timeout_seconds = 2
[executors]
linux = "agent:linux"
[[forges]]
kind = "github"
secret_env = "GANTRY_TEST_SECRET"
"#;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(server: &Server, name: &str) -> Agent {
    let log = std::fs::File::create(server.dir.path().join(format!("{name}.log"))).expect("log");
    Agent(
        Command::new(env!("CARGO_BIN_EXE_gantry-server"))
            .args([
                "agent",
                "--server",
                &server.url,
                "--name",
                name,
                "--label",
                "linux",
                "--capacity",
                "3",
            ])
            .env("GANTRY_AGENT_TOKEN", "fleet-token")
            .env("RUST_LOG", "gantry_server=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the agent starts"),
    )
}

async fn agents_registered(server: &Server, n: usize) {
    wait_for(server, "/api/queue", 30, |q| {
        q["agents"].as_array().is_some_and(|a| a.len() >= n)
    })
    .await;
}

fn dag(width: usize, layers: usize) -> String {
    let mut w = String::from("on: push\njobs:\n");
    for l in 0..layers {
        for i in 0..width {
            w.push_str(&format!("  j{l}_{i}:\n    runs-on: linux\n"));
            if l > 0 {
                w.push_str(&format!("    needs: [j{}_{i}]\n", l - 1));
            }
            w.push_str("    steps:\n      - run: echo \"ran on $GANTRY_AGENT\"; sleep 0.2\n");
        }
    }
    w
}

async fn log_of(server: &Server, run: &str, job: &str) -> String {
    reqwest::get(format!("{}/api/runs/{run}/jobs/{job}/log", server.url))
        .await
        .expect("log")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn a_dag_spreads_over_two_agents() {
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", &dag(4, 3))]);
    let server = Server::start_env(CONFIG, &[("GANTRY_AGENT_TOKEN", "fleet-token")]);
    let _a = agent(&server, "alpha");
    let _b = agent(&server, "beta");
    agents_registered(&server, 2).await;
    post_push(&server.url, &push_payload(repo.path(), &sha), "fleet-1").await;
    let id = the_run(&server).await;
    let run = wait_for(&server, &format!("/api/runs/{id}"), 120, finished).await;
    assert_eq!(
        run["run"]["status"],
        "success",
        "{run:#}\n{}",
        server.log_text()
    );
    let mut on = std::collections::BTreeSet::new();
    for job in run["jobs"].as_array().expect("jobs") {
        let log = log_of(&server, &id, job["id"].as_str().expect("id")).await;
        let agent = log
            .lines()
            .find_map(|l| l.strip_prefix("ran on "))
            .unwrap_or_default()
            .to_owned();
        assert!(!agent.is_empty(), "{log}");
        on.insert(agent.split('-').next().unwrap_or_default().to_owned());
    }
    assert_eq!(
        on.into_iter().collect::<Vec<_>>(),
        ["alpha", "beta"],
        "both agents ran jobs"
    );
}

#[tokio::test]
async fn a_killed_agent_is_lost_and_its_job_runs_again_on_the_other() {
    let workflow = "on: push\njobs:\n  slow:\n    runs-on: linux\n    steps:\n      - run: echo \"ran on $GANTRY_AGENT\"; sleep 4; echo done\n";
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", workflow)]);
    let server = Server::start_env(CONFIG, &[("GANTRY_AGENT_TOKEN", "fleet-token")]);
    let mut agents = vec![
        ("alpha", agent(&server, "alpha")),
        ("beta", agent(&server, "beta")),
    ];
    agents_registered(&server, 2).await;
    post_push(&server.url, &push_payload(repo.path(), &sha), "fleet-2").await;
    let id = the_run(&server).await;
    // Which agent took the job: its first line says.
    let mut first = String::new();
    for _ in 0..200 {
        first = log_of(&server, &id, "slow").await;
        if first.lines().any(|l| l.starts_with("ran on ")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let holder = first
        .lines()
        .find_map(|l| l.strip_prefix("ran on "))
        .expect("the job started on an agent")
        .split('-')
        .next()
        .unwrap_or_default()
        .to_owned();
    let at = agents
        .iter()
        .position(|(n, _)| *n == holder)
        .expect("a known agent");
    let (_, mut killed) = agents.remove(at);
    killed.0.kill().expect("SIGKILL");
    killed.0.wait().expect("reaped");
    assert!(
        !first.lines().any(|l| l == "done"),
        "killed mid-job: {first}"
    );
    let run = wait_for(&server, &format!("/api/runs/{id}"), 90, finished).await;
    assert_eq!(
        run["run"]["status"],
        "success",
        "{run:#}\n{}",
        server.log_text()
    );
    let slow = run["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["id"] == "slow"))
        .expect("slow");
    assert_eq!(slow["attempt"], 2, "{run:#}");
    let second = log_of(&server, &id, "slow").await;
    let survivor = agents[0].0;
    assert!(
        second.contains(&format!("ran on {survivor}")) && second.contains("done"),
        "{second}"
    );
}
