//! Test results from JUnit XML reports (the format every test runner can write, and the one
//! GitLab's `reports:junit` and CircleCI's `store_test_results` read), kept per job as JSON
//! in the blob store: `runs/<run>/tests/<job>.json`.
//!
//! ```
//! let xml = r#"<testsuite name="unit" tests="2" failures="1">
//!   <testcase classname="math" name="adds" time="0.5"/>
//!   <testcase classname="math" name="divides" time="1.25"><failure message="by zero">trace</failure></testcase>
//! </testsuite>"#;
//! let results = ci_store::junit::parse(xml).unwrap();
//! assert_eq!((results.passed(), results.failed()), (1, 1));
//! assert_eq!(results.cases[1].message.as_deref(), Some("by zero"));
//! ```

use bytes::Bytes;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

use crate::blob::BlobStore;
use crate::StoreError;

/// How one test case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It passed.
    Passed,
    /// An assertion failed (`<failure>`).
    Failed,
    /// It could not run to the end (`<error>`).
    Error,
    /// It was skipped (`<skipped>`).
    Skipped,
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// `classname` (or the suite's name).
    pub class: String,
    /// `name`.
    pub name: String,
    /// The test's source file (`file`, of the case or its suite), when the report says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Seconds it took.
    pub time: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// The failure's or error's message (its `message` attribute, else its text).
    pub message: Option<String>,
}

/// The test results of a job: every case of its reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestResults {
    /// The cases in report order.
    pub cases: Vec<Case>,
}

impl TestResults {
    fn count(&self, outcome: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == outcome).count()
    }

    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.count(Outcome::Passed)
    }

    /// Cases that failed or errored.
    pub fn failed(&self) -> usize {
        self.count(Outcome::Failed) + self.count(Outcome::Error)
    }

    /// Cases that were skipped.
    pub fn skipped(&self) -> usize {
        self.count(Outcome::Skipped)
    }

    /// The `n` slowest cases, slowest first.
    pub fn slowest(&self, n: usize) -> Vec<&Case> {
        let mut all: Vec<&Case> = self.cases.iter().collect();
        all.sort_by(|a, b| b.time.total_cmp(&a.time));
        all.truncate(n);
        all
    }

    /// Adds another report's cases.
    pub fn extend(&mut self, other: TestResults) {
        self.cases.extend(other.cases);
    }

    /// One line: `12 tests: 10 passed, 1 failed, 1 skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} test{}: {} passed, {} failed, {} skipped",
            self.cases.len(),
            if self.cases.len() == 1 { "" } else { "s" },
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}

/// Reads a JUnit XML report (`<testsuites>`, `<testsuite>` or a bare `<testcase>` list).
pub fn parse(xml: &str) -> Result<TestResults, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut results = TestResults::default();
    let mut suite = String::new();
    let mut suite_file: Option<String> = None;
    let mut current: Option<Case> = None;
    // Text of the open <failure>/<error>, used when it has no message attribute.
    let mut text: Option<String> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &[u8]| -> Option<String> {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                };
                match e.local_name().as_ref() {
                    b"testsuite" => {
                        suite = attr(b"name").unwrap_or_default();
                        suite_file = attr(b"file");
                    }
                    b"testcase" => {
                        if let Some(done) = current.take() {
                            results.cases.push(done);
                        }
                        current = Some(Case {
                            class: attr(b"classname").unwrap_or_else(|| suite.clone()),
                            name: attr(b"name").unwrap_or_default(),
                            file: attr(b"file").or_else(|| suite_file.clone()),
                            time: attr(b"time")
                                .and_then(|t| t.trim().parse().ok())
                                .filter(|t: &f64| t.is_finite())
                                .unwrap_or(0.0),
                            outcome: Outcome::Passed,
                            message: None,
                        });
                    }
                    tag @ (b"failure" | b"error" | b"skipped") => {
                        if let Some(case) = current.as_mut() {
                            case.outcome = match tag {
                                b"failure" => Outcome::Failed,
                                b"error" => Outcome::Error,
                                _ => Outcome::Skipped,
                            };
                            case.message = attr(b"message");
                            if case.message.is_none() && tag != b"skipped" {
                                text = Some(String::new());
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some(buf) = text.as_mut() {
                    buf.push_str(&t.decode().map_err(|e| e.to_string())?);
                }
            }
            Event::CData(t) => {
                if let Some(buf) = text.as_mut() {
                    buf.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(buf) = text.as_mut() {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    buf.push_str(match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"failure" | b"error" => {
                    if let (Some(case), Some(t)) = (current.as_mut(), text.take()) {
                        let first = t.trim().lines().next().unwrap_or("").to_owned();
                        case.message = (!first.is_empty()).then_some(first);
                    }
                }
                b"testcase" => results.cases.extend(current.take()),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    results.cases.extend(current);
    Ok(results)
}

fn key(run: &str, job: &str) -> String {
    format!("runs/{run}/tests/{job}.json")
}

/// Keeps a job's test results.
pub async fn save(
    store: &BlobStore,
    run: &str,
    job: &str,
    results: &TestResults,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(results).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.put(&key(run, job), Bytes::from(json)).await
}

/// A job's test results, if it had any.
pub async fn load(
    store: &BlobStore,
    run: &str,
    job: &str,
) -> Result<Option<TestResults>, StoreError> {
    match store.get(&key(run, job)).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_cases_and_outcomes_are_read() {
        let xml = r#"<?xml version="1.0"?>
<testsuites>
  <testsuite name="suite-a">
    <testcase name="ok" time="0.1"/>
    <testcase name="boom" classname="c" time="2"><error>panicked &lt;here&gt;
at line 3</error></testcase>
    <testcase name="later"><skipped/></testcase>
  </testsuite>
  <testsuite name="suite-b">
    <testcase name="cdata"><failure><![CDATA[expected 1, got 2]]></failure></testcase>
  </testsuite>
</testsuites>"#;
        let r = parse(xml).unwrap();
        assert_eq!(r.cases.len(), 4);
        assert_eq!((r.passed(), r.failed(), r.skipped()), (1, 2, 1));
        assert_eq!(r.cases[0].class, "suite-a");
        assert_eq!(r.cases[1].message.as_deref(), Some("panicked <here>"));
        assert_eq!(r.cases[3].message.as_deref(), Some("expected 1, got 2"));
        assert_eq!(r.slowest(1)[0].name, "boom");
        assert_eq!(r.summary(), "4 tests: 1 passed, 2 failed, 1 skipped");
    }

    #[test]
    fn malformed_reports_are_errors_not_panics() {
        assert!(parse("<testsuite><testcase name='a'></testsuite>").is_err());
        assert!(parse("").unwrap().cases.is_empty());
    }
}
