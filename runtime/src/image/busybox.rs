//! The built-in `busybox` image, made from the host's static busybox.
//!
//! The layer tar is deterministic (sorted entries, fixed mtimes, uid/gid 0), so
//! the same host busybox always gives the same digest.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use super::ImageError;

/// The name of the built-in image.
pub const BUSYBOX_IMAGE: &str = "busybox";

/// Where the host's static busybox is (Debian's `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Every entry's mtime: 2000-01-01T00:00:00Z (a fixed date, so the tar is reproducible).
const MTIME: u64 = 946_684_800;

enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
}

/// Build the busybox layer as an in-memory tar stream.
pub(crate) fn build_tar(busybox: &Path) -> Result<Vec<u8>, ImageError> {
    let binary = match fs::read(busybox) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ImageError::BusyboxMissing {
                path: busybox.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ImageError::Io {
                op: "read",
                path: busybox.to_path_buf(),
                source,
            });
        }
    };
    if !is_static_elf(&binary) {
        return Err(ImageError::BusyboxNotStatic {
            path: busybox.to_path_buf(),
        });
    }
    let applets = list_applets(busybox)?;

    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    for dir in [
        "bin", "dev", "etc", "home", "proc", "run", "sbin", "sys", "usr", "usr/bin", "usr/sbin",
        "var",
    ] {
        tree.insert(dir.to_string(), Node::Dir(0o755));
    }
    tree.insert("root".into(), Node::Dir(0o700));
    tree.insert("tmp".into(), Node::Dir(0o1777));
    for applet in applets {
        add_parents(&mut tree, &applet);
        tree.insert(applet, Node::Symlink("/bin/busybox".into()));
    }
    tree.insert("bin/sh".into(), Node::Symlink("/bin/busybox".into()));
    tree.insert("bin/busybox".into(), Node::File(0o755, binary));
    let text = |s: &str| Node::File(0o644, s.as_bytes().to_vec());
    tree.insert(
        "etc/passwd".into(),
        text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
    );
    tree.insert("etc/group".into(), text("root:x:0:\nnogroup:x:65534:\n"));
    tree.insert(
        "etc/profile".into(),
        text(concat!(
            "# Glassbox busybox image\n",
            "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
            "export PS1='\\u@\\h:\\w\\$ '\n",
        )),
    );
    tree.insert(
        "etc/hosts".into(),
        text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    );

    write_tar(&tree).map_err(|source| ImageError::BusyboxTar { source })
}

fn add_parents(tree: &mut BTreeMap<String, Node>, path: &str) {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        tree.entry(prefix.clone()).or_insert(Node::Dir(0o755));
    }
}

fn write_tar(tree: &BTreeMap<String, Node>) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, node) in tree {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match node {
            Node::Dir(mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), io::empty())?;
            }
            Node::File(mode, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            Node::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
        }
    }
    builder.into_inner()
}

/// Applet paths relative to `/`, from `busybox --list-full` run on the host
/// (never inside a container).
fn list_applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let err = |reason: String| ImageError::BusyboxApplets {
        path: busybox.to_path_buf(),
        reason,
    };
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(format!("exited with {}", out.status)));
    }
    let stdout = String::from_utf8(out.stdout).map_err(|_| err("output is not utf-8".into()))?;
    let mut applets = Vec::new();
    for line in stdout.lines() {
        let line = line.trim().trim_start_matches('/');
        if line.is_empty() || line == "bin/busybox" {
            continue;
        }
        let safe = line.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-[".contains(&b))
        });
        if !safe {
            return Err(err(format!("unexpected applet path {line:?}")));
        }
        applets.push(line.to_string());
    }
    if applets.is_empty() {
        return Err(err("no applets listed".into()));
    }
    Ok(applets)
}

/// Whether `bytes` is an ELF executable with no `PT_INTERP` program header,
/// i.e. one that needs no dynamic loader.
pub(crate) fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 52 || bytes[..4] != *b"\x7fELF" {
        return false;
    }
    let is64 = match bytes[4] {
        1 => false,
        2 => true,
        _ => return false,
    };
    let le = match bytes[5] {
        1 => true,
        2 => false,
        _ => return false,
    };
    let u16_at = |off: usize| -> Option<u64> {
        let b: [u8; 2] = bytes.get(off..off + 2)?.try_into().ok()?;
        Some(u64::from(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    };
    let u32_at = |off: usize| -> Option<u64> {
        let b: [u8; 4] = bytes.get(off..off + 4)?.try_into().ok()?;
        Some(u64::from(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }))
    };
    let u64_at = |off: usize| -> Option<u64> {
        let b: [u8; 8] = bytes.get(off..off + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let parsed = (|| -> Option<bool> {
        let (phoff, phentsize, phnum) = if is64 {
            (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?)
        } else {
            (u32_at(0x1c)?, u16_at(0x2a)?, u16_at(0x2c)?)
        };
        if phnum == 0 || phentsize < 4 {
            return Some(false);
        }
        for i in 0..phnum {
            let off = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
            if u32_at(off)? == u64::from(PT_INTERP) {
                return Some(false);
            }
        }
        Some(true)
    })();
    parsed.unwrap_or(false)
}
