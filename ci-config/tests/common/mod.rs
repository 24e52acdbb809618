//! Shared by the conformance tests: where `../shared/conformance` is.

use std::io::Write as _;

use std::path::{Path, PathBuf};

/// The conformance data (`GANTRY_CONFORMANCE_DIR`, else `../shared/conformance` beside the
/// workspace). Absent data skips loudly, and fails when `CI=true`.
pub fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GANTRY_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance data not found at {} (CI=true: failing instead of skipping)",
        dir.display()
    );
    // Straight to stderr, not through the test harness's capture: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: conformance data not found at {}; set GANTRY_CONFORMANCE_DIR",
        dir.display()
    );
    None
}
