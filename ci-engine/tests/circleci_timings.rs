//! `circleci tests split --split-by=timings` weighs names by the job's last stored test
//! results: a first run splits by name (no timings yet) and stores JUnit reports with a
//! file per case; the next run of the same job packs the slow file alone on one node.

use std::sync::Arc;

use ci_engine::store::runs::{RunStore, SqliteRunStore};
use ci_engine::{Engine, RunOptions, Source, Status};

const CONFIG: &str = r#"version: 2.1
jobs:
  test:
    machine: true
    parallelism: 2
    steps:
      - run: |
          mkdir -p results
          printf 'slow.py\nquick1.py\nquick2.py\nquick3.py\n' | circleci tests split --split-by=timings > mine.txt
          echo "share: $(tr '\n' ' ' < mine.txt)"
          {
            echo '<testsuite name="suite">'
            while read -r f; do
              case "$f" in slow.py) t=9.5 ;; *) t=1.0 ;; esac
              echo "<testcase file=\"./$f\" classname=\"tests\" name=\"test_$f\" time=\"$t\"/>"
            done < mine.txt
            echo '</testsuite>'
          } > results/junit.xml
      - store_test_results: {path: results}
workflows:
  main:
    jobs: [test]
"#;

/// The `share:` line each node printed, by job instance.
async fn shares(engine: &Engine, store: &SqliteRunStore, run: &str) -> Vec<(String, String)> {
    let details = store.get_run(run).await.expect("store").expect("the run");
    let mut out = Vec::new();
    for (job, steps) in &details.jobs {
        let key = steps[0].log_key.clone().expect("a log");
        let log = ci_engine::job_log(engine.blobs(), run, &key)
            .read_all()
            .await
            .expect("log");
        let text = String::from_utf8_lossy(&log).into_owned();
        let share = text
            .lines()
            .find_map(|l| l.split("share: ").nth(1))
            .unwrap_or_else(|| panic!("no share line in {text}"))
            .trim()
            .to_owned();
        out.push((job.job_id.clone(), share));
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_second_run_splits_by_the_first_runs_timings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteRunStore::open(":memory:").await.expect("store"));
    let engine = Engine::builder()
        .run_store(store.clone())
        .build()
        .await
        .expect("engine");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let source = Source::new(".circleci/config.yml", CONFIG, dir.path());
        let event = source.local_event();
        let summary = engine
            .start(source, event, RunOptions::new())
            .await
            .expect("starts")
            .wait()
            .await;
        assert_eq!(summary.status, Status::Success, "{summary:?}");
        runs.push(summary.run_id);
    }
    // No timings yet: by name, round robin over the sorted names.
    assert_eq!(
        shares(&engine, &store, &runs[0]).await,
        vec![
            ("test 1/2".to_owned(), "quick1.py quick3.py".to_owned()),
            ("test 2/2".to_owned(), "quick2.py slow.py".to_owned()),
        ]
    );
    // Timings from both nodes of the first run: the slow file alone on the first node.
    assert_eq!(
        shares(&engine, &store, &runs[1]).await,
        vec![
            ("test 1/2".to_owned(), "slow.py".to_owned()),
            (
                "test 2/2".to_owned(),
                "quick1.py quick2.py quick3.py".to_owned()
            ),
        ]
    );
}
