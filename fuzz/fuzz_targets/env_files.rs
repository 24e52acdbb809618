#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // GITHUB_ENV / GITHUB_OUTPUT files (heredocs included), GITHUB_PATH, GitLab dotenv.
        let _ = ci_exec::envfile::parse_env_file(text);
        let _ = ci_exec::envfile::parse_path_file(text);
    }
});
