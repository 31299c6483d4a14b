//! Services on the host's network that a container must not reach: a TCP
//! listener on all of the host's addresses (loopback included), and a
//! metadata service at 169.254.169.254 in a network namespace of its own,
//! routed from the host through a veth pair, as a cloud host has one.
//! The host itself reaches both (checked), so a refusal inside proves the
//! container's isolation and not a dead service.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

pub struct HostServices {
    listener: TcpListener,
    netns: String,
    veth: String,
    stop: Arc<AtomicBool>,
    metadata_hits: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl HostServices {
    pub fn start() -> HostServices {
        let listener = TcpListener::bind("0.0.0.0:0").expect("host listener");
        let pid = std::process::id();
        // Not named with the suite's mount mark: `ip netns add` bind-mounts
        // the namespace on the host, which is this fixture, not a leak.
        let netns = format!("gbxmeta{pid}");
        let veth = format!("gbxm{pid}h");
        let mut services = HostServices {
            listener,
            netns: netns.clone(),
            veth: veth.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            metadata_hits: Arc::new(AtomicUsize::new(0)),
            thread: None,
        };
        ip(&["netns", "add", &netns]);
        let peer = format!("gbxm{pid}n");
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", &peer, "netns", &netns,
        ]);
        // A /32 to the peer: the most specific route to the address wins even
        // if another route into 169.254/16 exists on the host.
        ip(&[
            "addr",
            "add",
            "169.254.169.253/32",
            "peer",
            "169.254.169.254/32",
            "dev",
            &veth,
        ]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            "169.254.169.254/30",
            "dev",
            &peer,
        ]);
        ip(&["-n", &netns, "link", "set", &peer, "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        let ns = std::fs::File::open(format!("/run/netns/{netns}")).expect("netns file");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop = services.stop.clone();
        let hits = services.metadata_hits.clone();
        services.thread = Some(std::thread::spawn(move || {
            // setns(CLONE_NEWNET) moves only this thread.
            // SAFETY: a valid namespace fd; the thread is ours alone.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns into the metadata namespace");
            let l = TcpListener::bind((METADATA, 80)).expect("metadata listener");
            l.set_nonblocking(true).expect("nonblocking");
            ready_tx.send(()).expect("ready");
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nsecret-token\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("metadata service up");
        // The host reaches both: otherwise a refusal inside proves nothing.
        let body = reach_metadata();
        assert!(body.contains("secret-token"), "metadata answer: {body:?}");
        for ip in services.host_ips() {
            TcpStream::connect_timeout(
                &SocketAddr::from((ip, services.host_port())),
                Duration::from_secs(5),
            )
            .expect("the host reaches its own service");
        }
        services.connections();
        services.metadata_hits.store(0, Ordering::SeqCst);
        services
    }

    pub fn host_port(&self) -> u16 {
        self.listener.local_addr().expect("addr").port()
    }

    /// Loopback and every global IPv4 address of the host.
    pub fn host_ips(&self) -> Vec<Ipv4Addr> {
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show", "scope", "global"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut ips = vec![Ipv4Addr::LOCALHOST];
        ips.extend(out.lines().filter_map(|l| {
            let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
            cidr.split('/').next()?.parse::<Ipv4Addr>().ok()
        }));
        ips.retain(|ip| *ip != Ipv4Addr::new(169, 254, 169, 253));
        ips
    }

    /// Connections since the last call (host listener) plus metadata requests.
    pub fn connections(&self) -> usize {
        let _ = self.listener.set_nonblocking(true);
        let mut n = 0;
        while self.listener.accept().is_ok() {
            n += 1;
        }
        n + self.metadata_hits.load(Ordering::SeqCst)
    }
}

/// The host's own request to the metadata service; retried for a while, as
/// a fresh veth may need a moment before it carries traffic.
fn reach_metadata() -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&SocketAddr::from((METADATA, 80)), Duration::from_secs(2))
        {
            Ok(mut s) => {
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                return body;
            }
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("the host cannot reach its metadata service: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

impl Drop for HostServices {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Deleting the namespace deletes the veth's peer, and with it the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
    }
}
