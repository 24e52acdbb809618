//! End-to-end tests of `gantry run`: the binary on real workflow files in real temporary git
//! repositories, on the host executor (and on the real dockerd for container cases).

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use assert_cmd::Command;

mod common;
use common::docker_ready;
use serde_json::Value;

/// A temporary git repository with a committed workflow, and a state directory beside it.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(files: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repo { dir };
        for (name, text) in files {
            repo.write(name, text);
        }
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["add", "-A"]);
        repo.git(&[
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "initial",
        ]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn git(&self, args: &[&str]) {
        let status = Process::new("git")
            .args(args)
            .current_dir(self.path())
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    fn state(&self) -> PathBuf {
        self.path().join(".gantry-state")
    }

    fn cmd(&self, workflow: &str, args: &[&str]) -> Command {
        let mut cmd = common::gantry();
        cmd.current_dir(self.path())
            .arg("run")
            .arg(workflow)
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .timeout(Duration::from_secs(120));
        cmd
    }

    /// Runs with `--format json`; returns the exit code and the events.
    fn run(&self, workflow: &str, args: &[&str]) -> Run {
        let out = self
            .cmd(workflow, &[&["--format", "json"], args].concat())
            .output()
            .expect("gantry runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let events = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        Run {
            code: out.status.code().unwrap_or(-1),
            events,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `gantry ARGS --state-dir STATE` in the repository; expects success, returns stdout.
    fn state_cmd(&self, args: &[&str]) -> String {
        let out = common::gantry()
            .current_dir(self.path())
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `gantry logs RUN [JOB]`.
    fn logs(&self, run: &str, job: Option<&str>) -> String {
        let mut args = vec!["logs", run];
        args.extend(job);
        self.state_cmd(&args)
    }
}

struct Run {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Run {
    fn of(&self, kind: &str) -> impl Iterator<Item = &Value> {
        let kind = kind.to_owned();
        self.events.iter().filter(move |e| e["event"] == kind)
    }

    /// The last status reported for a job.
    fn status(&self, job: &str) -> String {
        self.of("job_finished")
            .filter(|e| e["job"] == job)
            .last()
            .and_then(|e| e["status"].as_str())
            .unwrap_or_else(|| panic!("no result for job '{job}' in {:#?}", self.events))
            .to_owned()
    }

    fn lines(&self, job: &str) -> Vec<String> {
        self.of("log")
            .filter(|e| e["job"] == job)
            .filter_map(|e| e["line"].as_str().map(str::to_owned))
            .collect()
    }

    fn jobs(&self) -> Vec<String> {
        let mut jobs: Vec<String> = self
            .of("job_finished")
            .filter_map(|e| e["job"].as_str().map(str::to_owned))
            .collect();
        jobs.sort();
        jobs.dedup();
        jobs
    }

    fn run_id(&self) -> String {
        self.of("run_finished")
            .next()
            .and_then(|e| e["run_id"].as_str())
            .expect("a run_finished event")
            .to_owned()
    }

    fn debug(&self) -> String {
        format!(
            "exit {}\nstderr: {}\nevents: {:#?}",
            self.code, self.stderr, self.events
        )
    }
}

const WF: &str = ".github/workflows/ci.yml";

#[test]
fn matrix_with_include_and_exclude() {
    let repo = Repo::new(&[(
        WF,
        r#"
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        os: [linux, mac]
        v: [1, 2]
        exclude:
          - os: mac
            v: 1
        include:
          - os: linux
            v: 2
            extra: yes
          - os: bsd
            v: 3
    steps:
      - run: echo "${{ matrix.os }}/${{ matrix.v }}/${{ matrix.extra }} ${{ strategy.job-index }}/${{ strategy.job-total }}"
"#,
    )]);
    let run = repo.run(WF, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(
        run.jobs(),
        [
            "test (bsd, 3)",
            "test (linux, 1)",
            "test (linux, 2, yes)",
            "test (mac, 2)"
        ]
    );
    assert!(run
        .lines("test (linux, 2, yes)")
        .iter()
        .any(|l| l.starts_with("linux/2/yes ")));
    // --matrix narrows the run.
    let run = repo.run(WF, &["--matrix", "os:mac"]);
    assert_eq!(run.status("test (mac, 2)"), "success");
    assert_eq!(run.status("test (linux, 1)"), "skipped");
}

#[test]
fn secrets_are_masked_in_terminal_and_stored_logs() {
    let repo = Repo::new(&[(
        WF,
        r#"
on: push
jobs:
  leak:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "token is ${{ secrets.API_TOKEN }}"
          echo "env has $TOKEN"
          echo "::add-mask::dynamic-value-42"
          echo "later dynamic-value-42"
        env:
          TOKEN: ${{ secrets.API_TOKEN }}
"#,
    )]);
    let out = repo
        .cmd(WF, &["--secret", "API_TOKEN=hunter2-very-secret"])
        .output()
        .expect("runs");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{terminal}");
    assert!(!terminal.contains("hunter2-very-secret"), "{terminal}");
    assert!(!terminal.contains("dynamic-value-42"), "{terminal}");
    assert!(terminal.contains("token is ***"), "{terminal}");
    let stored = repo.logs("last", Some("leak"));
    assert!(stored.contains("env has ***"), "{stored}");
    assert!(!stored.contains("hunter2-very-secret"), "{stored}");
    assert!(!stored.contains("dynamic-value-42"), "{stored}");
}

#[test]
fn local_reusable_workflow_with_inputs_secrets_and_outputs() {
    let repo = Repo::new(&[
        (
            WF,
            r#"
on: push
jobs:
  call:
    uses: ./.github/workflows/reusable.yml
    with:
      name: caller
      count: 3
    secrets:
      key: ${{ secrets.DEPLOY_KEY }}
  after:
    needs: call
    runs-on: ubuntu-latest
    steps:
      - run: echo "reusable gave ${{ needs.call.outputs.greeting }}"
"#,
        ),
        (
            ".github/workflows/reusable.yml",
            r#"
on:
  workflow_call:
    inputs:
      name: { type: string, required: true }
      count: { type: number, default: 1 }
    secrets:
      key: { required: true }
    outputs:
      greeting:
        value: ${{ jobs.inner.outputs.g }}
jobs:
  inner:
    runs-on: ubuntu-latest
    outputs:
      g: ${{ steps.s.outputs.g }}
    steps:
      - id: s
        run: |
          echo "name=${{ inputs.name }} count=${{ inputs.count }} key=${{ secrets.key }}"
          echo "g=hello-${{ inputs.name }}" >> "$GITHUB_OUTPUT"
"#,
        ),
    ]);
    let run = repo.run(WF, &["--secret", "DEPLOY_KEY=abc-secret"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(run.status("call / inner"), "success");
    assert_eq!(run.status("call"), "success");
    assert!(run
        .lines("call / inner")
        .contains(&"name=caller count=3 key=***".to_owned()));
    assert!(run
        .lines("after")
        .contains(&"reusable gave hello-caller".to_owned()));
}

#[test]
fn artifacts_pass_between_jobs() {
    let repo = Repo::new(&[(
        WF,
        r#"
on: push
jobs:
  make:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p out/sub && echo data1 > out/a.txt && echo data2 > out/sub/b.txt && echo skip > out/c.log
      - uses: actions/upload-artifact@v4
        with:
          name: bundle
          path: |
            out/
            !out/*.log
  use:
    needs: make
    runs-on: ubuntu-latest
    steps:
      - uses: actions/download-artifact@v4
        with:
          name: bundle
          path: got
      - run: cat got/a.txt got/sub/b.txt && test ! -e got/c.log && echo no-log
"#,
    )]);
    let run = repo.run(WF, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let lines = run.lines("use");
    for want in ["data1", "data2", "no-log"] {
        assert!(lines.contains(&want.to_owned()), "{lines:#?}");
    }
}

#[test]
fn cache_saved_then_restored_by_a_second_run() {
    let repo = Repo::new(&[(
        WF,
        r#"
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - id: cache
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-${{ runner.os }}-v1
          restore-keys: deps-
      - if: steps.cache.outputs.cache-hit != 'true'
        run: mkdir -p deps && echo built-once > deps/lib.txt && echo "cold build"
      - run: echo "hit=${{ steps.cache.outputs.cache-hit }} content=$(cat deps/lib.txt)"
"#,
    )]);
    let first = repo.run(WF, &[]);
    assert_eq!(first.code, 0, "{}", first.debug());
    let lines = first.lines("build");
    assert!(lines.contains(&"cold build".to_owned()), "{lines:#?}");
    assert!(lines.contains(&"hit=false content=built-once".to_owned()));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("Cache saved with key: deps-Linux-v1")));
    let second = repo.run(WF, &[]);
    let lines = second.lines("build");
    assert!(!lines.contains(&"cold build".to_owned()), "{lines:#?}");
    assert!(lines.contains(&"hit=true content=built-once".to_owned()));
}

#[test]
fn checkout_of_the_local_repository() {
    let repo = Repo::new(&[
        (
            WF,
            r#"
on: push
jobs:
  co:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: cat hello.txt && git rev-parse HEAD
      - uses: actions/checkout@v4
        with:
          path: second
      - run: cat second/hello.txt
"#,
        ),
        ("hello.txt", "committed content\n"),
    ]);
    let head = String::from_utf8(
        Process::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .expect("git")
            .stdout,
    )
    .expect("utf-8");
    let run = repo.run(WF, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let lines = run.lines("co");
    assert_eq!(
        lines.iter().filter(|l| *l == "committed content").count(),
        2,
        "{lines:#?}"
    );
    assert!(lines.contains(&head.trim().to_owned()));
}

#[test]
fn remote_actions_not_in_the_cache_fail_offline_with_a_clear_message() {
    let repo = Repo::new(&[(
        WF,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: some/action@v1\n",
    )]);
    let run = repo.run(WF, &[]);
    assert_eq!(run.code, 1, "{}", run.debug());
    assert!(
        run.of("annotation").any(|e| {
            let m = e["message"].as_str().unwrap_or("");
            m.contains("https://github.com/some/action@v1 is not in the cache (offline)")
                && m.contains("--action-dir some/action=PATH")
        }),
        "{}",
        run.debug()
    );
    // Mapped to a local directory, it runs.
    repo.write(
        "vendored/action.yml",
        "name: v\nruns:\n  using: composite\n  steps:\n    - run: echo vendored-ran\n      shell: sh\n",
    );
    let run = repo.run(WF, &["--action-dir", "some/action@v1=vendored"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.lines("a").contains(&"vendored-ran".to_owned()));
}

#[test]
fn config_errors_exit_two() {
    let repo = Repo::new(&[(WF, "on: push\njobs:\n  a:\n    runs-on: x\n    stepz: []\n")]);
    repo.cmd(WF, &[]).assert().code(2);
    let repo = Repo::new(&[(
        WF,
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: 'true'\n",
    )]);
    repo.cmd(WF, &["--job", "nope"]).assert().code(2);
}

#[test]
fn runs_are_listed_and_logs_printed() {
    let repo = Repo::new(&[(
        WF,
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo recorded-line\n",
    )]);
    let run = repo.run(WF, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let id = run.run_id();
    let list = repo.state_cmd(&["runs"]);
    assert!(list.contains(&id) && list.contains("success"), "{list}");
    assert!(repo.logs(&id, Some("a")).contains("recorded-line"));
}

/// Pids of processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                pids.push(pid);
            }
        }
    }
    pids
}

#[test]
fn ctrl_c_cancels_the_run_and_leaves_no_processes() {
    let marker = format!("gantry-cancel-marker-{}", std::process::id());
    let repo = Repo::new(&[(
        WF,
        &format!(
            r#"
on: push
jobs:
  long:
    runs-on: ubuntu-latest
    steps:
      - run: |
          bash -c 'exec -a {marker} sleep 300' &
          sleep 300
      - if: always()
        run: echo cleanup-ran
  later:
    needs: long
    runs-on: ubuntu-latest
    steps:
      - run: echo never
"#
        ),
    )]);
    let bin = assert_cmd::cargo::cargo_bin("gantry");
    let child = Process::new(bin)
        .env("GANTRY_OFFLINE", "1")
        .env("GANTRY_CACHE_DIR", common::test_cache_dir())
        .current_dir(repo.path())
        .args(["run", WF, "--format", "json", "--state-dir"])
        .arg(repo.state())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gantry starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal");
    let out = child.wait_with_output().expect("gantry ends");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let status = |job: &str| {
        events
            .iter()
            .rfind(|e| e["event"] == "job_finished" && e["job"] == job)
            .map(|e| e["status"].clone())
    };
    assert_eq!(status("long"), Some(Value::from("cancelled")), "{stdout}");
    assert_eq!(status("later"), Some(Value::from("cancelled")), "{stdout}");
    assert!(
        stdout.contains("cleanup-ran"),
        "always() steps run after a cancel"
    );
    assert!(processes_with(&marker).is_empty(), "no process is left");
}

#[test]
fn docker_job_container_and_services() {
    if !docker_ready() {
        return;
    }
    let repo = Repo::new(&[
        (
            WF,
            r#"
on: push
jobs:
  in-container:
    runs-on: ubuntu-latest
    container:
      image: gantry-busybox:test
      env:
        FROM_CONTAINER: yes
    services:
      web:
        image: gantry-busybox:test
        command: sh -c "mkdir -p /www && echo served-by-service > /www/index.html && exec httpd -f -p 8080 -h /www"
    steps:
      - uses: actions/checkout@v4
      - run: |
          test -x /bin/busybox && echo "inside busybox"
          echo "container env $FROM_CONTAINER"
          cat file.txt
          echo "out=from-container" >> "$GITHUB_OUTPUT"
        id: s
      - run: |
          for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web:8080/ && break; sleep 0.5; done
      - run: echo "${{ steps.s.outputs.out }}"
"#,
        ),
        ("file.txt", "from the workspace\n"),
    ]);
    let run = repo.run(WF, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let lines = run.lines("in-container");
    for want in [
        "inside busybox",
        "container env yes",
        "from the workspace",
        "served-by-service",
        "from-container",
    ] {
        assert!(lines.contains(&want.to_owned()), "{want}: {lines:#?}");
    }
}

#[test]
fn docker_platform_and_docker_steps() {
    if !docker_ready() {
        return;
    }
    let repo = Repo::new(&[(
        WF,
        r#"
on: push
jobs:
  mapped:
    runs-on: linux-box
    steps:
      - run: test -x /bin/busybox && echo "mapped to docker"
      - uses: docker://gantry-busybox:test
        with:
          entrypoint: sh
          args: -c "echo docker step in $PWD"
"#,
    )]);
    let run = repo.run(
        WF,
        &["--platform", "linux-box=docker://gantry-busybox:test"],
    );
    assert_eq!(run.code, 0, "{}", run.debug());
    let lines = run.lines("mapped");
    assert!(lines.contains(&"mapped to docker".to_owned()), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("docker step in /")),
        "{lines:#?}"
    );
}

#[test]
fn events_and_inputs_reach_the_contexts() {
    let repo = Repo::new(&[(
        WF,
        r#"
on:
  push:
  pull_request:
  workflow_dispatch:
    inputs:
      level:
        type: number
        default: 1
      name:
        type: string
jobs:
  show:
    runs-on: ubuntu-latest
    steps:
      - run: echo "event=${{ github.event_name }} level=${{ inputs.level }} name=${{ inputs.name }} more=${{ inputs.level > 2 }}"
"#,
    )]);
    let run = repo.run(
        WF,
        &[
            "--event",
            "workflow_dispatch",
            "--input",
            "level=3",
            "--input",
            "name=x",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run
        .lines("show")
        .contains(&"event=workflow_dispatch level=3 name=x more=true".to_owned()));
    let run = repo.run(WF, &["--event", "pull_request"]);
    assert!(run
        .lines("show")
        .iter()
        .any(|l| l.starts_with("event=pull_request level=1")));
    repo.cmd(WF, &["--event", "nonsense"]).assert().code(2);
}

#[test]
fn runs_are_listed_as_json() {
    let repo = Repo::new(&[(
        WF,
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: exit 1\n",
    )]);
    let run = repo.run(WF, &[]);
    assert_eq!(run.code, 1, "{}", run.debug());
    let out = repo.state_cmd(&["runs", "--format", "json"]);
    let line: Value =
        serde_json::from_str(out.lines().next().expect("one line per run")).expect("JSON");
    assert_eq!(line["id"], run.run_id().as_str());
    assert_eq!(line["status"], "failure");
    assert_eq!(line["workflow"], WF);
}

#[test]
fn gantry_tests_shows_the_test_results_a_run_kept() {
    let repo = Repo::new(&[(
        WF,
        "on: push\njobs:\n  unit:\n    runs-on: ubuntu-latest\n    steps:\n      - run: |\n          echo '<testsuite name=\"s\"><testcase classname=\"math\" name=\"slow\" time=\"3.5\"/><testcase classname=\"math\" name=\"wrong\" time=\"0.1\"><failure message=\"1 != 2\"/></testcase></testsuite>' > junit.xml\n  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo no-reports\n",
    )]);
    let run = repo.run(WF, &["--junit", "junit.xml"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let out = common::gantry()
        .current_dir(repo.path())
        .args(["tests", "last", "--state-dir"])
        .arg(repo.state())
        .output()
        .expect("gantry tests runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // A failed test makes `gantry tests` exit 1, naming it; the slowest test is listed.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("unit: 2 tests: 1 passed, 1 failed, 0 skipped"),
        "{text}"
    );
    assert!(text.contains("math wrong: 1 != 2"), "{text}");
    assert!(text.contains("3.500s  math slow"), "{text}");
    assert!(!text.contains("lint:"), "{text}");
}
