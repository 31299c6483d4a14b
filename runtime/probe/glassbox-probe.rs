//! glassbox-probe: attempts syscalls one by one, straight through the
//! `syscall` instruction (no libc wrapper in between: glibc would, for one,
//! fall back from `clone3` to `clone` on its own), and prints one line per
//! probe:
//!
//! ```text
//! <name> ok <return value>
//! <name> err <ERRNO NAME> <errno>
//! ```
//!
//! `glassbox-probe` runs every probe; `glassbox-probe NAME...` runs those.
//! `glassbox-probe --list` prints the names with `deny` or `allow`: what the
//! Glassbox confinement is expected to do with each. The exit status is 0
//! unless a name is unknown (2).
//!
//! Built by runtime/build.rs as a static binary so that it runs in any
//! rootfs; it uses nothing but `std`.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("glassbox-probe issues x86_64 syscall numbers");

use std::arch::asm;

/// # Safety
/// The caller picks arguments the kernel will not use to corrupt our memory.
unsafe fn syscall(nr: i64, a: [i64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the x86_64 syscall ABI; rcx and r11 are clobbered by the CPU.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

const SIGCHLD: i64 = 17;
const CLONE_NEWUTS: i64 = 0x0400_0000;
const CLONE_NEWNS: i64 = 0x0002_0000;
const AF_INET: i64 = 2;
const AF_ALG: i64 = 38;
const AF_VSOCK: i64 = 40;
const SOCK_STREAM: i64 = 1;
const SOCK_DGRAM: i64 = 2;
const SOCK_SEQPACKET: i64 = 5;

/// (name, expected, syscall number, arguments). Arguments are harmless:
/// null pointers and bad fds, so a call that got through fails with EFAULT,
/// EBADF or EINVAL instead of doing anything.
const PROBES: &[(&str, Expect, i64, [i64; 6])] = &[
    ("keyctl", Expect::Deny, 250, [0, -3, 0, 0, 0, 0]),
    ("add_key", Expect::Deny, 248, [0; 6]),
    ("request_key", Expect::Deny, 249, [0; 6]),
    ("io_uring_setup", Expect::Deny, 425, [1, 0, 0, 0, 0, 0]),
    ("io_uring_enter", Expect::Deny, 426, [-1, 0, 0, 0, 0, 0]),
    ("io_uring_register", Expect::Deny, 427, [-1, 0, 0, 0, 0, 0]),
    ("bpf", Expect::Deny, 321, [0; 6]),
    ("perf_event_open", Expect::Deny, 298, [0, 0, -1, -1, 0, 0]),
    ("userfaultfd", Expect::Deny, 323, [0; 6]),
    ("mount", Expect::Deny, 165, [0; 6]),
    ("umount2", Expect::Deny, 166, [0; 6]),
    ("fsopen", Expect::Deny, 430, [0; 6]),
    ("fsconfig", Expect::Deny, 431, [-1, 0, 0, 0, 0, 0]),
    ("fsmount", Expect::Deny, 432, [-1, 0, 0, 0, 0, 0]),
    ("fspick", Expect::Deny, 433, [-1, 0, 0, 0, 0, 0]),
    ("move_mount", Expect::Deny, 429, [-1, 0, -1, 0, 0, 0]),
    ("open_tree", Expect::Deny, 428, [-1, 0, 0, 0, 0, 0]),
    ("mount_setattr", Expect::Deny, 442, [-1, 0, 0, 0, 0, 0]),
    ("pivot_root", Expect::Deny, 155, [0; 6]),
    ("unshare", Expect::Deny, 272, [CLONE_NEWNS, 0, 0, 0, 0, 0]),
    ("setns", Expect::Deny, 308, [-1, 0, 0, 0, 0, 0]),
    ("clone_newuts", Expect::Deny, 56, [CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0, 0]),
    ("clone3", Expect::Enosys, 435, [0; 6]),
    ("kexec_load", Expect::Deny, 246, [0; 6]),
    ("kexec_file_load", Expect::Deny, 320, [-1, -1, 0, 0, 0, 0]),
    ("init_module", Expect::Deny, 175, [0; 6]),
    ("finit_module", Expect::Deny, 313, [-1, 0, 0, 0, 0, 0]),
    ("delete_module", Expect::Deny, 176, [0; 6]),
    ("socket_vsock", Expect::Deny, 41, [AF_VSOCK, SOCK_STREAM, 0, 0, 0, 0]),
    ("socket_alg", Expect::Deny, 41, [AF_ALG, SOCK_SEQPACKET, 0, 0, 0, 0]),
    ("ptrace", Expect::Deny, 101, [16, 1, 0, 0, 0, 0]),
    ("process_vm_readv", Expect::Deny, 310, [1, 0, 0, 0, 0, 0]),
    ("open_by_handle_at", Expect::Deny, 304, [-1, 0, 0, 0, 0, 0]),
    ("personality_other", Expect::Deny, 135, [0x0040_0000, 0, 0, 0, 0, 0]),
    // getpid through the x32 ABI: x32 numbers are on no allowlist.
    ("x32_getpid", Expect::Deny, 0x4000_0000 | 39, [0; 6]),
    ("getpid", Expect::Allow, 39, [0; 6]),
    ("clone_plain", Expect::Allow, 56, [SIGCHLD, 0, 0, 0, 0, 0]),
    ("socket_inet", Expect::Allow, 41, [AF_INET, SOCK_DGRAM, 0, 0, 0, 0]),
    ("personality_query", Expect::Allow, 135, [0xffff_ffff, 0, 0, 0, 0, 0]),
];

#[derive(Clone, Copy)]
enum Expect {
    /// Fails with EPERM.
    Deny,
    /// Fails with ENOSYS (so libc falls back).
    Enosys,
    /// Reaches the kernel.
    Allow,
}

fn errno_name(e: i64) -> &'static str {
    match e {
        1 => "EPERM",
        2 => "ENOENT",
        9 => "EBADF",
        13 => "EACCES",
        14 => "EFAULT",
        22 => "EINVAL",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        _ => "E?",
    }
}

fn run(name: &str, nr: i64, args: [i64; 6]) {
    // SAFETY: every probe's arguments are null pointers, bad fds or flags.
    let ret = unsafe { syscall(nr, args) };
    if ret == 0 && nr == 56 {
        // The child of a clone that got through: leave at once.
        // SAFETY: exit_group never returns.
        unsafe { syscall(231, [0; 6]) };
    }
    if (-4095..0).contains(&ret) {
        println!("{name} err {} {}", errno_name(-ret), -ret);
        return;
    }
    println!("{name} ok {ret}");
    if nr == 56 {
        // Reap the child: wait4(pid, NULL, 0, NULL).
        // SAFETY: null status and rusage pointers are allowed.
        unsafe { syscall(61, [ret, 0, 0, 0, 0, 0]) };
    } else if nr == 41 {
        // SAFETY: closing the socket we just made.
        unsafe { syscall(3, [ret, 0, 0, 0, 0, 0]) };
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for (name, expect, _, _) in PROBES {
            let e = match expect {
                Expect::Deny => "deny",
                Expect::Enosys => "enosys",
                Expect::Allow => "allow",
            };
            println!("{name} {e}");
        }
        return;
    }
    let mut status = 0;
    if args.is_empty() {
        for (name, _, nr, a) in PROBES {
            run(name, *nr, *a);
        }
    }
    for want in &args {
        match PROBES.iter().find(|p| p.0 == want) {
            Some((name, _, nr, a)) => run(name, *nr, *a),
            None => {
                eprintln!("glassbox-probe: unknown probe {want:?}");
                status = 2;
            }
        }
    }
    std::process::exit(status);
}
