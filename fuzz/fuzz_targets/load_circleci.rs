#![no_main]

use ci_config::circleci::{parse_config, Pipeline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // The local defaults, then a tag pipeline with a parameter given.
        let _ = parse_config(".circleci/config.yml", text, &Pipeline::default());
        let mut tagged = Pipeline::default();
        tagged.values.insert("pipeline.git.tag".into(), "v1.0.0".into());
        tagged.parameters.insert("deploy".into(), "true".into());
        let _ = parse_config(".circleci/config.yml", text, &tagged);
    }
});
