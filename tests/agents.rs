//! `gantry run --agent-listen` with `--platform LABEL=agent:LABEL`, and `gantry agent`
//! processes that connect to it over loopback: the jobs run on the agents; a run without an
//! address for agents is refused as a usage error, and an agent with a wrong token stops.

use std::process::{Child, Command as Process, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo(workflow: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(".github/workflows/ci.yml");
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(&path, workflow).expect("write");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "i",
        ],
    ] {
        let ok = Process::new("git")
            .args(args)
            .current_dir(dir.path())
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    }
    dir
}

/// `gantry run` in `repo` with `linux` jobs on agents it serves on `port`.
fn serving_run(repo: &std::path::Path, port: u16, token: &str) -> Process {
    let mut run = Process::new(assert_cmd::cargo::cargo_bin("gantry"));
    run.args([
        "run",
        "--platform",
        "linux=agent:linux",
        "--agent-listen",
        &format!("127.0.0.1:{port}"),
        "--format",
        "json",
        "--state-dir",
    ])
    .arg(repo.join(".state"))
    .env("GANTRY_AGENT_TOKEN", token)
    .current_dir(repo);
    run
}

#[test]
fn jobs_mapped_to_agents_run_on_gantry_agent_processes() {
    let mut workflow = String::from("on: push\njobs:\n");
    for i in 0..6 {
        workflow.push_str(&format!(
            "  j{i}:\n    runs-on: linux\n    steps:\n      - run: echo \"job {i} on $AGENT_NAME_SEEN\"\n        env:\n          AGENT_NAME_SEEN: ${{{{ runner.name }}}}\n      - run: sleep 0.3\n"
        ));
    }
    let repo = repo(&workflow);
    let port = free_port();
    let bin = assert_cmd::cargo::cargo_bin("gantry");
    let run = serving_run(repo.path(), port, "t0ken")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry run starts");
    let agents: Vec<Killed> = ["one", "two"]
        .into_iter()
        .map(|name| {
            Killed(
                Process::new(&bin)
                    .args([
                        "agent",
                        "--server",
                        &format!("http://127.0.0.1:{port}"),
                        "--labels",
                        "linux",
                        "--name",
                        name,
                        "--capacity",
                        "2",
                    ])
                    .env("GANTRY_AGENT_TOKEN", "t0ken")
                    .current_dir(repo.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("gantry agent starts"),
            )
        })
        .collect();
    let out = run.wait_with_output().expect("the run ends");
    drop(agents);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..6 {
        assert!(
            stdout.contains(&format!("job {i} on ")),
            "job {i} did not print: {stdout}"
        );
    }
}

#[test]
fn agent_targets_need_an_address_to_serve_agents_on() {
    let repo =
        repo("on: push\njobs:\n  a:\n    runs-on: linux\n    steps:\n      - run: echo hi\n");
    let out = Process::new(assert_cmd::cargo::cargo_bin("gantry"))
        .args(["run", "--platform", "linux=agent:linux"])
        .current_dir(repo.path())
        .output()
        .expect("gantry runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--agent-listen"), "{stderr}");
}

#[test]
fn an_agent_with_a_wrong_token_stops_with_an_error() {
    let port = free_port();
    let repo =
        repo("on: push\njobs:\n  a:\n    runs-on: linux\n    steps:\n      - run: sleep 5\n");
    let bin = assert_cmd::cargo::cargo_bin("gantry");
    let _run = Killed(
        serving_run(repo.path(), port, "right")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gantry run starts"),
    );
    // The agent retries while the run starts listening, then is refused.
    let out = Process::new(&bin)
        .args([
            "agent",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--labels",
            "linux",
        ])
        .env("GANTRY_AGENT_TOKEN", "wrong")
        .output()
        .expect("gantry agent runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the agent token"), "{stderr}");
}
