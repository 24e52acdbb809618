#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ci_config::github::parse_workflow(".github/workflows/fuzz.yml", text);
        let _ = ci_config::github::parse_action("action.yml", text);
    }
});
