//! GitLab variable expansion: `$VAR`, `${VAR}`, `$$` (a literal `$`).

/// Expands variables in `text` with `lookup`; unknown variables become empty, as in GitLab.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            let next = text[i..].find('$').map_or(text.len(), |n| i + n);
            out.push_str(&text[i..next]);
            i = next;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => match text[i + 2..].find('}') {
                Some(end) if is_name(&text[i + 2..i + 2 + end]) => {
                    out.push_str(&lookup(&text[i + 2..i + 2 + end]).unwrap_or_default());
                    i += 3 + end;
                }
                _ => {
                    out.push('$');
                    i += 1;
                }
            },
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let len = text[i + 1..]
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                out.push_str(&lookup(&text[i + 1..i + 1 + len]).unwrap_or_default());
                i += 1 + len;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_gitlab() {
        let look = |n: &str| match n {
            "A" => Some("1".to_owned()),
            "LONG_NAME" => Some("x y".to_owned()),
            _ => None,
        };
        assert_eq!(expand("$A-${A}-$$A-$MISSING-$", &look), "1-1-$A--$");
        assert_eq!(expand("pre ${LONG_NAME}post", &look), "pre x ypost");
        assert_eq!(expand("${not valid}", &look), "${not valid}");
        assert_eq!(expand("100$ and $1", &look), "100$ and $1");
    }
}
