//! Cron schedules as GitHub and GitLab accept them (five fields, UTC), and their next fire
//! times.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// A parsed five-field cron expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
}

/// A cron expression that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression '{expr}': {reason}")]
pub struct ScheduleError {
    /// The expression.
    pub expr: String,
    /// Why.
    pub reason: String,
}

impl Schedule {
    /// Parses `minute hour day-of-month month day-of-week` (names like `MON`, `JAN` allowed).
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let error = |reason: String| ScheduleError {
            expr: expr.to_owned(),
            reason,
        };
        if expr.split_whitespace().count() != 5 {
            return Err(error("expected 5 fields".into()));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
        let cron = parser.parse(expr).map_err(|e| error(e.to_string()))?;
        Ok(Schedule {
            expr: expr.to_owned(),
            cron,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The next `count` fire times strictly after `after`, in UTC.
    pub fn next_after(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut t = after;
        while out.len() < count {
            match self.cron.find_next_occurrence(&t, false) {
                Ok(next) => {
                    out.push(next);
                    t = next;
                }
                Err(_) => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_fire_times_in_utc() {
        let s = Schedule::parse("30 5 * * 1,3").unwrap();
        // 2026-11-23 is a Monday.
        let from = Utc.with_ymd_and_hms(2026, 11, 23, 6, 0, 0).unwrap();
        let next = s.next_after(from, 2);
        assert_eq!(
            next[0],
            Utc.with_ymd_and_hms(2026, 11, 25, 5, 30, 0).unwrap()
        );
        assert_eq!(
            next[1],
            Utc.with_ymd_and_hms(2026, 11, 30, 5, 30, 0).unwrap()
        );
    }

    #[test]
    fn names_and_steps() {
        let s = Schedule::parse("*/15 9-17 * JAN-MAR MON-FRI").unwrap();
        let from = Utc.with_ymd_and_hms(2027, 1, 1, 8, 59, 0).unwrap(); // a Friday
        assert_eq!(
            s.next_after(from, 1)[0],
            Utc.with_ymd_and_hms(2027, 1, 1, 9, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in ["* * * *", "61 * * * *", "* * * * * *", "x * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
