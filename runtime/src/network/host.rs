//! The host's side of egress: the bridge, Glassbox's nftables tables, and
//! each container's veth pair and anti-spoofing entries.
//!
//! This drives the `ip` and `nft` binaries, in the host's own namespaces
//! only, instead of speaking netlink ourselves: `nft -f` loads a whole
//! ruleset as one atomic transaction from text an operator can read and
//! diff (`nft list table inet glassbox`), and the Rust nftables crates either
//! wrap that same binary or are far from complete. Starting them costs a few
//! milliseconds, on a path only egress containers take. They are spawned
//! with `Command` (fork + exec at once), so calling this from a threaded
//! process is safe; per-container work runs in the single-threaded supervisor.

use super::{EgressOptions, NetworkError, NetworkRecord};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Run `program args`, feeding `input` on stdin; a non-zero exit is an error
/// carrying stderr.
fn run(
    program: &'static str,
    args: &[&str],
    input: &str,
    what: &'static str,
) -> Result<(), NetworkError> {
    let spawn_err = |source| NetworkError::Spawn {
        program,
        what,
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetworkError::Command {
            program,
            what,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Make sure the bridge, the tables and IP forwarding are in place. Cheap
/// when they are: one `nft list tables`. Call with the state lock held (so
/// two creates do not race to make them).
///
/// Forwarding (`net.ipv4.ip_forward`) is host-wide: it is switched on here,
/// only when an egress container is created, and never switched back off,
/// since the operator may rely on it for other things.
pub fn ensure(opts: &EgressOptions) -> Result<(), NetworkError> {
    if !link_exists(&opts.bridge) {
        let batch = format!(
            "link add {br} type bridge\naddr add {gw}/{p} dev {br}\nlink set {br} up\n",
            br = opts.bridge,
            gw = opts.gateway(),
            p = opts.prefix,
        );
        if let Err(e) = run("ip", &["-batch", "-"], &batch, "creating the bridge") {
            if !link_exists(&opts.bridge) {
                return Err(e);
            }
        }
        // Egress is IPv4 only: no link-local IPv6 on the gateway either.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", opts.bridge),
            b"1",
        );
    }
    if !tables_present(opts)? {
        run("nft", &["-f", "-"], &ruleset(opts), "loading the ruleset")?;
        tracing::info!(table = %opts.table, bridge = %opts.bridge, "egress ruleset loaded");
    }
    let fwd = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(fwd)
        .map(|s| s.trim() != "1")
        .unwrap_or(true)
    {
        std::fs::write(fwd, b"1").map_err(|source| NetworkError::Io {
            what: "enabling IPv4 forwarding",
            source,
        })?;
        tracing::warn!("enabled net.ipv4.ip_forward for container egress");
    }
    Ok(())
}

fn tables_present(opts: &EgressOptions) -> Result<bool, NetworkError> {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetworkError::Spawn {
            program: "nft",
            what: "listing tables",
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let has = |family: &str| {
        text.lines()
            .any(|l| l.trim() == format!("table {family} {}", opts.table))
    };
    Ok(out.status.success() && has("inet") && has("bridge"))
}

/// Glassbox's ruleset. Both tables are replaced whole, in one transaction.
///
/// `inet`: nothing from the bridge reaches the host itself (any of its
/// addresses, the gateway included: the input chain); forwarded traffic from
/// the bridge must come from the subnet and may not go to a deny-listed
/// range (RFC 1918, CGNAT, link-local and cloud metadata, loopback, "this"
/// network, multicast, reserved) nor be IPv6 at all (egress is IPv4 only; the
/// IPv6 deny set documents the ranges should that change); nothing from
/// outside may open a connection to a container; and what leaves is
/// masqueraded. The containers' own subnet is inside RFC 1918, so a
/// container cannot reach another one through the gateway either.
///
/// `bridge`: each container's port only passes frames whose source MAC and
/// IPv4 address (ARP sender too) are the ones it was given, and drops all
/// else (IPv6, other ethertypes). Ports are also bridge-isolated (see
/// [`attach`]), so containers never exchange frames directly.
pub fn ruleset(opts: &EgressOptions) -> String {
    format!(
        r#"table inet {t}
delete table inet {t}
table bridge {t}
delete table bridge {t}
table inet {t} {{
  set deny4 {{
    type ipv4_addr; flags interval
    elements = {{ 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16,
                 172.16.0.0/12, 192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15,
                 224.0.0.0/4, 240.0.0.0/4 }}
  }}
  set deny6 {{
    type ipv6_addr; flags interval
    elements = {{ ::/127, ::ffff:0.0.0.0/96, 64:ff9b::/96, fc00::/7, fe80::/10, ff00::/8 }}
  }}
  chain input {{
    type filter hook input priority -10; policy accept;
    iifname "{br}" drop
  }}
  chain forward {{
    type filter hook forward priority -10; policy accept;
    iifname "{br}" meta nfproto ipv6 drop
    iifname "{br}" ip6 daddr @deny6 drop
    iifname "{br}" ip saddr != {net}/{p} drop
    iifname "{br}" ip daddr @deny4 drop
    oifname "{br}" ct state established,related accept
    oifname "{br}" drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {net}/{p} oifname != "{br}" masquerade
  }}
}}
table bridge {t} {{
  set ifaces {{ type ifname; }}
  set ports {{ type ifname . ether_addr . ipv4_addr; }}
  chain prerouting {{
    type filter hook prerouting priority -200; policy accept;
    iifname != @ifaces accept
    ether type ip iifname . ether saddr . ip saddr @ports accept
    ether type arp iifname . ether saddr . arp saddr ip @ports iifname . arp saddr ether . arp saddr ip @ports accept
    drop
  }}
}}
"#,
        t = opts.table,
        br = opts.bridge,
        net = opts.subnet,
        p = opts.prefix,
    )
}

fn elements(rec: &NetworkRecord, verb: &str) -> String {
    format!(
        "{verb} element bridge {t} ifaces {{ {v} }}\n{verb} element bridge {t} ports {{ {v} . {mac} . {a} }}\n",
        t = rec.table,
        v = rec.veth,
        mac = rec.mac_string(),
        a = rec.address,
    )
}

/// Give the container whose init is `pid` its veth pair: `eth0` (with the
/// recorded MAC) inside its network namespace, the host end an isolated port
/// of the bridge, and its anti-spoofing entries. The inside's address and
/// route are set by the container itself ([`super::inside`]).
pub fn attach(rec: &NetworkRecord, pid: i32) -> Result<(), NetworkError> {
    let batch = format!(
        "link add {v} type veth peer name eth0 address {mac} netns {pid}\n\
         link set dev {v} master {br}\n\
         link set dev {v} type bridge_slave isolated on\n\
         link set dev {v} up\n",
        v = rec.veth,
        mac = rec.mac_string(),
        br = rec.bridge,
    );
    let made = run("ip", &["-batch", "-"], &batch, "creating the veth pair").and_then(|()| {
        run(
            "nft",
            &["-f", "-"],
            &elements(rec, "add"),
            "adding the port",
        )
    });
    if made.is_err() {
        let _ = detach(rec);
    }
    made
}

/// Undo [`attach`]: delete the veth pair (if the container's namespace has
/// not taken it down already) and the port's entries. Idempotent: what is
/// already gone is not an error.
pub fn detach(rec: &NetworkRecord) -> Result<(), NetworkError> {
    let mut result = Ok(());
    if link_exists(&rec.veth) {
        if let Err(e) = run(
            "ip",
            &["link", "del", "dev", &rec.veth],
            "",
            "deleting the veth",
        ) {
            if link_exists(&rec.veth) {
                result = Err(e);
            }
        }
    }
    if let Err(e) = run(
        "nft",
        &["-f", "-"],
        &elements(rec, "delete"),
        "deleting the port",
    ) {
        let gone = matches!(&e, NetworkError::Command { stderr, .. } if stderr.contains("No such file or directory"));
        if !gone {
            result = result.and(Err(e));
        }
    }
    result
}

/// Remove the bridge and Glassbox's tables (`gbx network down`; tests).
/// Containers still attached lose egress. Forwarding is left as it is.
pub fn teardown(opts: &EgressOptions) -> Result<(), NetworkError> {
    let mut result = Ok(());
    for family in ["inet", "bridge"] {
        let script = format!(
            "table {family} {t}\ndelete table {family} {t}\n",
            t = opts.table
        );
        if let Err(e) = run("nft", &["-f", "-"], &script, "deleting the tables") {
            result = Err(e);
        }
    }
    if link_exists(&opts.bridge) {
        result = result.and(run(
            "ip",
            &["link", "del", "dev", &opts.bridge],
            "",
            "deleting the bridge",
        ));
    }
    result
}
