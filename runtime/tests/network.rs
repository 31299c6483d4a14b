//! Egress networking against the real kernel: a fake "internet" made of a
//! network namespace of our own, reached from the host through a veth pair,
//! holding a "public" server (203.0.113.10), a "metadata" server
//! (169.254.169.254) and a "private" one (10.250.0.10); plus a listener on
//! every address of the host itself (its loopback, the bridge's gateway and
//! the address facing the fake internet). Each test makes its own bridge,
//! nftables tables and namespace, and removes them even when it fails.

mod common;

use common::Env;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Tests share host routes and the fake internet's addresses: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PORT: u16 = 18473;
const PUBLIC: &str = "203.0.113.10";
const METADATA: &str = "169.254.169.254";
const PRIVATE: &str = "10.250.0.10";
/// The host's end of the link to the fake internet.
const HOST_UPLINK: &str = "198.51.100.1";
const INTERNET_END: &str = "198.51.100.2";

fn sh(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("running a host tool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn must(args: &[&str]) {
    let (ok, out) = sh(args);
    assert!(ok, "{args:?}: {out}");
}

/// A tiny HTTP server: answers every request with who it is and who asked.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).expect("nonblocking");
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut conn, peer)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let local = conn.local_addr().map(|a| a.ip().to_string());
                let body = format!(
                    "hello from {} to {}\n",
                    local.unwrap_or_default(),
                    peer.ip()
                );
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// The fake internet, the host listener, and this test's egress setup.
struct Net {
    env: Env,
    flags: Vec<String>,
    netns: String,
    uplink: String,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    forward_before: String,
    pub gateway: String,
    _serial: MutexGuard<'static, ()>,
}

impl Net {
    fn new() -> Net {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id() % 100_000;
        let third = 1 + pid % 250;
        let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut net = Net {
            env: Env::new(),
            flags: vec![
                "--allow-egress".into(),
                "--egress-bridge".into(),
                format!("gbxt{pid}"),
                "--egress-subnet".into(),
                format!("10.89.{third}.0/24"),
                "--egress-table".into(),
                format!("glassbox_t{pid}"),
            ],
            netns: format!("gbxinet{pid}"),
            uplink: format!("gbxu{pid}"),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            forward_before,
            gateway: format!("10.89.{third}.1"),
            _serial: serial,
        };
        net.build_internet();
        net
    }

    fn build_internet(&mut self) {
        let (ns, up) = (self.netns.clone(), self.uplink.clone());
        let peer = format!("{up}p");
        must(&["ip", "netns", "add", &ns]);
        must(&[
            "ip", "link", "add", &up, "type", "veth", "peer", "name", &peer, "netns", &ns,
        ]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_UPLINK}/30"),
            "dev",
            &up,
        ]);
        must(&["ip", "link", "set", &up, "up"]);
        let inside = |args: &[&str]| {
            let mut full = vec!["ip", "-n", ns.as_str()];
            full.extend_from_slice(args);
            must(&full);
        };
        inside(&["addr", "add", &format!("{INTERNET_END}/30"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        for a in [PUBLIC, METADATA, PRIVATE] {
            inside(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
            must(&[
                "ip",
                "route",
                "add",
                &format!("{a}/32"),
                "via",
                INTERNET_END,
            ]);
        }
        inside(&["route", "add", "default", "via", HOST_UPLINK]);
        // Servers inside the fake internet: a thread that joined its namespace.
        let path = format!("/run/netns/{ns}");
        let stop = self.stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.threads.push(std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("netns file");
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).expect("bind in netns");
            tx.send(()).expect("ready");
            serve(l, stop)
        }));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("fake internet server ready");
        // The host's own services: every address of the host, port PORT.
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).expect("bind on the host");
        let stop = self.stop.clone();
        self.threads
            .push(std::thread::spawn(move || serve(l, stop)));
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        v.extend_from_slice(rest);
        v
    }

    fn ok(&self, rest: &[&str]) -> String {
        self.env.ok(&self.args(rest))
    }

    fn bridge(&self) -> &str {
        &self.flags[2]
    }

    fn table(&self) -> &str {
        &self.flags[6]
    }

    /// Port entries in the bridge table's anti-spoofing set.
    fn port_entries(&self) -> String {
        sh(&["nft", "list", "set", "bridge", self.table(), "ports"]).1
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for id in self.env.container_dirs() {
            let _ = self.env.cmd(&["rm", "-f", &id]).output();
        }
        let _ = self.env.cmd(&self.args(&["network", "down"])).output();
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for a in [PUBLIC, METADATA, PRIVATE] {
            let _ = sh(&["ip", "route", "del", &format!("{a}/32")]);
        }
        let _ = sh(&["ip", "link", "del", &self.uplink]);
        let _ = sh(&["ip", "netns", "del", &self.netns]);
        if !self.forward_before.is_empty() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.forward_before);
        }
        if !std::thread::panicking() {
            let (_, links) = sh(&["ip", "-br", "link"]);
            assert!(
                !links.contains(self.bridge()) && !links.contains(&self.uplink),
                "links left: {links}"
            );
        }
    }
}

/// A shell script that tries each target with nc (busybox's static wget
/// cannot run without a resolver library) and prints `OK target:
/// answer` or `NO target`.
fn probe_script(targets: &[String]) -> String {
    targets
        .iter()
        .map(|t| {
            format!(
                "out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {t} {PORT} 2>/dev/null | grep hello); if [ -n \"$out\" ]; then echo \"OK {t}: $out\"; else echo \"NO {t}\"; fi"
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn verdicts(out: &str) -> std::collections::BTreeMap<String, bool> {
    out.lines()
        .filter_map(|l| {
            let (verdict, rest) = l.split_once(' ')?;
            let target = rest.split(':').next()?.trim().to_string();
            Some((target, verdict == "OK"))
        })
        .collect()
}

#[test]
fn net_egress_reaches_the_public_internet_but_not_host_private_or_metadata() {
    let net = Net::new();
    let targets: Vec<String> = [
        PUBLIC,
        METADATA,
        PRIVATE,
        "127.0.0.1",
        &net.gateway,
        HOST_UPLINK,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let script = probe_script(&targets);
    let out = net.ok(&[
        "run",
        "--rm",
        "--network",
        "egress",
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    let v = verdicts(&out);
    assert_eq!(v.len(), targets.len(), "{out}");
    assert!(v[PUBLIC], "the public server must answer: {out}");
    // NAT: the public server sees the host's address, not the container's.
    assert!(
        out.contains(&format!("hello from {PUBLIC} to {HOST_UPLINK}")),
        "{out}"
    );
    for blocked in [METADATA, PRIVATE, "127.0.0.1", &net.gateway, HOST_UPLINK] {
        assert!(!v[blocked], "{blocked} must not be reachable: {out}");
    }
    // The host's listener is there: it answers from the host itself.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", PORT)).expect("host listener");
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("request");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.contains("hello from 127.0.0.1"), "{answer}");
}

#[test]
fn net_none_is_loopback_only_and_egress_needs_the_operator() {
    let net = Net::new();
    let ifaces = net.ok(&["run", "--rm", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(ifaces.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    let (code, _, err) = net
        .env
        .run(&["run", "--rm", "--network", "egress", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("not enabled"), "{err}");
    // Nothing was made for the refused container.
    assert!(net.env.container_dirs().is_empty());
    let id = net.env.detached(&[], &["sleep", "30"]);
    let info = net.env.inspect(&id);
    assert_eq!(info["network"]["mode"], "none");
    assert!(info["network"]["address"].is_null());
    net.env.ok(&["rm", "-f", &id]);
}

#[test]
fn net_two_containers_get_their_own_addresses_and_cannot_spoof() {
    let net = Net::new();
    let a = net.ok(&["run", "-d", "--network", "egress", "busybox", "sleep", "60"]);
    let b = net.ok(&[
        "run",
        "-d",
        "--network",
        "egress",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "18473",
    ]);
    let (a, b) = (a.trim(), b.trim());
    let (ia, ib) = (net.env.inspect(a), net.env.inspect(b));
    let addr = |i: &serde_json::Value| {
        i["network"]["address"]
            .as_str()
            .expect("address")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let (addr_a, addr_b) = (addr(&ia), addr(&ib));
    assert_ne!(addr_a, addr_b);
    assert_eq!(ia["network"]["mode"], "egress");
    assert_eq!(ia["network"]["gateway"], net.gateway.as_str());
    let veth = ia["network"]["veth"].as_str().expect("veth").to_string();
    assert!(std::path::Path::new("/sys/class/net").join(&veth).exists());
    // A cannot reach B directly (isolated bridge ports, private range).
    let out = net.ok(&[
        "exec",
        a,
        "sh",
        "-c",
        &probe_script(std::slice::from_ref(&addr_b)),
    ]);
    assert!(out.starts_with("NO "), "{out}");
    let probe = probe_script(&[PUBLIC.to_string()]);
    let out = net.ok(&["exec", a, "sh", "-c", &probe]);
    assert!(out.starts_with("OK "), "control must pass: {out}");
    // A takes B's address. The change is made from the host, in A's network
    // namespace, so that the bridge's checks are tested whatever
    // capabilities a container keeps.
    let netns = format!("--net=/proc/{}/ns/net", ia["host_pid"]);
    let in_a = |args: &str| {
        let mut full = vec!["nsenter", netns.as_str(), "ip"];
        full.extend(args.split(' '));
        must(&full);
    };
    in_a(&format!("addr del {addr_a}/24 dev eth0"));
    in_a(&format!("addr add {addr_b}/24 dev eth0"));
    in_a(&format!("route add default via {}", net.gateway));
    let out = net.ok(&["exec", a, "sh", "-c", &probe]);
    assert!(
        out.starts_with("NO "),
        "a spoofed source address got out: {out}"
    );
    // Its own address again, with another MAC address.
    in_a("addr flush dev eth0");
    in_a("link set eth0 address 02:42:de:ad:be:ef");
    in_a(&format!("addr add {addr_a}/24 dev eth0"));
    in_a(&format!("route add default via {}", net.gateway));
    let out = net.ok(&["exec", a, "sh", "-c", &probe]);
    assert!(
        out.starts_with("NO "),
        "a spoofed MAC address got out: {out}"
    );
    // B, untouched, still gets out.
    let out = net.ok(&["exec", b, "sh", "-c", &probe]);
    assert!(out.starts_with("OK "), "{out}");
    net.ok(&["rm", "-f", a, b]);
}

#[test]
fn net_remove_releases_the_veth_the_address_and_the_port_even_after_a_crash() {
    let net = Net::new();
    let first = net.ok(&["run", "-d", "--network", "egress", "busybox", "sleep", "60"]);
    let first = first.trim().to_string();
    let info = net.env.inspect(&first);
    let address = info["network"]["address"]
        .as_str()
        .expect("address")
        .to_string();
    let veth = info["network"]["veth"].as_str().expect("veth").to_string();
    assert!(net.port_entries().contains(&veth), "{}", net.port_entries());
    // A crash: the supervisor and the container die without cleaning up.
    let sup = info["supervisor_pid"].as_u64().expect("supervisor pid") as i32;
    let pid1 = info["host_pid"].as_u64().expect("host pid") as i32;
    for pid in [sup, pid1] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    net.ok(&["rm", "-f", &first]);
    common::wait_for("the veth to go", Duration::from_secs(5), || {
        (!std::path::Path::new("/sys/class/net").join(&veth).exists()).then_some(())
    });
    assert!(
        !net.port_entries().contains(&veth),
        "{}",
        net.port_entries()
    );
    // The address is free again.
    let second = net.ok(&["run", "-d", "--network", "egress", "busybox", "sleep", "60"]);
    let second = second.trim().to_string();
    assert_eq!(
        net.env.inspect(&second)["network"]["address"],
        address.as_str()
    );
    // A container that exited on its own: its namespace took eth0 and the
    // veth with it; removal still takes the port entry.
    // The exec'd `kill` may itself die with the PID namespace it is in (137).
    let _ = net.env.run(&net.args(&["exec", &second, "kill", "1"]));
    common::wait_for("the container to exit", Duration::from_secs(5), || {
        (net.env.inspect(&second)["state"] == "exited").then_some(())
    });
    net.ok(&["rm", &second]);
    assert!(
        net.port_entries().lines().all(|l| !l.contains("gbx")),
        "{}",
        net.port_entries()
    );
    net.env.assert_clean();
}

#[test]
fn net_concurrent_creates_get_distinct_addresses() {
    let net = Net::new();
    let ids: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    net.ok(&["run", "-d", "--network", "egress", "busybox", "sleep", "60"])
                        .trim()
                        .to_string()
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("create thread"))
            .collect()
    });
    let mut addrs: Vec<String> = ids
        .iter()
        .map(|id| {
            net.env.inspect(id)["network"]["address"]
                .as_str()
                .expect("address")
                .to_string()
        })
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), ids.len(), "{addrs:?}");
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    net.ok(&rm);
    assert!(
        net.port_entries().lines().all(|l| !l.contains("gbx")),
        "{}",
        net.port_entries()
    );
}
