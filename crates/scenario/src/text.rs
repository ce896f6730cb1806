//! Numbers and names in words, as the summary, chains and reports write them.

/// Formats milliseconds as seconds with thousands separators: `87,013.5 s`.
pub fn secs(ms: u64) -> String {
    let whole = ms / 1000;
    let frac = ms % 1000;
    let mut digits = whole.to_string();
    let mut out = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        out = format!(",{tail}{out}");
    }
    out = format!("{digits}{out}");
    if frac != 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push_str(" s");
    out
}

/// `1st`, `2nd`, `3rd`, `11th`, `22nd`.
pub fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The first 8 characters of a session id, without braces.
pub fn short(session: &str) -> String {
    session.trim_matches(['{', '}']).chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_well() {
        assert_eq!(secs(12_300), "12.3 s");
        assert_eq!(secs(87_013_500), "87,013.5 s");
        assert_eq!(secs(600_000), "600 s");
        assert_eq!(secs(1_234_567_890), "1,234,567.89 s");
        assert_eq!(secs(5), "0.005 s");
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(2), "2nd");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(111), "111th");
        assert_eq!(ordinal(23), "23rd");
    }
}
