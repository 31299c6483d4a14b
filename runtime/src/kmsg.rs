//! The host kernel's log, read from `/dev/kmsg` (root only): the global OOM
//! kills that no container's memory bomb may ever cause. A container's own
//! OOM kills are its cgroup's (see [`crate::events`]); a global one means
//! the host itself ran out of memory.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;

/// Seconds since boot, on the clock the kernel log's timestamps use.
pub fn uptime_secs() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The kernel log's global OOM kill lines logged at or after `since`
/// (seconds since boot, as [`uptime_secs`] gives; a second of slack for the
/// two clocks' rounding). Cgroup OOM kills ("Memory cgroup out of memory")
/// are not counted.
pub fn global_oom_kills_since(since: f64) -> io::Result<Vec<String>> {
    Ok(read_records()?
        .iter()
        .filter_map(|r| parse_record(r))
        .filter(|(secs, msg)| *secs >= since - 1.0 && is_global_oom_kill(msg))
        .map(|(secs, msg)| format!("[{secs:.6}] {msg}"))
        .collect())
}

fn is_global_oom_kill(msg: &str) -> bool {
    msg.contains("Out of memory: Killed process") && !msg.contains("Memory cgroup")
}

/// Every record the kernel still holds, oldest first. Each read(2) of
/// `/dev/kmsg` returns one record; EAGAIN ends the log, EPIPE says records
/// were overwritten while we read (we go on from the next).
fn read_records() -> io::Result<Vec<String>> {
    let mut log = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")?;
    let mut records = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match log.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => records.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(records)
}

/// `PRI,SEQ,TIMESTAMP_US,FLAGS[,...];MESSAGE` (then dictionary lines, each
/// starting with a space) → (seconds since boot, message).
fn parse_record(record: &str) -> Option<(f64, &str)> {
    let (header, rest) = record.split_once(';')?;
    let micros: u64 = header.split(',').nth(2)?.parse().ok()?;
    let msg = rest.lines().next().unwrap_or("");
    Some((micros as f64 / 1e6, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_only_global_oom_kills_count() {
        let global = "3,1001,5000000,-;Out of memory: Killed process 42 (stress) total-vm:1kB\n";
        let cgroup =
            "3,1002,6000000,-;Memory cgroup out of memory: Killed process 43 (sh)\n SUBSYSTEM=x\n";
        assert_eq!(
            parse_record(global),
            Some((
                5.0,
                "Out of memory: Killed process 42 (stress) total-vm:1kB"
            ))
        );
        let (_, msg) = parse_record(cgroup).expect("parses");
        assert_eq!(msg, "Memory cgroup out of memory: Killed process 43 (sh)");
        assert!(is_global_oom_kill(parse_record(global).expect("parses").1));
        assert!(!is_global_oom_kill(msg));
        assert_eq!(parse_record("junk without a header"), None);
        assert_eq!(parse_record("6,1,notanumber,-;x"), None);
    }

    #[test]
    fn the_live_log_reads_as_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        // Nothing since a moment from now: an empty answer, not an error.
        let later = uptime_secs() + 3600.0;
        assert_eq!(
            global_oom_kills_since(later).expect("reads /dev/kmsg"),
            Vec::<String>::new()
        );
        assert!(uptime_secs() > 0.0);
    }
}
