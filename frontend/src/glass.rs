//! What the glass-box panels say, computed from the API's answers.

use protocol::{Change, ChangeKind, ContainerInfo, ProcessEntry};

/// One namespace row: type, what it isolates, inodes, isolated or shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRow {
    pub kind: String,
    pub what: &'static str,
    pub inode: u64,
    pub host_inode: u64,
    pub isolated: bool,
}

/// What each namespace type hides from the container.
pub fn namespace_purpose(kind: &str) -> &'static str {
    match kind {
        "pid" => "process IDs: PID 1 is this container's first process",
        "net" => "network: its own lo, routes and ports",
        "mnt" => "mounts: its own / from the image layers",
        "uts" => "hostname and domain name",
        "ipc" => "System V IPC and POSIX message queues",
        "cgroup" => "its cgroup looks like the root /",
        "user" => "user IDs: root inside can map to nobody outside",
        "time" => "boot and monotonic clocks",
        _ => "",
    }
}

const NS_ORDER: [&str; 8] = ["pid", "mnt", "net", "uts", "ipc", "cgroup", "user", "time"];

/// What root inside is on the host: the seed's "root inside != root on the
/// host", from the container's user namespace map.
pub fn root_mapping(info: &ContainerInfo) -> String {
    match info.id_map {
        Some(m) if m.container_id == 0 && m.host_id != 0 => format!(
            "root here is uid {} on the host, an unprivileged id: ids 0–{} inside are {}–{} outside",
            m.host_id,
            m.size.saturating_sub(1),
            m.host_id,
            m.host_id.saturating_add(m.size.saturating_sub(1)),
        ),
        Some(_) => "root here is root on the host: the user namespace maps it to uid 0".into(),
        None => "no user namespace: root here is root on the host".into(),
    }
}

/// Namespaces in a teaching order (pid, mnt, net, uts, …), unknown types last.
pub fn namespace_rows(info: &ContainerInfo) -> Vec<NamespaceRow> {
    let mut rows: Vec<NamespaceRow> = info
        .namespaces
        .iter()
        .map(|(kind, ns)| NamespaceRow {
            kind: kind.clone(),
            what: namespace_purpose(kind),
            inode: ns.inode,
            host_inode: ns.host_inode,
            isolated: ns.isolated(),
        })
        .collect();
    rows.sort_by_key(|r| {
        NS_ORDER
            .iter()
            .position(|k| *k == r.kind)
            .unwrap_or(NS_ORDER.len())
    });
    rows
}

/// "PID 1 here is PID 45678 on the host".
pub fn pid1_sentence(info: Option<&ContainerInfo>, procs: &[ProcessEntry]) -> Option<String> {
    let host = procs
        .iter()
        .find(|p| p.pid == 1)
        .map(|p| p.host_pid)
        .or_else(|| info.and_then(|i| i.host_pid))?;
    Some(format!("PID 1 here is PID {host} on the host"))
}

/// Processes as a tree (parents before children), with their depth.
pub fn process_tree(procs: &[ProcessEntry]) -> Vec<(usize, &ProcessEntry)> {
    let mut out = Vec::with_capacity(procs.len());
    let mut seen = vec![false; procs.len()];
    fn visit<'a>(
        procs: &'a [ProcessEntry],
        idx: usize,
        depth: usize,
        seen: &mut [bool],
        out: &mut Vec<(usize, &'a ProcessEntry)>,
    ) {
        if seen[idx] {
            return;
        }
        seen[idx] = true;
        out.push((depth, &procs[idx]));
        let pid = procs[idx].pid;
        let mut kids: Vec<usize> = (0..procs.len())
            .filter(|&i| procs[i].ppid == pid && procs[i].pid != pid)
            .collect();
        kids.sort_by_key(|&i| procs[i].pid);
        for k in kids {
            visit(procs, k, depth + 1, seen, out);
        }
    }
    let pids: std::collections::HashSet<u32> = procs.iter().map(|p| p.pid).collect();
    let mut roots: Vec<usize> = (0..procs.len())
        .filter(|&i| !pids.contains(&procs[i].ppid) || procs[i].ppid == procs[i].pid)
        .collect();
    roots.sort_by_key(|&i| procs[i].pid);
    for r in roots {
        visit(procs, r, 0, &mut seen, &mut out);
    }
    // Cycles (should not happen): still show everything.
    for i in 0..procs.len() {
        if !seen[i] {
            visit(procs, i, 0, &mut seen, &mut out);
        }
    }
    out
}

/// The RW layer's changes, deletions (whiteouts) first, then by path.
pub fn sorted_changes(changes: &[Change]) -> Vec<Change> {
    let mut v = changes.to_vec();
    v.sort_by(|a, b| {
        let rank = |k: ChangeKind| match k {
            ChangeKind::Deleted => 0,
            ChangeKind::Modified => 1,
            ChangeKind::Added => 2,
        };
        rank(a.kind).cmp(&rank(b.kind)).then(a.path.cmp(&b.path))
    });
    v
}

/// How a change looks in the filesystem panel: letter, class, explanation.
pub fn change_label(kind: ChangeKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        ChangeKind::Added => ("A", "added", "new in the RW layer"),
        ChangeKind::Modified => ("C", "modified", "copied up from the image, then changed"),
        ChangeKind::Deleted => ("D", "deleted", "whiteout: hidden here, intact in the image"),
    }
}

/// One link of Glassbox's own runtime chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub name: String,
    pub role: &'static str,
    /// Docker's counterpart, from the seed's "CLI → dockerd → containerd → runc → shim".
    pub docker: &'static str,
    pub pid: Option<String>,
}

/// browser → glassbox server → supervisor → init → shell, with the PIDs known.
pub fn runtime_chain(info: &ContainerInfo, procs: &[ProcessEntry]) -> Vec<ChainLink> {
    let pid1 = procs.iter().find(|p| p.pid == 1);
    let pid1_host = pid1.map(|p| p.host_pid).or(info.host_pid);
    let mut links = vec![
        ChainLink {
            name: "this browser tab".into(),
            role: "sends keystrokes and API calls",
            docker: "docker CLI",
            pid: None,
        },
        ChainLink {
            name: "glassbox".into(),
            role: "HTTP + WebSocket server; sets up cgroup, layers and config",
            docker: "dockerd + containerd + runc",
            pid: None,
        },
        ChainLink {
            name: "supervisor".into(),
            role: "holds the PTY and exit status; outlives the server",
            docker: "containerd-shim",
            pid: info.supervisor_pid.map(|p| format!("host PID {p}")),
        },
    ];
    let cmd = info.cmd.first().map(|c| basename(c)).unwrap_or("sh");
    if info.init {
        links.push(ChainLink {
            name: "glassbox-init".into(),
            role: "PID 1: reaps zombies, forwards signals",
            docker: "tini (--init)",
            pid: pid1_host.map(|h| format!("PID 1 · host PID {h}")),
        });
        let child = procs.iter().find(|p| p.ppid == 1);
        links.push(ChainLink {
            name: child.map(|c| first_word(&c.cmd)).unwrap_or(cmd).to_string(),
            role: "your command",
            docker: "the container's process",
            pid: child.map(|c| format!("PID {} · host PID {}", c.pid, c.host_pid)),
        });
    } else {
        links.push(ChainLink {
            name: pid1.map(|p| first_word(&p.cmd)).unwrap_or(cmd).to_string(),
            role: "your command, as PID 1",
            docker: "the container's process",
            pid: pid1_host.map(|h| format!("PID 1 · host PID {h}")),
        });
    }
    links
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn first_word(s: &str) -> &str {
    basename(s.split_whitespace().next().unwrap_or(s))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use protocol::{CgroupInfo, CgroupVersion, ContainerState, Limits, NamespaceInfo};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    pub fn info() -> ContainerInfo {
        let mut namespaces = std::collections::BTreeMap::new();
        for (k, i, h) in [
            ("net", 11, 1),
            ("pid", 12, 2),
            ("user", 3, 3),
            ("mnt", 14, 4),
        ] {
            namespaces.insert(
                k.to_string(),
                NamespaceInfo {
                    inode: i,
                    host_inode: h,
                },
            );
        }
        ContainerInfo {
            id: "c0ffee".into(),
            name: "playground".into(),
            image: "busybox".into(),
            cmd: vec!["/bin/sh".into()],
            hostname: "playground".into(),
            state: ContainerState::Running,
            exit_code: None,
            oom_killed: false,
            host_pid: Some(45678),
            namespaces,
            cgroup: CgroupInfo {
                path: "/glassbox/c0ffee".into(),
                version: CgroupVersion::V2,
            },
            limits: Limits::default(),
            layers: vec![],
            upper_dir: "/var/lib/glassbox/containers/c0ffee/rw".into(),
            init: true,
            tty: true,
            created_at_ms: 0,
            finished_at_ms: None,
            supervisor_pid: Some(45670),
            network: Default::default(),
            id_map: None,
        }
    }

    fn p(pid: u32, host_pid: u32, ppid: u32, cmd: &str) -> ProcessEntry {
        ProcessEntry {
            pid,
            host_pid,
            ppid,
            cmd: cmd.into(),
        }
    }

    #[test]
    fn root_maps_to_the_containers_host_range() {
        let mut c = info();
        assert_eq!(
            root_mapping(&c),
            "no user namespace: root here is root on the host"
        );
        c.id_map = Some(protocol::IdMapping {
            container_id: 0,
            host_id: 1_065_536,
            size: 65536,
        });
        assert_eq!(
            root_mapping(&c),
            "root here is uid 1065536 on the host, an unprivileged id: ids 0–65535 inside are 1065536–1131071 outside"
        );
    }

    #[test]
    fn namespaces_in_teaching_order() {
        let rows = namespace_rows(&info());
        let kinds: Vec<_> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["pid", "mnt", "net", "user"]);
        assert!(rows[0].isolated);
        assert!(!rows[3].isolated, "same inode as the host: shared");
        assert!(rows[2].what.contains("network"));
    }

    #[test]
    fn pid1_and_the_tree() {
        let procs = vec![
            p(7, 45700, 3, "sleep 100"),
            p(1, 45678, 0, "glassbox-init"),
            p(3, 45690, 1, "/bin/sh"),
            p(9, 45710, 1, "top"),
        ];
        assert_eq!(
            pid1_sentence(None, &procs).unwrap(),
            "PID 1 here is PID 45678 on the host"
        );
        assert_eq!(
            pid1_sentence(Some(&info()), &[]).unwrap(),
            "PID 1 here is PID 45678 on the host"
        );
        assert_eq!(pid1_sentence(None, &[]), None);
        let tree: Vec<(usize, u32)> = process_tree(&procs)
            .iter()
            .map(|(d, p)| (*d, p.pid))
            .collect();
        assert_eq!(tree, [(0, 1), (1, 3), (2, 7), (1, 9)]);
    }

    #[test]
    fn whiteouts_come_first() {
        let c = |path: &str, kind| Change {
            path: path.into(),
            kind,
        };
        let sorted = sorted_changes(&[
            c("/tmp/a", ChangeKind::Added),
            c("/etc/passwd", ChangeKind::Modified),
            c("/bin/sh", ChangeKind::Deleted),
        ]);
        assert_eq!(sorted[0].path, "/bin/sh");
        assert_eq!(sorted[2].path, "/tmp/a");
        assert!(change_label(ChangeKind::Deleted).2.contains("whiteout"));
    }

    #[test]
    fn chain_with_live_pids() {
        let procs = vec![
            p(1, 45678, 0, "glassbox-init"),
            p(2, 45679, 1, "/bin/sh -i"),
        ];
        let chain = runtime_chain(&info(), &procs);
        let names: Vec<_> = chain.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "this browser tab",
                "glassbox",
                "supervisor",
                "glassbox-init",
                "sh"
            ]
        );
        assert_eq!(chain[2].pid.as_deref(), Some("host PID 45670"));
        assert_eq!(chain[3].pid.as_deref(), Some("PID 1 · host PID 45678"));
        assert_eq!(chain[4].pid.as_deref(), Some("PID 2 · host PID 45679"));
        let mut no_init = info();
        no_init.init = false;
        let chain = runtime_chain(&no_init, &[]);
        assert_eq!(chain.len(), 4);
        assert_eq!(chain[3].name, "sh");
    }
}
