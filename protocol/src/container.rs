//! What a container is, as `gbx inspect` and the HTTP API show it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Resource limits of one container. `None` means "no limit of ours".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory limit in bytes (cgroup `memory.max` / `memory.limit_in_bytes`); swap is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// CPU bandwidth in thousandths of a CPU: 500 is half a core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u32>,
    /// Maximum number of tasks (processes and threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
    /// Size cap of the container's read-write layer, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Set up, PID 1 not yet running.
    Created,
    Running,
    Exited,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v2")]
    V2,
}

/// Where the container's cgroup lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupInfo {
    /// The path relative to the root of the hierarchy, e.g. `/glassbox/3f2a…`.
    pub path: String,
    pub version: CgroupVersion,
}

/// One read-only image layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// `sha256:<hex>` of the uncompressed layer tar (the OCI diff id).
    pub digest: String,
    /// Unpacked size in bytes.
    pub size: u64,
    /// Where the unpacked layer sits on the host.
    pub path: String,
}

/// A namespace of the container next to the host's namespace of the same type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    /// Inode of `/proc/<pid 1>/ns/<type>`.
    pub inode: u64,
    /// Inode of the same namespace type for the runtime itself (the host's view).
    pub host_inode: u64,
}

impl NamespaceInfo {
    /// True when the container has a namespace of its own for this type.
    pub fn isolated(&self) -> bool {
        self.inode != self.host_inode
    }
}

/// Everything `gbx inspect` and `GET /api/v1/containers/{id}` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub hostname: String,
    pub state: ContainerState,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// PID 1's PID as the host sees it.
    pub host_pid: Option<u32>,
    /// Namespace type (`pid`, `net`, `mnt`, `uts`, `ipc`, `cgroup`, `user`) to inodes.
    pub namespaces: BTreeMap<String, NamespaceInfo>,
    pub cgroup: CgroupInfo,
    pub limits: Limits,
    /// Lowest layer first.
    pub layers: Vec<LayerInfo>,
    /// The container's read-write (copy-on-write) layer on the host.
    pub upper_dir: String,
    /// Whether Glassbox's init runs as PID 1 (`--init`) or the command itself (`--no-init`).
    pub init: bool,
    pub tty: bool,
    /// Unix time in milliseconds.
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    /// PID of the per-container supervisor on the host.
    pub supervisor_pid: Option<u32>,
    /// The container's network: loopback only, or egress through the host.
    #[serde(default)]
    pub network: NetworkInfo,
    /// How the container's user namespace maps ids to the host (the same
    /// map for uids and gids); `None` for a container without one.
    #[serde(default)]
    pub id_map: Option<IdMapping>,
}

/// How a container reaches the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A network namespace of its own with only `lo` (the default).
    #[default]
    None,
    /// `eth0` on the host's bridge, NAT to the outside, and a deny-list that
    /// keeps the host, private ranges and cloud metadata out of reach.
    /// The operator must enable it.
    Egress,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Egress => "egress",
        }
    }
}

/// The network of one container, as `gbx inspect` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub mode: NetworkMode,
    /// The container's IPv4 address with its prefix, e.g. `10.88.0.2/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The default gateway (the host's end, on the bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The host's end of the container's veth pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veth: Option<String>,
    /// The host bridge the veth is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// One line of `/proc/PID/uid_map`: ids `container_id..container_id+size`
/// inside are `host_id..host_id+size` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// One process of a container: the PID map the seed talks about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    /// PID inside the container's PID namespace.
    pub pid: u32,
    /// The same process's PID on the host.
    pub host_pid: u32,
    /// Parent PID inside the container (0 for PID 1).
    pub ppid: u32,
    pub cmd: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One path in the read-write layer, as `gbx diff` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

/// An image that containers can start from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    pub layers: Vec<LayerInfo>,
    pub created_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_reject_unknown_fields() {
        let err = serde_json::from_str::<Limits>(r#"{"memory_bytes":1,"cpus":2}"#);
        assert!(
            err.is_err(),
            "an unknown limit must not be silently ignored"
        );
        let ok: Limits = serde_json::from_str(r#"{"pids":64}"#).expect("valid limits");
        assert_eq!(ok.pids, Some(64));
        assert_eq!(ok.memory_bytes, None);
    }

    #[test]
    fn state_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&ContainerState::Exited).unwrap(),
            "\"exited\""
        );
        assert_eq!(serde_json::to_string(&CgroupVersion::V2).unwrap(), "\"v2\"");
    }
}
