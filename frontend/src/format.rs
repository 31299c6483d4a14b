//! Human-readable numbers: bytes, durations, CPU shares, limits.

/// Bytes in binary units, at most one decimal: `512 B`, `1.5 KiB`, `64 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let rounded = (v * 10.0).round() / 10.0;
    if rounded >= 1024.0 && unit < UNITS.len() - 1 {
        return format!("1 {}", UNITS[unit + 1]);
    }
    if (rounded - rounded.trunc()).abs() < f64::EPSILON || rounded >= 100.0 {
        format!("{} {}", rounded.round() as u64, UNITS[unit])
    } else {
        format!("{rounded:.1} {}", UNITS[unit])
    }
}

/// A limit that may be absent: `64 MiB` or `no limit`.
pub fn bytes_limit(n: Option<u64>) -> String {
    n.map(bytes).unwrap_or_else(|| "no limit".into())
}

/// A duration for a countdown or an age: `42s`, `4m 05s`, `1h 02m`, `3d 4h`.
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A clock-style countdown: `29:59`, `1:02:03`.
pub fn countdown(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// CPU bandwidth in thousandths of a CPU: `0.5 CPU`, `2 CPUs`.
pub fn cpu_millis(m: u32) -> String {
    let whole = m / 1000;
    let frac = m % 1000;
    let s = if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{}.{:03}", whole, frac);
        f.trim_end_matches('0').to_string()
    };
    if m <= 1000 {
        format!("{s} CPU")
    } else {
        format!("{s} CPUs")
    }
}

/// A percentage with a sensible number of digits: `0.4%`, `12%`, `100%`.
pub fn percent(p: f64) -> String {
    if !p.is_finite() || p <= 0.0 {
        "0%".into()
    } else if p < 10.0 {
        format!("{:.1}%", (p * 10.0).round() / 10.0)
    } else {
        format!("{}%", p.round() as u64)
    }
}

/// A short id, as `docker ps` shows it.
pub fn short_id(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(12)
        .map(|(i, _)| i)
        .unwrap_or(id.len());
    &id[..end]
}

/// A count against an optional maximum: `12 / 64` or `12`.
pub fn of_limit(n: u64, limit: Option<u64>) -> String {
    match limit {
        Some(l) => format!("{n} / {l}"),
        None => n.to_string(),
    }
}

/// Parse a size typed by a person: `64m`, `64 MiB`, `1g`, `512k`, `1048576`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    if num < 0.0 {
        return None;
    }
    Some((num * mult as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes((64 << 20) + (1 << 19)), "64.5 MiB");
        assert_eq!(bytes(200 * (1 << 20) + 123_456), "200 MiB");
        assert_eq!(bytes((1 << 30) - 1), "1 GiB");
        assert_eq!(bytes(3 << 30), "3 GiB");
        assert_eq!(bytes_limit(None), "no limit");
    }

    #[test]
    fn durations_and_countdowns() {
        assert_eq!(duration_ms(0), "0s");
        assert_eq!(duration_ms(42_999), "42s");
        assert_eq!(duration_ms(245_000), "4m 05s");
        assert_eq!(duration_ms(3_720_000), "1h 02m");
        assert_eq!(duration_ms(273_600_000), "3d 4h");
        assert_eq!(countdown(1_799_001), "30:00");
        assert_eq!(countdown(1_799_000), "29:59");
        assert_eq!(countdown(3_723_000), "1:02:03");
        assert_eq!(countdown(0), "0:00");
    }

    #[test]
    fn cpus_and_percentages() {
        assert_eq!(cpu_millis(500), "0.5 CPU");
        assert_eq!(cpu_millis(1000), "1 CPU");
        assert_eq!(cpu_millis(1250), "1.25 CPUs");
        assert_eq!(cpu_millis(2000), "2 CPUs");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(f64::NAN), "0%");
        assert_eq!(percent(0.44), "0.4%");
        assert_eq!(percent(12.4), "12%");
        assert_eq!(percent(99.6), "100%");
    }

    #[test]
    fn parse_sizes() {
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes(" 64 MiB "), Some(64 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("0.5g"), Some(1 << 29));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("12 parsecs"), None);
    }

    #[test]
    fn ids_and_limits() {
        assert_eq!(short_id("3f2a9c01d4e5b6a7c8"), "3f2a9c01d4e5");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(of_limit(12, Some(64)), "12 / 64");
        assert_eq!(of_limit(12, None), "12");
    }
}
