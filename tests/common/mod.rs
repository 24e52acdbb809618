//! Helpers shared by the CLI end-to-end tests.

use std::io::Write as _;

use std::process::Command;

/// Whether the real dockerd with the locally imported test image is here. Absent: skips
/// loudly, and fails when CI=true.
#[allow(dead_code)]
pub fn docker_ready() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", "gantry-busybox:test"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and dockerd with image gantry-busybox:test is not available (.ci/services start)"
        );
        // Straight to stderr, not through the test harness's capture: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: dockerd or image gantry-busybox:test not available (run .ci/services start)"
        );
    }
    ok
}

/// Whether bubblewrap can make a sandbox here (skips loudly; fails when CI=true).
#[allow(dead_code)]
pub fn bwrap_ready() -> bool {
    let ok = Command::new("bwrap")
        .args([
            "--die-with-parent",
            "--unshare-all",
            "--ro-bind",
            "/",
            "/",
            "true",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and bwrap cannot make a sandbox (apt-get install bubblewrap)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: bwrap not available (apt-get install bubblewrap)"
        );
    }
    ok
}

/// The `gantry` binary as tests run it: never on the network (`GANTRY_OFFLINE`), with a
/// fetch cache of this test process's own.
#[allow(dead_code)]
pub fn gantry() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("gantry").expect("the gantry binary is built");
    cmd.env("GANTRY_OFFLINE", "1")
        .env("GANTRY_CACHE_DIR", test_cache_dir());
    cmd
}

/// This test process's fetch cache.
#[allow(dead_code)]
pub fn test_cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gantry-test-cache-{}", std::process::id()))
}

/// What `gantry ARGS` in `dir` prints on stdout; it must succeed.
#[allow(dead_code)]
pub fn stdout_in(dir: &std::path::Path, args: &[&str]) -> String {
    let out = gantry()
        .current_dir(dir)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8_lossy(&out).into_owned()
}

/// A folder of the workspace's tests (`tests/circleci/several-workflows`).
#[allow(dead_code)]
pub fn test_dir(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
