//! A hand-assembled `BPF_PROG_TYPE_CGROUP_DEVICE` program and the three
//! bpf(2) calls that load it, attach it to a cgroup and check it is there.
//! A whole BPF toolchain (libbpf, aya) for a dozen instructions is not worth
//! its weight; the encoding below is the kernel's `struct bpf_insn`.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` (type in the low 16 bits of `access_type`) and returns 1 to
//! allow, 0 to deny (`EPERM`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::DeviceRule;
use crate::cgroups::CgroupError;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs (e.g. a systemd unit's above us) keep running too.
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// `struct bpf_insn`: opcode, dst (low nibble) and src (high nibble)
/// registers, offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// `dst = *(u32 *)(src + off)`
const fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0) // BPF_LDX | BPF_MEM | BPF_W
}
/// `dst &= imm` (32-bit)
const fn and32(dst: u8, imm: i32) -> Insn {
    insn(0x54, dst, 0, 0, imm) // BPF_ALU | BPF_AND | BPF_K
}
/// `if dst != imm goto pc + 1 + off`
const fn jne(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm) // BPF_JMP | BPF_JNE | BPF_K
}
/// `r0 = imm; exit`
const fn ret(imm: i32) -> [Insn; 2] {
    [
        insn(0xb7, 0, 0, 0, imm), // BPF_ALU64 | BPF_MOV | BPF_K
        insn(0x95, 0, 0, 0, 0),   // BPF_JMP | BPF_EXIT
    ]
}

/// r2 = type, r3 = major, r4 = minor; a character device matching a rule
/// returns 1, anything else falls through to 0.
pub(crate) fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        load_u32(2, 1, 0),
        and32(2, 0xffff),
        load_u32(3, 1, 4),
        load_u32(4, 1, 8),
    ];
    // One block per rule: [jne major][jne minor]? r0 = 1; exit.
    let blocks: Vec<Vec<Insn>> = rules
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            let len = if r.minor.is_some() { 4 } else { 3 };
            b.push(jne(3, r.major as i32, (len - 1) as i16));
            if let Some(m) = r.minor {
                b.push(jne(4, m as i32, (len - 2) as i16));
            }
            b.extend(ret(1));
            b
        })
        .collect();
    let rules_len: usize = blocks.iter().map(Vec::len).sum();
    // Not a character device: skip every rule, straight to the deny.
    p.push(jne(2, BPF_DEVCG_DEV_CHAR, rules_len as i16));
    p.extend(blocks.into_iter().flatten());
    p.extend(ret(0));
    p
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, zero-padded repr(C) prefix of `union bpf_attr`
    // of the size we pass; the kernel treats missing tail fields as zero.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bpf_err<'a>(
    step: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op: step,
        path: path.to_path_buf(),
        source,
    }
}

fn load(prog: &[Insn], log: Option<&mut [u8]>) -> std::io::Result<OwnedFd> {
    const LICENSE: &[u8] = b"Apache-2.0\0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..9].copy_from_slice(b"glassbox\0");
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = buf.len() as u32;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd that we own
    // (the kernel sets O_CLOEXEC on bpf fds).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Load the program for `rules`, attach it to the cgroup directory `dir`,
/// and check that the cgroup now has exactly one device program.
pub(crate) fn attach_device_filter(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let prog = program(rules);
    let prog_fd = match load(&prog, None) {
        Ok(fd) => fd,
        Err(first) => {
            // Load again with the verifier's log, to say why.
            let mut log = vec![0u8; 16 * 1024];
            let _ = load(&prog, Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            let detail = format!("{first}; verifier: {text}");
            return Err(CgroupError::Io {
                op: "load the device BPF program for",
                path: dir.to_path_buf(),
                source: std::io::Error::new(first.kind(), detail),
            });
        }
    };
    let cg = std::fs::File::open(dir).map_err(bpf_err("open", dir))?;
    let mut attach = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attach).map_err(bpf_err("attach the device BPF program to", dir))?;
    // The attachment holds the program; our fd can go.
    let mut query = ProgQueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut query).map_err(bpf_err("query the device BPF programs of", dir))?;
    if query.prog_cnt != 1 {
        return Err(CgroupError::LimitNotApplied {
            file: dir.to_path_buf(),
            wanted: "1 device program attached".into(),
            got: format!("{} attached", query.prog_cnt),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_jumps_to_the_deny_when_it_does_not_match() {
        let rules = [
            DeviceRule {
                major: 1,
                minor: Some(3),
            },
            DeviceRule {
                major: 136,
                minor: None,
            },
        ];
        let p = program(&rules);
        // 4 loads/and, 1 type check, 4 + 3 rule insns, 2 deny.
        assert_eq!(p.len(), 14);
        let deny = p.len() - 2;
        assert_eq!(p[deny], ret(0)[0]);
        // The type check skips all 7 rule instructions.
        assert_eq!(p[4], jne(2, BPF_DEVCG_DEV_CHAR, 7));
        // Rule 1: major mismatch skips 3 (to rule 2), minor mismatch skips 2.
        assert_eq!(p[5], jne(3, 1, 3));
        assert_eq!(p[6], jne(4, 3, 2));
        assert_eq!(p[7], ret(1)[0]);
        // Rule 2 (wildcard minor): major mismatch skips 2, onto the deny.
        assert_eq!(p[9], jne(3, 136, 2));
        assert_eq!(9 + 1 + 2, deny);
    }
}
