//! Live logs over Server-Sent Events while the job runs (whole lines, offsets as ids,
//! `Last-Event-ID` resume, an end event), and commit statuses posted to a forge on loopback
//! with a link back to the run.

mod common;

use common::*;

const FORGE_WITH_STATUSES: &str = r#"
public_url = "http://ci.example.test"
[[forges]]
kind = "github"
secret_env = "GANTRY_TEST_SECRET"
status_api = "STATUS_API"
token_env = "GANTRY_TEST_FORGE_TOKEN"
"#;

const TICKING: &str = r#"
on: push
jobs:
  tick:
    runs-on: linux
    steps:
      - run: for i in $(seq 1 15); do echo "tick $i"; sleep 0.2; done
"#;

#[tokio::test]
async fn a_live_log_streams_while_the_job_runs_and_resumes_from_the_last_event_id() {
    let (forge_url, posted) = ci_engine::vcs::conformance::loopback_forge(vec![]).await;
    let (repo, sha) = repo(&[(".github/workflows/ci.yml", TICKING)]);
    let server = Server::start(&FORGE_WITH_STATUSES.replace("STATUS_API", &forge_url));
    post_push(&server.url, &push_payload(repo.path(), &sha), "live-1").await;
    let id = the_run(&server).await;
    let path = format!("/api/runs/{id}");
    wait_for(&server, &path, 60, |r| {
        job_status(r, "tick") == Some("running")
    })
    .await;
    let live = format!("{}/api/runs/{id}/jobs/tick/live", server.url);

    // A client that leaves after a few events, while the job still runs …
    let early = read_events(&live, None, 3).await;
    let early_lines = log_lines(&early);
    assert!(!early_lines.is_empty(), "{early:?}");
    let run = get_json(&format!("{}{path}", server.url)).await;
    assert_eq!(
        job_status(&run, "tick"),
        Some("running"),
        "the events came while the job ran"
    );
    let last_id = early
        .iter()
        .rev()
        .find_map(|e| e.id.clone())
        .expect("events carry ids");

    // … and comes back with Last-Event-ID: the rest, nothing twice, then the end.
    let rest = read_events(&live, Some(&last_id), 1000).await;
    assert_eq!(
        rest.last().map(|e| e.event.as_str()),
        Some("end"),
        "{rest:?}"
    );
    let mut all = early_lines.clone();
    all.extend(log_lines(&rest));
    let expected: Vec<String> = (1..=15).map(|i| format!("tick {i}")).collect();
    assert_eq!(all, expected);

    // A client arriving after the end gets the whole log and the end.
    let late = read_events(&live, None, 1000).await;
    assert_eq!(log_lines(&late), expected);
    assert_eq!(late.last().map(|e| e.event.as_str()), Some("end"));

    // Statuses: pending/running then success, for the workflow and the job, linked to the run.
    let run = wait_for(&server, &path, 30, |r| r["run"]["status"] == "success").await;
    assert_eq!(run["run"]["status"], "success");
    let mut states = Vec::new();
    for _ in 0..50 {
        states = posted
            .lock()
            .expect("never poisoned")
            .iter()
            .map(|r| {
                assert_eq!(r.path, format!("/repos/octo/app/statuses/{sha}"));
                assert_eq!(r.header("authorization"), Some("Bearer forge-token"));
                assert_eq!(
                    r.body["target_url"],
                    format!("http://ci.example.test/runs/{id}")
                );
                (
                    r.body["context"].as_str().unwrap_or_default().to_owned(),
                    r.body["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if states.iter().filter(|(_, s)| s == "success").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let of = |needle: &str| -> Vec<&str> {
        states
            .iter()
            .filter(|(c, _)| c.contains(needle))
            .map(|(_, s)| s.as_str())
            .collect()
    };
    assert_eq!(of("tick").first(), Some(&"pending"), "{states:?}");
    assert_eq!(of("tick").last(), Some(&"success"), "{states:?}");
    assert!(
        states
            .iter()
            .any(|(c, s)| !c.contains("tick") && s == "success"),
        "{states:?}"
    );
}
