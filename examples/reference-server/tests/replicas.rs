//! Scale-out: two server processes share one Postgres database and one S3 bucket (moto) with
//! nothing on local disk but caches. One is killed (SIGKILL) while it runs a job; the other
//! takes the run over when the lease expires and finishes it, and a live-log client that
//! reconnects to it continues where it stopped. Without Postgres or S3 the test skips loudly,
//! and fails when CI=true.

mod common;

use std::io::Write as _;
use std::process::Command;

use common::*;

fn unavailable(what: String) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {what}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED replicas test: {what}; run `.ci/services start`"
    );
}

fn reachable(host: &str) -> bool {
    host.parse().ok().is_some_and(|addr| {
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok()
    })
}

#[tokio::test]
async fn two_servers_share_postgres_and_s3_and_one_finishes_what_the_other_started() {
    let pg = std::env::var("GANTRY_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://gantry:gantry@127.0.0.1:5432/gantry_test".into());
    let s3 = std::env::var("GANTRY_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    if !reachable("127.0.0.1:5432") && pg.contains("127.0.0.1:5432") {
        return unavailable(format!("no Postgres at {pg}"));
    }
    if !reachable(s3.trim_start_matches("http://")) {
        return unavailable(format!("no S3 server at {s3}"));
    }
    // A schema of its own: the shared test database holds other tests' rows.
    let unique = format!(
        "replicas_{}_{}",
        std::process::id(),
        gantry_server::state::now_ms()
    );
    let made = Command::new("psql")
        .arg(&pg)
        .args(["-q", "-c", &format!("CREATE SCHEMA {unique}")])
        .output();
    match made {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return unavailable(format!(
                "psql could not create a schema: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
        Err(e) => return unavailable(format!("no psql: {e}")),
    }
    let sep = if pg.contains('?') { '&' } else { '?' };
    let database = format!("{pg}{sep}options=-c%20search_path%3D{unique}");
    let env = [
        ("AWS_ENDPOINT", s3.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let config = |id: &str| {
        format!(
            "server_id = \"{id}\"\nworkers = 1\ndatabase = \"{database}\"\nblobs = \"s3://gantry-test/{unique}\"\n[[forges]]\nkind = \"github\"\nsecret_env = \"GANTRY_TEST_SECRET\"\n"
        )
    };
    let workflow = "on: push\njobs:\n  tick:\n    runs-on: linux\n    steps:\n      - run: for i in $(seq 1 30); do echo \"tick $i\"; sleep 0.2; done\n";
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", workflow)]);
    let mut a = Server::start_env(&config("a"), &env);
    let mut b = Server::start_env(&config("b"), &env);
    assert_eq!(
        post_push(&a.url, &push_payload(repo.path(), &sha), &unique)
            .await
            .status(),
        202
    );
    let id = the_run(&a).await;
    let path = format!("/api/runs/{id}");
    // Either server's worker may have taken it: the run is the same through both.
    wait_for(&b, &path, 60, |r| job_status(r, "tick") == Some("running")).await;
    let queue = get_json(&format!("{}/api/runs/{id}", b.url)).await;
    let holder = queue["queue"]["worker"]
        .as_str()
        .expect("a worker holds the run")
        .to_owned();
    let (dying, survivor) = if holder.starts_with("a/") {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // A client follows the live log on the server doing the work …
    let live = |server: &Server| format!("{}/api/runs/{id}/jobs/tick/live", server.url);
    let early = read_events(&live(dying), None, 3).await;
    let shown = log_lines(&early);
    assert!(!shown.is_empty(), "{early:?}");
    let last_id = early.iter().rev().find_map(|e| e.id.clone()).expect("ids");
    dying.kill();

    // … which dies; the other server resumes the run and the client reconnects to it.
    let first_attempt = read_events(
        &format!("{}?attempt=1", live(survivor)),
        Some(&last_id),
        1000,
    )
    .await;
    assert_eq!(
        first_attempt.last().map(|e| e.event.as_str()),
        Some("end"),
        "{first_attempt:?}"
    );
    let mut attempt_one = shown.clone();
    attempt_one.extend(log_lines(&first_attempt));
    assert!(attempt_one.len() >= shown.len(), "nothing shown is lost");
    let run = wait_for(survivor, &path, 90, finished).await;
    assert_eq!(
        run["run"]["status"],
        "success",
        "{run:#}\n{}",
        survivor.log_text()
    );
    assert_eq!(run["queue"]["lost"], 1, "{run:#}");
    let tick = run["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["id"] == "tick"))
        .expect("tick");
    assert_eq!(tick["attempt"], 2);
    let resumed = read_events(&live(survivor), None, 1000).await;
    let expected: Vec<String> = (1..=30).map(|i| format!("tick {i}")).collect();
    assert_eq!(
        log_lines(&resumed),
        expected,
        "the second attempt's whole log, from S3"
    );
    // The first attempt's log as the client saw it is still there, from the other replica.
    let kept = reqwest::get(format!(
        "{}/api/runs/{id}/jobs/tick/log?attempt=1",
        survivor.url
    ))
    .await
    .expect("log")
    .text()
    .await
    .expect("text");
    for line in &shown {
        assert!(
            kept.contains(line.as_str()),
            "{line} was shown and is kept: {kept}"
        );
    }
    let _ = Command::new("psql")
        .arg(&pg)
        .args(["-q", "-c", &format!("DROP SCHEMA {unique} CASCADE")])
        .output();
}
