#![no_main]

use std::sync::Arc;

use ci_config::expr::{evaluate, Contexts, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = ci_config::gitlab::rules::compile(text) {
        let mut vars = indexmap::IndexMap::new();
        vars.insert("CI_COMMIT_BRANCH".to_owned(), Value::string("main"));
        vars.insert("EMPTY".to_owned(), Value::string(""));
        let mut contexts = Contexts::new();
        contexts.insert("variables", Value::Object(Arc::new(vars)));
        let _ = evaluate(&expr, text, &contexts);
    }
});
