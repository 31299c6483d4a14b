//! Benchmark: what confining a container process costs, in microseconds.
//!
//!     cargo bench -p runtime --bench confine
//!
//! Prints the time to compile the seccomp filters (once per supervisor, in
//! the park phase of a warm container) and the time of
//! the steps of `security::confine()` (rlimits, capabilities,
//! no_new_privs, installing the filters), which every command, exec and
//! PID 1 pays right before it runs. The latter runs in a forked child per iteration, since it cannot be
//! undone. Needs root. `GLASSBOX_BENCH_ITERS` (default 200).

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::time::Instant;

fn stats(name: &str, mut us: Vec<f64>) {
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    let pct = |p: f64| us[((us.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<34} {mean:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        pct(0.5),
        pct(0.95),
        us[0]
    );
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("confine: needs root (dropping the bounding set needs CAP_SETPCAP)");
        std::process::exit(1);
    }
    let iters: usize = std::env::var("GLASSBOX_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .max(1);
    let mut compile = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let f = runtime::security::seccomp::Filters::compile().expect("compile");
        compile.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(f);
    }
    let filters = runtime::security::seccomp::Filters::compile().expect("compile");
    let mut confine = Vec::with_capacity(iters);
    let mut caps_limits = Vec::with_capacity(iters);
    let mut install = Vec::with_capacity(iters);
    for _ in 0..iters {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: this benchmark is single-threaded.
        match unsafe { libc::fork() } {
            0 => {
                // The steps of confine(), timed one by one.
                use runtime::security::{caps, rlimits};
                let t = Instant::now();
                let mut ok = rlimits::apply().is_ok() && caps::drop_to_container_set().is_ok();
                let before_filter = t.elapsed();
                // SAFETY: prctl with integer arguments.
                ok &= unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
                let t2 = Instant::now();
                ok &= filters.apply().is_ok();
                let filter = t2.elapsed();
                let total = t.elapsed();
                let figures = if ok {
                    [total, before_filter, filter].map(|d| d.as_secs_f64() * 1e6)
                } else {
                    [-1.0; 3]
                };
                // SAFETY: the write end is ours; the child leaves with _exit.
                let mut w = unsafe { std::fs::File::from_raw_fd(fds[1]) };
                for f in figures {
                    let _ = w.write_all(&f.to_le_bytes());
                }
                unsafe { libc::_exit(0) };
            }
            pid if pid > 0 => {
                // SAFETY: closing our copy of the write end.
                unsafe { libc::close(fds[1]) };
                let mut r = unsafe { std::fs::File::from_raw_fd(fds[0]) };
                let mut buf = [0u8; 24];
                r.read_exact(&mut buf).expect("child's figures");
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                let f = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
                    f64::from_le_bytes(b)
                };
                assert!(f(0) >= 0.0, "confining failed in the child");
                confine.push(f(0));
                caps_limits.push(f(1));
                install.push(f(2));
            }
            _ => panic!("fork failed"),
        }
    }
    println!("seccomp filters: {} BPF instructions", filters.len());
    println!("\n(microseconds)                          mean       p50       p95       min");
    stats("compile the seccomp filters", compile);
    stats("confine: all steps", confine);
    stats("  rlimits and capabilities", caps_limits);
    stats("  installing the filters", install);
}
