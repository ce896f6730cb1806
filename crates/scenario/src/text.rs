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

/// A duration for people: `12 ms`, `4.5 s`, `45 s`, `10 min`, `2 h 5 min`, `1 d 0 h`.
pub fn duration(s: f64) -> String {
    if s < 1.0 {
        return format!("{:.0} ms", s * 1000.0);
    }
    if s < 120.0 {
        let r = (s * 10.0).round() / 10.0;
        return if r.fract() == 0.0 {
            format!("{r:.0} s")
        } else {
            format!("{r:.1} s")
        };
    }
    let s = s.round() as u64;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

/// A byte count for people, in binary units: `300 B`, `512 KiB`, `1.5 MiB`, `2.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
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
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(duration(45.0), "45 s");
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(0.0123), "12 ms");
        assert_eq!(duration(4.5), "4.5 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(duration(7_500.0), "2 h 5 min");
        assert_eq!(duration(86_400.0), "1 d 0 h");
        assert_eq!(duration(1_209_600.0), "14 d 0 h");
        assert_eq!(bytes(300), "300 B");
        assert_eq!(bytes(512 * 1024), "512 KiB");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
        assert_eq!(bytes(2_097_152_000), "2.0 GiB");
        assert_eq!(bytes(1 << 30), "1 GiB");
    }

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
