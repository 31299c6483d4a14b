//! What a container must not see or reach of the host: its processes,
//! its files through /proc, fds leaked in, its abstract unix sockets, and
//! its network services (loopback and the metadata address).

use super::*;

/// A host process with a marker in its command line, killed (with its
/// child) on drop.
struct HostProcess(std::process::Child);

impl HostProcess {
    fn start() -> HostProcess {
        use std::os::unix::process::CommandExt;
        // A shell that waits for its child keeps its own command line (marker
        // included), busybox and bash alike; its own process group, so that
        // the child goes with it.
        HostProcess(
            std::process::Command::new("/bin/sh")
                .args(["-c", "sleep 600; : gbx-escape-sentinel"])
                .process_group(0)
                .spawn()
                .expect("a host process to look for"),
        )
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this struct made.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn container_escape_host_processes_and_proc() {
    let host = HostSnapshot::take("proc");
    let mut r = Report::new("ptrace, /proc/*/exe, /proc/*/root");
    let sentinel = HostProcess::start();
    let hpid = sentinel.0.id();
    wait_for(
        "the host process to look for",
        Duration::from_secs(10),
        || {
            let cmdline = std::fs::read(format!("/proc/{hpid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline)
                .contains("gbx-escape-sentinel")
                .then_some(())
        },
    );
    let v = Victim::start();
    let run = v.sh("ls -d /proc/[0-9]* | wc -l");
    let n: u32 = run.out.trim().parse().unwrap_or(u32::MAX);
    r.verdict(
        "ls /proc: only the container's processes",
        n <= 5,
        &format!("{n} processes visible"),
        &format!("{n} processes visible: {}", report::brief(&run.out)),
    );
    let run = v.sh("grep -l gbx-escape-[s]entinel /proc/[0-9]*/cmdline");
    r.verdict(
        "find a host process by its command line",
        run.code != 0 && run.out.trim().is_empty(),
        "not found",
        &report::brief(&run.out),
    );
    let run = v.sh(&format!("kill -0 {hpid}"));
    r.expect_error(&format!("kill -0 <host pid {hpid}>"), &run, &[ESRCH]);
    let run = v.sh(&format!("ls /proc/{hpid}/root/"));
    r.expect_error("ls /proc/<host pid>/root/", &run, &[ENOENT]);
    // An exe link that names a file missing from the container names a host
    // file (CVE-2019-5736's way out); a sealed memfd is fine.
    let run = v.sh(
        "for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null) || { echo \"denied $p\"; continue; }; \
         case \"$l\" in /memfd:*) ;; *) [ -e \"$l\" ] || echo \"host $p -> $l\";; esac; done",
    );
    let host_paths: Vec<&str> = run.out.lines().filter(|l| l.starts_with("host ")).collect();
    let denied = run.out.lines().filter(|l| l.starts_with("denied ")).count();
    r.verdict(
        "readlink /proc/*/exe",
        host_paths.is_empty(),
        &format!("no host path ({denied} links not readable, the rest the container's own or a sealed memfd)"),
        &host_paths.join("; "),
    );
    // PID 1 is the container's own process: its root is the container's root
    // when it can be read at all, and it cannot (EACCES) once PID 1 is
    // non-dumpable and nobody holds CAP_SYS_PTRACE.
    let run = v.sh("[ \"$(ls -a /proc/1/root/)\" = \"$(ls -a /)\" ] && readlink /proc/1/root");
    let unreadable = run.code != 0 && run.out.contains("Permission denied");
    r.verdict(
        "/proc/1/root",
        unreadable || (run.code == 0 && run.out.trim() == "/"),
        if unreadable {
            "EACCES: PID 1 cannot be inspected"
        } else {
            "the container's own root"
        },
        &report::brief(&run.out),
    );
    let run = v.sh(&format!("cat {}", host.sentinel().display()));
    r.expect_error("cat a host file outside the state dir", &run, &[ENOENT]);
    drop(sentinel);
    drop(v);
    host.verify(&mut r);
    r.finish();
}

/// One `ls -l /proc/X/fd` listing: the fds that are neither stdio nor a
/// terminal, /dev/null or the listing's own directory.
fn unexpected_fds(listing: &str, stdio_pipes: bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd: u32 = left.split_whitespace().last()?.parse().ok()?;
            let fine = target == "/dev/null"
                || target.starts_with("/dev/pts/")
                || target == "/dev/console"
                || (stdio_pipes && fd <= 2 && target.starts_with("pipe:"));
            (!fine).then(|| format!("{fd} -> {target}"))
        })
        .collect()
}

#[test]
fn container_escape_leaked_fds() {
    let host = HostSnapshot::take("fds");
    let mut r = Report::new("leaked fds");
    let v = Victim::start();
    let run = v.sh("ls -l /proc/self/fd/");
    let bad = unexpected_fds(&run.out, true);
    r.verdict(
        "ls -l /proc/self/fd (an exec'd shell)",
        run.code == 0 && bad.is_empty(),
        "only stdio",
        &format!("{bad:?}"),
    );
    let run = v.sh("ls -l /proc/1/fd/");
    let bad = unexpected_fds(&run.out, false);
    if run.code != 0 && (run.out.contains(EACCES.1) || run.out.contains(EPERM.1)) {
        r.blocked(
            "ls -l /proc/1/fd (glassbox-init)",
            "EACCES: not inspectable",
        );
    } else {
        r.verdict(
            "ls -l /proc/1/fd (glassbox-init)",
            bad.is_empty(),
            "only /dev/null and terminals",
            &format!("reachable: {bad:?}"),
        );
    }
    let out = run_of(v.env.run(&[
        "run",
        "--rm",
        "--no-init",
        "busybox",
        "ls",
        "-l",
        "/proc/1/fd/",
    ]));
    let bad = unexpected_fds(&out.out, true);
    r.verdict(
        "ls -l /proc/1/fd (PID 1 without init)",
        out.code == 0 && bad.is_empty(),
        "only stdio",
        &format!("{bad:?}"),
    );
    drop(v);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_abstract_unix_socket() {
    use std::os::linux::net::SocketAddrExt;
    let host = HostSnapshot::take("unix");
    let mut r = Report::new("abstract unix sockets");
    let name = format!("gbx-escape-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).expect("binding on the host");
    listener.set_nonblocking(true).expect("nonblocking");
    let on_host = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    assert!(
        on_host.contains(&format!("@{name}")),
        "the host does not list its own socket"
    );
    let v = Victim::start();
    let run = v.sh(&format!("grep @{name} /proc/net/unix"));
    r.verdict(
        "grep @<host socket> /proc/net/unix",
        run.code != 0 && run.out.trim().is_empty(),
        "not listed (own network namespace)",
        &report::brief(&run.out),
    );
    let run = v.sh("grep -c @ /proc/net/unix");
    r.verdict(
        "abstract sockets visible inside",
        run.out.trim() == "0",
        "none",
        &report::brief(&run.out),
    );
    r.verdict(
        "the host socket was never connected to",
        listener.accept().is_err(),
        "no connection",
        "a connection arrived",
    );
    drop(v);
    host.verify(&mut r);
    r.finish();
}

/// Needs `ip`, veth and the host's network: not in the cgroup v2 VM.
#[test]
fn escape_host_loopback_and_metadata() {
    let host = HostSnapshot::take("network");
    let mut r = Report::new("host network services");
    let services = net::HostServices::start();
    let v = Victim::start();
    let refused = [ECONNREFUSED, ENETUNREACH, ETIMEDOUT];
    for ip in services.host_ips() {
        let run = v.sh(&format!(
            "nc -w 2 {ip} {} < /dev/null",
            services.host_port()
        ));
        r.expect_error(
            &format!("connect to a host service on {ip}"),
            &run,
            &refused,
        );
    }
    let run = v.sh(&format!(
        "printf 'GET /latest/meta-data/ HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} 80",
        net::METADATA
    ));
    r.expect_error(
        "connect to the metadata service at 169.254.169.254:80",
        &run,
        &refused,
    );
    let hits = services.connections();
    r.verdict(
        "connections the host services saw from the container",
        hits == 0,
        "none",
        &format!("{hits}"),
    );
    drop(v);
    drop(services);
    host.verify(&mut r);
    r.finish();
}
