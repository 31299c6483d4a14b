//! Container networking: none (the default) or egress.
//!
//! Every container has a network namespace of its own. With [`NetworkMode::None`]
//! it holds only `lo`. With [`NetworkMode::Egress`], which the operator must
//! enable ([`EgressOptions`]), the container also gets `eth0`: one end of a
//! veth pair whose host end is an isolated port of a host bridge, an address
//! from the bridge's subnet and a default route via the bridge's gateway
//! address. Traffic leaves through the host's uplink with NAT, and an
//! nftables ruleset of Glassbox's own ([`host`]) drops everything aimed at the
//! host itself, private and special ranges and cloud metadata, and anything a
//! container sends with an address or MAC that is not its own.
//!
//! Host-side work ([`host`]) runs in the host's namespaces; the inside of the
//! container ([`inside`]) is configured by the container's own process, by
//! ioctl, before the user's command runs. No host binary ever runs inside a
//! container's namespaces.

pub mod host;
pub mod inside;

use crate::state::StateDir;
use protocol::NetworkInfo;
pub use protocol::NetworkMode;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network egress is not enabled on this host (the operator must enable it)")]
    EgressDisabled,
    #[error("invalid egress setting: {0}")]
    InvalidOptions(String),
    #[error("no free address left in {subnet}/{prefix}")]
    Exhausted { subnet: Ipv4Addr, prefix: u8 },
    #[error("running {program} ({what}): {source}")]
    Spawn {
        program: &'static str,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{program} failed ({what}): {stderr}")]
    Command {
        program: &'static str,
        what: &'static str,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// The operator's egress setup. A runtime without it refuses egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressOptions {
    /// The host bridge (created on first use, kept afterwards).
    pub bridge: String,
    /// The containers' subnet; the gateway is its first address.
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    /// Name of Glassbox's nftables tables (`inet` and `bridge` families).
    pub table: String,
}

pub const DEFAULT_BRIDGE: &str = "glassbox0";
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";
pub const DEFAULT_TABLE: &str = "glassbox";
/// Host ends of containers' veth pairs: this prefix and 12 hex digits of the id.
pub const VETH_PREFIX: &str = "gbx";

impl Default for EgressOptions {
    fn default() -> Self {
        EgressOptions {
            bridge: DEFAULT_BRIDGE.into(),
            subnet: Ipv4Addr::new(10, 88, 0, 0),
            prefix: 16,
            table: DEFAULT_TABLE.into(),
        }
    }
}

impl EgressOptions {
    /// Options for `bridge`, `subnet` (`a.b.c.d/n`, n from 16 to 29) and `table`.
    pub fn new(bridge: &str, subnet: &str, table: &str) -> Result<EgressOptions, NetworkError> {
        let bad = |m: String| NetworkError::InvalidOptions(m);
        let (addr, prefix) = subnet
            .split_once('/')
            .ok_or_else(|| bad(format!("subnet {subnet:?} is not a.b.c.d/n")))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad(format!("subnet {subnet:?} is not a.b.c.d/n")))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad(format!("subnet {subnet:?} is not a.b.c.d/n")))?;
        if !(16..=29).contains(&prefix) {
            return Err(bad(format!("subnet prefix /{prefix}: use /16 to /29")));
        }
        if u32::from(addr) & !mask(prefix) != 0 {
            return Err(bad(format!("{subnet} has host bits set")));
        }
        // The deny-list must cover the containers' own subnet, or containers
        // could reach each other through the gateway.
        if !(addr.is_private()) {
            return Err(bad(format!("{subnet} is not inside an RFC 1918 range")));
        }
        let name_ok = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !name_ok(bridge, 15) || looks_like_veth(bridge) {
            return Err(bad(format!("bridge name {bridge:?}")));
        }
        if !name_ok(table, 32) || table.contains('-') {
            return Err(bad(format!("table name {table:?}")));
        }
        Ok(EgressOptions {
            bridge: bridge.into(),
            subnet: addr,
            prefix,
            table: table.into(),
        })
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet) + 1)
    }

    fn hosts(&self) -> std::ops::Range<u32> {
        let base = u32::from(self.subnet);
        // .0 is the network, .1 the gateway, the last the broadcast address.
        base + 2..base + (1u32 << (32 - self.prefix)) - 1
    }
}

pub(crate) fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// A container's egress network, recorded in its `config.json` at create
/// time (under the state lock, which makes address allocation race-free) so
/// that removal can always undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub bridge: String,
    pub table: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Host end of the veth pair; the container's end is `eth0`.
    pub veth: String,
    /// MAC address of the container's `eth0` (derived from its address).
    pub mac: [u8; 6],
}

impl NetworkRecord {
    pub fn mac_string(&self) -> String {
        let m = self.mac;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }

    pub fn info(record: Option<&NetworkRecord>) -> NetworkInfo {
        match record {
            None => NetworkInfo::default(),
            Some(r) => NetworkInfo {
                mode: NetworkMode::Egress,
                address: Some(format!("{}/{}", r.address, r.prefix)),
                gateway: Some(r.gateway.to_string()),
                veth: Some(r.veth.clone()),
                bridge: Some(r.bridge.clone()),
            },
        }
    }
}

/// Pick the lowest address of the subnet no container holds. Call with the
/// state lock held: the caller writes the record into the new container's
/// `config.json` before releasing it. An address is free again once the
/// container's directory is gone (removal), crashed containers included.
pub fn allocate(
    state: &StateDir,
    opts: &EgressOptions,
    id: &str,
) -> Result<NetworkRecord, NetworkError> {
    let mut taken = std::collections::HashSet::new();
    for other in state.container_ids()? {
        if let Ok(c) = state.container(&other).read_config() {
            if let Some(n) = c.network {
                taken.insert(u32::from(n.address));
            }
        }
    }
    let address = opts
        .hosts()
        .find(|a| !taken.contains(a))
        .map(Ipv4Addr::from)
        .ok_or(NetworkError::Exhausted {
            subnet: opts.subnet,
            prefix: opts.prefix,
        })?;
    let o = address.octets();
    Ok(NetworkRecord {
        bridge: opts.bridge.clone(),
        table: opts.table.clone(),
        address,
        prefix: opts.prefix,
        gateway: opts.gateway(),
        veth: veth_name(id),
        // Locally administered, unicast; unique per address.
        mac: [0x02, 0x42, o[0], o[1], o[2], o[3]],
    })
}

/// Whether `name` has the shape of a container's veth (the leak check's too).
fn looks_like_veth(name: &str) -> bool {
    name.strip_prefix(VETH_PREFIX).is_some_and(|rest| {
        rest.len() == 12
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub fn veth_name(id: &str) -> String {
    format!("{VETH_PREFIX}{}", &id[..id.len().min(12)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let o = EgressOptions::new("glassbox0", "10.88.0.0/16", "glassbox").unwrap();
        assert_eq!(o.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(o.hosts().len(), 65536 - 3);
        let small = EgressOptions::new("br", "192.168.7.0/29", "t").unwrap();
        assert_eq!(small.hosts().len(), 5);
        for (b, s, t) in [
            ("glassbox0", "10.88.0.1/16", "glassbox"),
            ("glassbox0", "8.8.0.0/16", "glassbox"),
            ("glassbox0", "10.88.0.0/8", "glassbox"),
            ("glassbox0", "10.88.0.0", "glassbox"),
            ("bad name", "10.88.0.0/16", "glassbox"),
            ("glassbox0", "10.88.0.0/16", "x;flush ruleset"),
            ("gbx0123456789ab", "10.88.0.0/16", "glassbox"),
        ] {
            assert!(EgressOptions::new(b, s, t).is_err(), "{b} {s} {t}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask(16), 0xffff_0000);
        assert_eq!(mask(24), 0xffff_ff00);
    }
}
