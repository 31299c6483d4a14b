//! Capabilities: every container process keeps only [`KEPT`], in all five
//! sets (bounding, permitted, effective, inheritable; ambient empty).
//!
//! Docker keeps 14 capabilities; Glassbox keeps 9. Dropped beyond Docker:
//! - `NET_RAW`: raw sockets forge packets and sniff the container's network
//!   (ARP/DNS spoofing of neighbours on a bridge);
//! - `MKNOD`: device nodes are useless behind the devices cgroup, and
//!   creating them is the first step of every device-based escape;
//! - `SETFCAP`: file capabilities would let a binary regain what we drop
//!   (with a user namespace it also lets root map uid 0 of the parent);
//! - `SETPCAP`: nothing in a playground needs to shuffle capability sets;
//! - `AUDIT_WRITE`: writes to the host's audit log.

use caps::{CapSet, Capability, CapsHashSet};

#[derive(Debug, thiserror::Error)]
#[error("capabilities: {step}: {detail}")]
pub struct CapsError {
    step: &'static str,
    detail: String,
}

/// What root in a container may do.
pub const KEPT: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
];

/// [`KEPT`] as the bit mask `/proc/PID/status` shows (`CapBnd`, `CapEff`...).
pub fn kept_mask() -> u64 {
    KEPT.iter().fold(0, |m, c| m | c.bitmask())
}

fn err(step: &'static str) -> impl Fn(caps::errors::CapsError) -> CapsError {
    move |e| CapsError {
        step,
        detail: e.to_string(),
    }
}

/// Drop the bounding set first (that needs `CAP_SETPCAP`, which goes with
/// the rest), then set the other sets to exactly [`KEPT`].
pub fn drop_to_container_set() -> Result<(), CapsError> {
    let kept: CapsHashSet = KEPT.iter().copied().collect();
    // Every capability the kernel knows, including ones newer than the
    // `caps` crate: cap_last_cap is the highest index.
    let last = last_cap();
    for index in 0..=last {
        if KEPT.iter().any(|c| u32::from(c.index()) == index) {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, index as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            return Err(CapsError {
                step: "dropping from the bounding set",
                detail: format!("capability {index}: {}", nix::Error::last()),
            });
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err("clearing the ambient set"))?;
    caps::set(None, CapSet::Inheritable, &kept).map_err(err("setting the inheritable set"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(err("setting the effective set"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(err("setting the permitted set"))?;
    Ok(())
}

/// The kernel's highest capability index; the `caps` crate's if /proc
/// cannot tell (it is read before /proc is read-only, but may be masked).
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            caps::all()
                .iter()
                .map(|c| u32::from(c.index()))
                .max()
                .unwrap_or(40)
        })
}
