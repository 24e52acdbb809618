//! Validation of POSIX cron expressions as GitHub's `schedule` accepts them
//! (five fields; `*`, lists, ranges, steps; month and weekday names).

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Checks a five-field cron expression; the error names the bad field.
pub(crate) fn validate(expr: &str) -> Result<(), String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected 5 fields, found {}", fields.len()));
    }
    let specs: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        ("month", 1, 12, MONTHS),
        ("day of week", 0, 6, DAYS),
    ];
    for (field, (name, min, max, names)) in fields.iter().zip(specs) {
        check_field(field, min, max, names).map_err(|e| format!("{name} field '{field}': {e}"))?;
    }
    Ok(())
}

fn check_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s >= 1 => {}
                _ => return Err(format!("invalid step '{step}'")),
            }
        }
        if range == "*" {
            continue;
        }
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (value(a, min, max, names)?, value(b, min, max, names)?),
            None => {
                let v = value(range, min, max, names)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(format!("range '{range}' goes backwards"));
        }
    }
    Ok(())
}

fn value(s: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + min);
    }
    // Day of week 7 is Sunday, as cron allows.
    let max_accepted = if names == DAYS { 7 } else { max };
    match s.parse::<u32>() {
        Ok(v) if (min..=max_accepted).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is outside {min}-{max}")),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_what_github_accepts() {
        for ok in [
            "* * * * *",
            "*/15 0-6 1,15 JAN-MAR MON-FRI",
            "30 5 * * 1,3",
            "0 0 * * 7",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_fields() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
