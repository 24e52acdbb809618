//! Schedules fire once per time, across servers sharing a database and across restarts; a
//! fired schedule makes a `schedule` run of the branch's head for the workflows whose
//! `on.schedule` has the cron.

mod common;

use chrono::{TimeZone, Utc};
use gantry_server::config::Config;
use gantry_server::schedule::Entry;
use gantry_server::state::AppState;
use gantry_server::work::Work;

#[tokio::test]
async fn a_schedule_fires_once_per_time_and_makes_a_schedule_run() {
    let workflow = "on:\n  schedule:\n    - cron: '*/15 * * * *'\n  push:\njobs:\n  nightly:\n    runs-on: linux\n    steps:\n      - run: echo nightly\n";
    let other = "on:\n  schedule:\n    - cron: '0 3 * * *'\njobs:\n  other:\n    runs-on: linux\n    steps:\n      - run: echo other\n";
    let (repo, sha) = common::repo(&[
        (".github/workflows/nightly.yml", workflow),
        (".github/workflows/other.yml", other),
    ]);
    let state_dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "state_dir = \"{}\"\n[projects.\"octo/app\"]\nclone_url = \"file://{}\"\n",
        state_dir.path().display(),
        repo.path().display()
    );
    let a = AppState::open(Config::parse(&config).expect("config"))
        .await
        .expect("state");
    // A second server on the same database.
    let b = AppState::open(Config::parse(&config).expect("config"))
        .await
        .expect("state");
    let entry = Entry {
        repo: "octo/app".into(),
        git_ref: "main".into(),
        cron: "*/15 * * * *".into(),
        workflow: None,
    };
    let after = Utc
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .expect("a time");
    let until = Utc
        .with_ymd_and_hms(2026, 11, 23, 10, 30, 0)
        .single()
        .expect("a time");
    assert_eq!(
        a.fire(std::slice::from_ref(&entry), after, until).await,
        2,
        "10:15 and 10:30"
    );
    assert_eq!(
        b.fire(std::slice::from_ref(&entry), after, until).await,
        0,
        "already fired"
    );
    assert_eq!(
        a.fire(std::slice::from_ref(&entry), after, until).await,
        0,
        "already fired"
    );

    // The request makes one run: the workflow whose schedule has this cron.
    let waiting = a
        .queue
        .waiting(gantry_server::state::now_ms())
        .await
        .expect("queue");
    let first = waiting
        .iter()
        .find(|w| w.job.id.starts_with("schedule:"))
        .expect("queued");
    let Ok(Work::Request(request)) = serde_json::from_str::<Work>(&first.job.payload) else {
        panic!("a request: {}", first.job.payload);
    };
    let runs = a
        .request(&first.job.id, &request)
        .await
        .expect("the request is processed");
    assert_eq!(runs.len(), 1);
    let run = a
        .runs
        .get_run(&runs[0])
        .await
        .expect("store")
        .expect("the run");
    assert_eq!(run.run.run.event, "schedule");
    assert_eq!(run.run.run.workflow, ".github/workflows/nightly.yml");
    assert_eq!(run.run.run.sha, sha);
    assert_eq!(run.run.run.git_ref, "refs/heads/main");
}
