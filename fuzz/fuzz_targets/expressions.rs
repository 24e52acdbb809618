#![no_main]

use ci_config::expr::{Contexts, Expression, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let options = ParseOptions { contexts: &["github", "env"], ..Default::default() };
        if let Ok(e) = Expression::parse(text, &options) {
            let _ = e.evaluate(&Contexts::new());
        }
    }
});
