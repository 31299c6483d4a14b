//! Building the container's root inside its own mount namespace. Runs in the
//! freshly cloned container process, before anything of the container runs,
//! so nothing can race these checks.

use super::RootfsError;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use std::path::{Component, Path, PathBuf};

/// What the container's root is made of.
pub struct RootfsPlan<'a> {
    /// Image layers, lowest first.
    pub layers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
    /// Where the overlay is mounted (only inside the container's namespace).
    pub target: &'a Path,
    pub mount_cgroup2: bool,
}

fn sys<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |source| RootfsError::Sys {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn mnt(
    src: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), RootfsError> {
    mount(Some(src), target, fstype, flags, data).map_err(sys("mounting", target))
}

/// Resolve `rel` under `root`, creating missing directories, and refuse any
/// component that is a symlink: an image must not be able to point a mount of
/// ours at a host path.
fn safe_dir(root: &Path, rel: &str) -> Result<PathBuf, RootfsError> {
    let mut path = root.to_path_buf();
    for comp in Path::new(rel).components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        path.push(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(RootfsError::UnsafeTarget { path }),
            Err(_) => nix::unistd::mkdir(&path, Mode::from_bits_truncate(0o755))
                .map_err(sys("creating", &path))?,
        }
    }
    Ok(path)
}

const NOSUID_NOEXEC_NODEV: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NODEV);

/// Mount the overlay and the kernel filesystems, then `pivot_root` into it.
pub fn build_and_enter(plan: &RootfsPlan<'_>) -> Result<(), RootfsError> {
    // Nothing we mount from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(sys("making / a slave mount", Path::new("/")))?;

    let mut lower = String::new();
    for layer in plan.layers.iter().rev() {
        check_overlay_path(layer)?;
        if !lower.is_empty() {
            lower.push(':');
        }
        lower.push_str(&layer.to_string_lossy());
    }
    check_overlay_path(plan.upper)?;
    check_overlay_path(plan.work)?;
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        plan.upper.display(),
        plan.work.display()
    );
    mnt(
        "overlay",
        plan.target,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    )?;
    let root = plan.target;

    let proc_dir = safe_dir(root, "proc")?;
    mnt("proc", &proc_dir, Some("proc"), NOSUID_NOEXEC_NODEV, None)?;

    let dev = safe_dir(root, "dev")?;
    mnt(
        "tmpfs",
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k,nr_inodes=4096"),
    )?;
    make_devices(&dev)?;
    let pts = safe_dir(root, "dev/pts")?;
    mnt(
        "devpts",
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = safe_dir(root, "dev/shm")?;
    mnt(
        "shm",
        &shm,
        Some("tmpfs"),
        NOSUID_NOEXEC_NODEV,
        Some("mode=1777,size=65536k,nr_inodes=16384"),
    )?;
    let mqueue = safe_dir(root, "dev/mqueue")?;
    mnt("mqueue", &mqueue, Some("mqueue"), NOSUID_NOEXEC_NODEV, None)?;

    let sys_dir = safe_dir(root, "sys")?;
    mnt(
        "sysfs",
        &sys_dir,
        Some("sysfs"),
        NOSUID_NOEXEC_NODEV | MsFlags::MS_RDONLY,
        None,
    )?;
    if plan.mount_cgroup2 {
        let cg = safe_dir(root, "sys/fs/cgroup")?;
        mnt(
            "cgroup2",
            &cg,
            Some("cgroup2"),
            NOSUID_NOEXEC_NODEV | MsFlags::MS_RDONLY,
            None,
        )?;
    }

    pivot_into(root)?;
    mask_paths();
    Ok(())
}

fn check_overlay_path(p: &Path) -> Result<(), RootfsError> {
    let s = p.to_string_lossy();
    if s.contains(',') || s.contains(':') {
        return Err(RootfsError::BadLayerPath(p.to_path_buf()));
    }
    Ok(())
}

/// The device nodes every container gets, all 0666, as Docker has them.
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Populate the container's /dev. In a user namespace mknod is refused (and
/// a tmpfs mounted there ignores device nodes anyway), so each node is a
/// bind mount of the host's own, checked to be the device we mean first.
fn make_devices(dev: &Path) -> Result<(), RootfsError> {
    let old = nix::sys::stat::umask(Mode::empty());
    let result = (|| {
        for (name, major, minor) in DEVICES {
            let host = Path::new("/dev").join(name);
            let meta = nix::sys::stat::lstat(&host).map_err(sys("checking", &host))?;
            let is_char = SFlag::from_bits_truncate(meta.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
            if !is_char || meta.st_rdev != makedev(*major, *minor) {
                return Err(RootfsError::Sys {
                    step: "finding the host device",
                    path: host,
                    source: nix::Error::ENODEV,
                });
            }
            let path = dev.join(name);
            nix::fcntl::open(
                &path,
                nix::fcntl::OFlag::O_CREAT
                    | nix::fcntl::OFlag::O_EXCL
                    | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o666),
            )
            .map_err(sys("creating the mount point", &path))?;
            mount(
                Some(&host),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("bind-mounting device", &path))?;
        }
        for (link, to) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            let path = dev.join(link);
            std::os::unix::fs::symlink(to, &path).map_err(|e| RootfsError::Sys {
                step: "creating symlink",
                path,
                source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        }
        Ok(())
    })();
    nix::sys::stat::umask(old);
    result
}

/// `pivot_root(".", ".")`, then detach the old root that now sits on top.
/// This needs no directory for the old root inside the image.
fn pivot_into(root: &Path) -> Result<(), RootfsError> {
    nix::unistd::chdir(root).map_err(sys("entering", root))?;
    nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root into", root))?;
    // Slave, not private: see runc's note on races with shared mounts.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("making the old root a slave", root))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detaching the old root", root))?;
    enter_root_dir()
}

/// `chdir("/")` and check that the working directory really is the root we
/// are in: a cwd outside it (an fd or directory of the host inherited by
/// mistake, CVE-2024-21626) makes `getcwd` report it unreachable.
pub fn enter_root_dir() -> Result<(), RootfsError> {
    let root = Path::new("/");
    nix::unistd::chdir(root).map_err(sys("entering", root))?;
    match nix::unistd::getcwd() {
        Ok(cwd) if cwd == root => Ok(()),
        Ok(cwd) => Err(RootfsError::CwdOutsideRoot(cwd)),
        Err(e) => Err(sys("checking the working directory", root)(e)),
    }
}

/// Paths of /proc and /sys hidden from the container (Docker's list; each
/// CPU's `thermal_throttle` is added at mount time).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths of /proc made read-only (Docker's list).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Each CPU's `thermal_throttle` directory (masked by Docker too: its
/// counters leak the host's load and can be reset by writing).
fn thermal_throttle_dirs() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/devices/system/cpu") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| format!("{}/thermal_throttle", e.path().display()))
        .collect()
}

/// Mask and write-protect kernel interfaces. A path the kernel does not have
/// is skipped; anything else that fails is an error worth knowing, but the
/// container is still far from the host, so we log and go on.
fn mask_paths() {
    let thermal = thermal_throttle_dirs();
    let masked = MASKED_PATHS
        .iter()
        .copied()
        .chain(thermal.iter().map(String::as_str));
    for p in masked {
        let path = Path::new(p);
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let res = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | NOSUID_NOEXEC_NODEV,
                Some("size=0,nr_inodes=1"),
            )
        } else {
            mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        if let Err(e) = res {
            tracing::warn!(path = p, error = %e, "could not mask path");
        }
    }
    for p in READONLY_PATHS {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        let res = mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|_| {
            mount(
                None::<&str>,
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | NOSUID_NOEXEC_NODEV,
                None::<&str>,
            )
        });
        if let Err(e) = res {
            tracing::warn!(path = p, error = %e, "could not make path read-only");
        }
    }
}

/// Bring the loopback interface up in the container's network namespace.
pub fn loopback_up() -> Result<(), RootfsError> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys("opening a socket for", Path::new("lo")))?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as libc::Ioctl,
            &mut req,
        ) < 0
        {
            return Err(RootfsError::Sys {
                step: "reading flags of",
                path: "lo".into(),
                source: nix::Error::last(),
            });
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as libc::Ioctl, &req) < 0 {
            return Err(RootfsError::Sys {
                step: "bringing up",
                path: "lo".into(),
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}
