//! Parsing and printing sizes the way `docker run` takes them.

/// `64m`, `1g`, `512k`, `1048576`, `1.5g` → bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        Some('t') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: use e.g. 64m or 1g"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("invalid size {s:?}: must be positive"));
    }
    let bytes = value * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(bytes as u64)
}

/// `0.5` → 500 thousandths of a CPU.
pub fn parse_cpus(s: &str) -> Result<u32, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("invalid --cpus {s:?}: use e.g. 0.5"))?;
    if !v.is_finite() || !(0.01..=1024.0).contains(&v) {
        return Err(format!("--cpus {s:?} must be between 0.01 and 1024"));
    }
    Ok((v * 1000.0).round() as u32)
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("512kb"), Ok(512 << 10));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("-1m").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1e30t").is_err());
        assert_eq!(parse_cpus("0.5"), Ok(500));
        assert!(parse_cpus("0").is_err());
        assert_eq!(human(1536), "1.5 KiB");
    }
}
