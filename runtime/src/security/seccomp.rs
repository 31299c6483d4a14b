//! The seccomp allowlist: every syscall not listed here fails with `EPERM`
//! (`clone3` with `ENOSYS`, so libc falls back to `clone`, whose flags a
//! filter can see).
//!
//! It starts from Docker's default profile for a container without extra
//! capabilities and removes what Glassbox does not want reachable by
//! strangers: `io_uring_*` (a large, often-exploited attack surface),
//! `ptrace`, `process_vm_*`, `kcmp`, `pidfd_getfd` (reading other processes'
//! memory and fds), `name_to_handle_at`, and the kernel-keyring, BPF,
//! perf, userfaultfd, mount (old and new API), `pivot_root`, `unshare`,
//! `setns`, module and kexec calls that Docker only allows with capabilities
//! Glassbox drops anyway (two locks on each door).
//! Argument filters: `clone` without any namespace flag, `socket` for any
//! family but `AF_VSOCK` and `AF_ALG`, `personality` only for the values
//! Docker allows.
//!
//! Other ABIs: a call through the i386 one (`int 0x80`) fails the filter's
//! architecture check, which kills the process; x32 numbers (bit 30 set)
//! are on no list, so they fail with `EPERM`.
//!
//! Three classic BPF programs, installed in this order (the kernel runs them
//! all; the most restrictive result wins, and of two `SECCOMP_RET_ERRNO`
//! results the most recently installed filter's errno):
//! 1. the allowlist ([`ALLOWED`], plus `clone`, `socket` and `personality`
//!    whose arguments the next program checks), default `EPERM`. It is
//!    assembled here as a binary search over the runs of allowed numbers
//!    (see [`assemble_allowlist`]): `seccompiler` spends five instructions
//!    on each syscall, one after another, and the kernel's cost of
//!    installing a filter (it checks, converts and JIT-compiles it, then
//!    runs it for every syscall number to cache the always-allowed ones)
//!    and of running it on every syscall grow with its length and depth;
//! 2. the argument rules, compiled by `seccompiler`: `EPERM` for a `clone`
//!    with any namespace flag, `socket` of a denied family, `personality`
//!    other than Docker's values; everything else passes;
//! 3. `clone3` → `ENOSYS`, also from `seccompiler`.

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "Glassbox's seccomp allowlist lists x86_64 syscall numbers; port runtime/src/security/seccomp.rs \
     (and its AUDIT_ARCH) before building the runtime for another architecture"
);

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("compiling the seccomp filter: {0}")]
    Compile(String),
    #[error("installing the seccomp filter: {0}")]
    Install(String),
}

// Syscalls newer than the libc crate's table.
const SYS_IO_PGETEVENTS: i64 = 333;
const SYS_CACHESTAT: i64 = 451;
const SYS_MAP_SHADOW_STACK: i64 = 453;
const SYS_FUTEX_WAKE: i64 = 454;
const SYS_FUTEX_WAIT: i64 = 455;
const SYS_FUTEX_REQUEUE: i64 = 456;

/// Every namespace flag `clone` accepts: a clone with any of them is denied.
pub const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | 0x80/* CLONE_NEWTIME */) as u64;

/// Socket families nobody in a container gets: vsock talks to the
/// hypervisor, AF_ALG is the kernel crypto API (a history of bugs).
pub const DENIED_SOCKET_FAMILIES: &[i32] = &[libc::AF_VSOCK, libc::AF_ALG];

/// `personality(2)` values Docker allows (Linux, 32-bit, and query).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Allowed without conditions.
const ALLOWED: &[i64] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_access,
    libc::SYS_adjtimex,
    libc::SYS_alarm,
    libc::SYS_arch_prctl,
    libc::SYS_bind,
    libc::SYS_brk,
    SYS_CACHESTAT,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_chmod,
    libc::SYS_chroot,
    libc::SYS_chown,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_creat,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_epoll_create,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_epoll_wait,
    libc::SYS_eventfd,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fork,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    SYS_FUTEX_REQUEUE,
    SYS_FUTEX_WAIT,
    SYS_FUTEX_WAKE,
    libc::SYS_futex_waitv,
    libc::SYS_futimesat,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpgrp,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrlimit,
    libc::SYS_get_robust_list,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_ioctl,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    SYS_IO_PGETEVENTS,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lchown,
    libc::SYS_lgetxattr,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_lstat,
    libc::SYS_madvise,
    SYS_MAP_SHADOW_STACK,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_mincore,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_modify_ldt,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_mseal,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_pause,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_process_mrelease,
    libc::SYS_pselect6,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rmdir,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_select,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setrlimit,
    libc::SYS_set_robust_list,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_set_tid_address,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd,
    libc::SYS_signalfd4,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_stat,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_time,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_utime,
    libc::SYS_utimensat,
    libc::SYS_utimes,
    libc::SYS_vfork,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
];

/// The three compiled programs, installed in this order.
pub struct Filters {
    allowlist: BpfProgram,
    arguments: BpfProgram,
    clone3_enosys: BpfProgram,
}

/// Allowed here and checked by the argument program.
const ARG_CHECKED: &[i64] = &[libc::SYS_clone, libc::SYS_socket, libc::SYS_personality];

const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// BPF_LD | BPF_W | BPF_ABS
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JA: u16 = 0x05;
const BPF_RET_K: u16 = 0x06;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

fn op(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Check the ABI, load the number, then find it in a balanced binary
/// tree of `jge` over the edges of the allowed runs of numbers (the answer
/// changes only there): `ret ALLOW` inside a run, `ret ERRNO(EPERM)`
/// outside. About ten comparisons for any number, where a list of `jeq`
/// takes one per allowed syscall before it. That matters twice per
/// container start: the kernel checks and JIT-compiles the program, and
/// then runs it once for every syscall number to fill its cache of
/// always-allowed ones, both in proportion to its length and depth.
/// Numbers are sorted, so the program is the same for the same list.
fn assemble_allowlist(allowed: &[i64]) -> BpfProgram {
    let mut nrs: Vec<u32> = allowed.iter().map(|n| *n as u32).collect();
    nrs.sort_unstable();
    nrs.dedup();
    // The first number of each run, and the one after its last.
    let mut edges = Vec::new();
    for (i, nr) in nrs.iter().enumerate() {
        if i == 0 || nrs[i - 1] + 1 != *nr {
            edges.push(*nr);
        }
        if nrs.get(i + 1) != Some(&(nr + 1)) {
            edges.push(nr + 1);
        }
    }
    let mut p = vec![
        op(BPF_LD_W_ABS, DATA_ARCH, 0, 0),
        op(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        op(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        op(BPF_LD_W_ABS, DATA_NR, 0, 0),
    ];
    p.extend(edge_tree(&edges, 0, edges.len()));
    p
}

/// The decision among regions `lo..=hi`, where region `j` holds the numbers
/// from `edges[j - 1]` up to `edges[j]` (region 0: below every edge).
/// Edges alternate between a run's start and its end, so odd regions are
/// the allowed ones.
fn edge_tree(edges: &[u32], lo: usize, hi: usize) -> Vec<sock_filter> {
    if lo == hi {
        let ret = if lo % 2 == 1 {
            libc::SECCOMP_RET_ALLOW
        } else {
            RET_EPERM
        };
        return vec![op(BPF_RET_K, ret, 0, 0)];
    }
    // Regions mid..=hi are the numbers at or above edges[mid - 1].
    let mid = (lo + hi).div_ceil(2);
    let below = edge_tree(edges, lo, mid - 1);
    let above = edge_tree(edges, mid, hi);
    let mut p = Vec::with_capacity(below.len() + above.len() + 2);
    match u8::try_from(below.len()) {
        Ok(skip) => p.push(op(BPF_JMP_JGE_K, edges[mid - 1], skip, 0)),
        // Conditional jumps reach 255 instructions at most; `ja` reaches any.
        Err(_) => {
            p.push(op(BPF_JMP_JGE_K, edges[mid - 1], 0, 1));
            p.push(op(BPF_JMP_JA, below.len() as u32, 0, 0));
        }
    }
    p.extend(below);
    p.extend(above);
    p
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| SeccompError::Compile(e.to_string()))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conds).map_err(|e| SeccompError::Compile(e.to_string()))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64)
        .map_err(|e| SeccompError::Compile(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError::Compile(e.to_string()))
}

impl Filters {
    pub fn compile() -> Result<Filters, SeccompError> {
        use SeccompCmpArgLen::{Dword, Qword};
        let mut allowed = ALLOWED.to_vec();
        allowed.extend_from_slice(ARG_CHECKED);
        let allowlist = assemble_allowlist(&allowed);
        let eperm = SeccompAction::Errno(libc::EPERM as u32);
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        // clone(flags, ...): one rule per namespace flag, each matching when it is set.
        let mut clone = Vec::new();
        for bit in 0..64 {
            let flag = 1u64 << bit;
            if CLONE_NS_FLAGS & flag != 0 {
                let set = SeccompCmpOp::MaskedEq(flag);
                clone.push(rule(vec![cond(0, Qword, set, flag)?])?);
            }
        }
        rules.insert(libc::SYS_clone, clone);
        let socket = DENIED_SOCKET_FAMILIES
            .iter()
            .map(|f| rule(vec![cond(0, Dword, SeccompCmpOp::Eq, *f as u64)?]))
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(libc::SYS_socket, socket);
        let other_personality = PERSONALITIES
            .iter()
            .map(|p| cond(0, Dword, SeccompCmpOp::Ne, *p))
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(libc::SYS_personality, vec![rule(other_personality)?]);
        let arguments = compile(rules, SeccompAction::Allow, eperm)?;
        let clone3 = [(libc::SYS_clone3, Vec::new())].into_iter().collect();
        let clone3_enosys = compile(
            clone3,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
        )?;
        Ok(Filters {
            allowlist,
            arguments,
            clone3_enosys,
        })
    }

    /// Install the programs on the calling thread (it must be the only one,
    /// or have `no_new_privs` set; we do both).
    pub fn apply(&self) -> Result<(), SeccompError> {
        for prog in [&self.allowlist, &self.arguments, &self.clone3_enosys] {
            seccompiler::apply_filter(prog).map_err(|e| SeccompError::Install(e.to_string()))?;
        }
        Ok(())
    }

    /// Instructions in all three programs (for logs, tests and benchmarks).
    pub fn len(&self) -> usize {
        self.allowlist.len() + self.arguments.len() + self.clone3_enosys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENIED_NAMED_IN_THE_ISSUE: &[i64] = &[
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_pivot_root,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_clone3,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
    ];

    #[test]
    fn the_allowlist_names_no_denied_syscall() {
        for nr in DENIED_NAMED_IN_THE_ISSUE {
            assert!(!ALLOWED.contains(nr), "syscall {nr} is on the allowlist");
        }
        for nr in [libc::SYS_clone, libc::SYS_socket, libc::SYS_personality] {
            assert!(
                !ALLOWED.contains(&nr),
                "{nr} must only pass its argument filter"
            );
        }
    }

    #[test]
    fn the_filters_compile_and_fit_in_one_program() {
        let f = Filters::compile().expect("compile");
        for p in [&f.allowlist, &f.arguments, &f.clone3_enosys] {
            assert!(p.len() > 4 && p.len() < 4096, "BPF_MAXINSNS: {}", p.len());
        }
    }

    /// The classic BPF a filter uses, run on one syscall: its return value.
    fn run(p: &[sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = &p[pc];
            pc += 1;
            match ins.code {
                BPF_LD_W_ABS if ins.k == DATA_ARCH => acc = arch,
                BPF_LD_W_ABS if ins.k == DATA_NR => acc = nr,
                BPF_JMP_JEQ_K | BPF_JMP_JGE_K => {
                    let taken = match ins.code {
                        BPF_JMP_JEQ_K => acc == ins.k,
                        _ => acc >= ins.k,
                    };
                    pc += if taken { ins.jt } else { ins.jf } as usize;
                }
                BPF_JMP_JA => pc += ins.k as usize,
                BPF_RET_K => return ins.k,
                other => panic!("instruction {other:#x} at {}", pc - 1),
            }
        }
    }

    #[test]
    fn the_allowlist_allows_exactly_its_syscalls() {
        let mut allowed = ALLOWED.to_vec();
        allowed.extend_from_slice(ARG_CHECKED);
        let p = assemble_allowlist(&allowed);
        let x32 = 0x4000_0000u32;
        for nr in (0..1024u32).chain(x32..x32 + 1024).chain([u32::MAX]) {
            let want = if allowed.contains(&(nr as i64)) {
                libc::SECCOMP_RET_ALLOW
            } else {
                RET_EPERM
            };
            assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr), want, "syscall {nr}");
        }
        const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
        assert_eq!(run(&p, AUDIT_ARCH_I386, 1), libc::SECCOMP_RET_KILL_PROCESS);
        // A tree: short, and shallow for every number.
        assert!(p.len() < allowed.len(), "{} instructions", p.len());
    }

    #[test]
    fn far_branches_of_the_tree_go_through_ja() {
        // Every other number: a run per syscall, a tree too big for 8-bit jumps.
        let allowed: Vec<i64> = (0..600).map(|n| 2 * n).collect();
        let p = assemble_allowlist(&allowed);
        assert!(p.iter().any(|i| i.code == BPF_JMP_JA), "{}", p.len());
        for nr in 0..1300u32 {
            let want = if nr % 2 == 0 && nr < 1200 {
                libc::SECCOMP_RET_ALLOW
            } else {
                RET_EPERM
            };
            assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr), want, "syscall {nr}");
        }
    }
}
