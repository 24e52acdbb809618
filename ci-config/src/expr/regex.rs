//! Regular expressions as CI files write them: `/pattern/flags` (GitLab `=~`, `coverage:`),
//! compiled with a size limit so that a hostile pattern cannot exhaust memory.

/// `/pattern/flags` → (pattern, flags).
pub fn split_regex(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('/')?;
    let end = rest.rfind('/')?;
    let flags = &rest[end + 1..];
    flags
        .bytes()
        .all(|c| c.is_ascii_alphabetic())
        .then(|| (rest[..end].to_owned(), flags.to_owned()))
}

/// Compiles a GitLab regex with its flags (`i`, `m`, `s`, `x`).
pub fn regex(pattern: &str, flags: &str) -> Result<regex::Regex, String> {
    let mut builder = regex::RegexBuilder::new(pattern);
    for f in flags.chars() {
        match f {
            'i' => builder.case_insensitive(true),
            'm' => builder.multi_line(true),
            's' => builder.dot_matches_new_line(true),
            'x' => builder.ignore_whitespace(true),
            other => return Err(format!("unknown regex flag '{other}'")),
        };
    }
    builder
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regex /{pattern}/: {e}"))
}
