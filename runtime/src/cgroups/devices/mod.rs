//! The devices a container may use: deny all, then allow only the nodes in
//! [`ALLOWED`]. A device node that gets into the rootfs anyway (an image,
//! a bind mount, a bug) cannot be opened.
//!
//! - v1: `devices.deny` `a`, one `devices.allow` line per rule, then
//!   `devices.list` is read back and must be exactly the allowed list.
//! - v2 has no devices files: the kernel asks a `BPF_PROG_TYPE_CGROUP_DEVICE`
//!   program attached to the cgroup. [`bpf`] assembles that program from the
//!   same rules, loads it and attaches it; a `BPF_PROG_QUERY` afterwards must
//!   see it attached.

pub(crate) mod bpf;

use std::path::Path;

use super::{read, write, CgroupError};

/// One allowed character device (`minor` `None` = every minor), with
/// read, write and mknod access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub major: u32,
    pub minor: Option<u32>,
}

/// null, zero, full, random, urandom, tty, ptmx, and the pty slaves.
pub const ALLOWED: &[DeviceRule] = &[
    DeviceRule {
        major: 1,
        minor: Some(3),
    },
    DeviceRule {
        major: 1,
        minor: Some(5),
    },
    DeviceRule {
        major: 1,
        minor: Some(7),
    },
    DeviceRule {
        major: 1,
        minor: Some(8),
    },
    DeviceRule {
        major: 1,
        minor: Some(9),
    },
    DeviceRule {
        major: 5,
        minor: Some(0),
    },
    DeviceRule {
        major: 5,
        minor: Some(2),
    },
    DeviceRule {
        major: 136,
        minor: None,
    },
];

impl DeviceRule {
    /// The rule as `devices.allow` and `devices.list` spell it.
    pub fn v1_line(&self) -> String {
        match self.minor {
            Some(m) => format!("c {}:{m} rwm", self.major),
            None => format!("c {}:* rwm", self.major),
        }
    }
}

/// v1: deny everything, allow [`ALLOWED`], and check `devices.list`.
pub(crate) fn restrict_v1(dir: &Path) -> Result<(), CgroupError> {
    write(&dir.join("devices.deny"), "a")?;
    for rule in ALLOWED {
        write(&dir.join("devices.allow"), &rule.v1_line())?;
    }
    let list = dir.join("devices.list");
    let got = read(&list)?;
    let mut got: Vec<&str> = got
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    got.sort_unstable();
    let want: Vec<String> = ALLOWED.iter().map(DeviceRule::v1_line).collect();
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    want.sort_unstable();
    if got != want {
        return Err(CgroupError::LimitNotApplied {
            file: list,
            wanted: want.join(", "),
            got: got.join(", "),
        });
    }
    tracing::debug!(dir = %dir.display(), rules = ALLOWED.len(), "device access restricted");
    Ok(())
}

/// v2: load the device program and attach it to the cgroup at `dir`.
pub(crate) fn restrict_v2(dir: &Path) -> Result<(), CgroupError> {
    bpf::attach_device_filter(dir, ALLOWED)?;
    tracing::debug!(dir = %dir.display(), rules = ALLOWED.len(), "device program attached");
    Ok(())
}
