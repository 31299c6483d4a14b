//! A container's limits: what it asked for, filled in with the operator's
//! defaults and checked against the operator's maxima. Over a maximum is a
//! 422 that names the limit; nothing is clamped silently.

use crate::config::ContainerLimits;
use crate::error::ApiError;
use protocol::Limits;

/// The smallest values the kernel and the runtime can honour.
const MIN_MEMORY: u64 = 4 * 1024 * 1024;
const MIN_CPU_MILLIS: u32 = 10;
const MIN_PIDS: u32 = 4;
const MIN_DISK: u64 = 1024 * 1024;

pub fn defaults(c: &ContainerLimits) -> Limits {
    Limits {
        memory_bytes: Some(c.default_memory_bytes),
        cpu_millis: Some(c.default_cpu_millis),
        pids: Some(c.default_pids),
        disk_bytes: Some(c.default_disk_bytes),
    }
}

/// The least a container may ask for.
pub fn minima() -> Limits {
    Limits {
        memory_bytes: Some(MIN_MEMORY),
        cpu_millis: Some(MIN_CPU_MILLIS),
        pids: Some(MIN_PIDS),
        disk_bytes: Some(MIN_DISK),
    }
}

pub fn maxima(c: &ContainerLimits) -> Limits {
    Limits {
        memory_bytes: Some(c.max_memory_bytes),
        cpu_millis: Some(c.max_cpu_millis),
        pids: Some(c.max_pids),
        disk_bytes: Some(c.max_disk_bytes),
    }
}

fn check(name: &'static str, value: u64, min: u64, max: u64) -> Result<u64, ApiError> {
    if value > max {
        return Err(ApiError::LimitExceeded {
            limit: name,
            message: format!("{name} {value} is over the maximum of {max}"),
        });
    }
    if value < min {
        return Err(ApiError::LimitExceeded {
            limit: name,
            message: format!("{name} {value} is under the minimum of {min}"),
        });
    }
    Ok(value)
}

/// Every limit set: the request's where given, else the default.
pub fn resolve(asked: Option<Limits>, c: &ContainerLimits) -> Result<Limits, ApiError> {
    let asked = asked.unwrap_or_default();
    let memory = check(
        "memory_bytes",
        asked.memory_bytes.unwrap_or(c.default_memory_bytes),
        MIN_MEMORY,
        c.max_memory_bytes,
    )?;
    let cpu = check(
        "cpu_millis",
        asked.cpu_millis.unwrap_or(c.default_cpu_millis).into(),
        MIN_CPU_MILLIS.into(),
        c.max_cpu_millis.into(),
    )?;
    let pids = check(
        "pids",
        asked.pids.unwrap_or(c.default_pids).into(),
        MIN_PIDS.into(),
        c.max_pids.into(),
    )?;
    let disk = check(
        "disk_bytes",
        asked.disk_bytes.unwrap_or(c.default_disk_bytes),
        MIN_DISK,
        c.max_disk_bytes,
    )?;
    Ok(Limits {
        memory_bytes: Some(memory),
        // Both fit: they were checked against u32 maxima.
        cpu_millis: Some(cpu as u32),
        pids: Some(pids as u32),
        disk_bytes: Some(disk),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_maxima_name_the_limit() {
        let c = ContainerLimits::default();
        let l = resolve(
            Some(Limits {
                pids: Some(64),
                ..Limits::default()
            }),
            &c,
        )
        .unwrap();
        assert_eq!(l.pids, Some(64));
        assert_eq!(l.memory_bytes, Some(c.default_memory_bytes));
        let err = resolve(
            Some(Limits {
                memory_bytes: Some(c.max_memory_bytes + 1),
                ..Limits::default()
            }),
            &c,
        )
        .unwrap_err();
        assert_eq!(err.code(), "limit_exceeded");
        assert_eq!(err.body().error.limit.as_deref(), Some("memory_bytes"));
        assert!(resolve(
            Some(Limits {
                cpu_millis: Some(1),
                ..Limits::default()
            }),
            &c
        )
        .is_err());
    }
}
