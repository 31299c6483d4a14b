//! Shared helpers for the runtime's integration tests: they run the real
//! `gbx` binary as root against the real kernel, each test in a state
//! directory of its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `gbx` under test: the one built with the tests, or another build
/// (`GLASSBOX_TEST_GBX`, which the test command sets to the static release
/// build that `cargo gbx-static` makes).
pub fn gbx() -> std::ffi::OsString {
    std::env::var_os("GLASSBOX_TEST_GBX").unwrap_or_else(|| env!("CARGO_BIN_EXE_gbx").into())
}

pub struct Env {
    pub state: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// A one-layer image of busybox (as `/bin/busybox` and `/bin/sh`) and the
    /// syscall prober (`/probe`, from `runtime/probe`), imported as `probe`.
    pub fn import_probe_image(&self) {
        let tarball = self.path().join("probe.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&tarball).expect("create tar"));
        let mut add = |path: &str, src: &str| {
            let data = std::fs::read(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, data.as_slice())
                .expect("tar entry");
        };
        add("bin/busybox", "/bin/busybox");
        add("probe", env!("GLASSBOX_PROBE"));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_mode(0o777);
        tar.append_link(&mut h, "bin/sh", "busybox")
            .expect("symlink");
        tar.finish().expect("tar");
        drop(tar);
        self.ok(&[
            "image",
            "import",
            "probe",
            tarball.to_str().expect("utf-8 path"),
        ]);
    }

    pub fn new() -> Env {
        Env {
            state: tempfile::Builder::new()
                .prefix("gbx-test-")
                .tempdir()
                .expect("temp state dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.state.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(gbx());
        c.arg("--state-dir").arg(self.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run gbx and return (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.cmd(args).output().expect("running gbx");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run gbx, insist on success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "gbx {args:?} failed: {err}{out}");
        out
    }

    pub fn inspect(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", id])).expect("inspect JSON")
    }

    pub fn stats(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["stats", id])).expect("stats JSON")
    }

    /// Start a detached container; returns its id.
    pub fn detached(&self, extra: &[&str], cmd: &[&str]) -> String {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(extra);
        args.push("busybox");
        args.extend_from_slice(cmd);
        self.ok(&args).trim().to_string()
    }

    /// Every cgroup directory of a container (from its record), for leak checks.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.path().join("containers").join(id).join("config.json"))
                .expect("config.json"),
        )
        .expect("config JSON");
        config["cgroup"]["dirs"]
            .as_object()
            .expect("cgroup dirs")
            .values()
            .map(|v| PathBuf::from(v.as_str().expect("dir path")))
            .collect()
    }

    /// Host mounts of containers under this state dir (the RW-layer tmpfs of
    /// each container; warm containers in `pool/` are not counted).
    pub fn mounts(&self) -> Vec<String> {
        runtime::rootfs::rw::mounts_under(&self.path().join("containers"))
    }

    pub fn container_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.path().join("containers"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Nothing of any container is left: no directory, no mount.
    pub fn assert_clean(&self) {
        assert!(
            self.container_dirs().is_empty(),
            "container dirs left: {:?}",
            self.container_dirs()
        );
        assert!(self.mounts().is_empty(), "mounts left: {:?}", self.mounts());
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Remove whatever a failing test left running, and the warm pool.
        for id in self.container_dirs() {
            let _ = self.cmd(&["rm", "-f", &id]).output();
        }
        let _ = self.cmd(&["pool", "drain"]).output();
        let left = runtime::rootfs::rw::mounts_under(self.path());
        if !std::thread::panicking() {
            assert!(
                left.is_empty(),
                "mounts left after draining the pool: {left:?}"
            );
        }
    }
}

/// Poll `f` until it returns Some, or panic after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Terminal output read so far, and how far the test has looked at it.
#[derive(Default)]
pub struct Screen {
    text: String,
    looked: usize,
}

impl Screen {
    /// Read from `client` until `want` appears after what was already matched.
    pub fn wait(&mut self, client: &mut runtime::process::client::Client, want: &str) -> String {
        use runtime::process::wire::{Frame, Reply};
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(at) = self.text[self.looked..].find(want) {
                let seen = self.text[self.looked..self.looked + at + want.len()].to_string();
                self.looked += at + want.len();
                return seen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never saw {want:?}; got {:?}",
                &self.text[self.looked..]
            );
            let frame = client.next_frame();
            let Ok(frame) = frame else {
                panic!(
                    "no {want:?} in time ({frame:?}); got {:?}",
                    &self.text[self.looked..]
                )
            };
            match frame {
                Frame::Output { data, .. } => self.text.push_str(&String::from_utf8_lossy(&data)),
                Frame::Control(Reply::Exit { code }) => {
                    panic!("exited with {code} before {want:?}: {:?}", self.text)
                }
                Frame::Control(Reply::Error { message }) => panic!("supervisor error: {message}"),
                _ => {}
            }
        }
    }
}

/// Ids of the warm containers in the pool, ready or being prepared.
pub fn pool_ids(env: &Env) -> Vec<String> {
    pool_list(env).into_iter().map(|(id, _)| id).collect()
}

/// Ids of the warm containers ready to be claimed.
pub fn ready_pool_ids(env: &Env) -> Vec<String> {
    pool_list(env)
        .into_iter()
        .filter(|(_, state)| state == "ready")
        .map(|(id, _)| id)
        .collect()
}

/// `gbx pool ls`: (id, state) of each entry.
pub fn pool_list(env: &Env) -> Vec<(String, String)> {
    pool_entries(env)
        .into_iter()
        .map(|(id, _, state)| (id, state))
        .collect()
}

/// `gbx pool ls`: (id, kind, state) of each entry.
pub fn pool_entries(env: &Env) -> Vec<(String, String, String)> {
    env.ok(&["pool", "ls"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut words = l.split_whitespace().map(str::to_string);
            Some((words.next()?, words.next()?, words.next()?))
        })
        .collect()
}

/// The cgroup directories named in a pool entry's record (`pool.json`).
pub fn entry_cgroup_dirs(entry: &Path) -> Vec<PathBuf> {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry.join("pool.json")).expect("pool.json"))
            .expect("json");
    record["cgroup"]["dirs"]
        .as_object()
        .expect("dirs")
        .values()
        .map(|v| PathBuf::from(v.as_str().expect("path")))
        .collect()
}

/// Wait until a pool entry's directory is gone, then check that its cgroup
/// directories `dirs` went with it.
pub fn assert_entry_goes(what: &str, entry: &Path, dirs: Vec<PathBuf>) {
    wait_for(what, Duration::from_secs(10), || {
        (!entry.exists()).then_some(())
    });
    for d in dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}
