//! Benchmark: `gbx run --rm busybox true` against `crun run` of the same
//! busybox rootfs, end to end (process spawn to exit), side by side in one run.
//!
//!     cargo bench -p runtime --bench run_vs_crun
//!
//! Needs root and crun (`scripts/install-deps bench`). Environment:
//! - `GLASSBOX_BENCH_ITERS`: timed runs of each (default 50);
//! - `GLASSBOX_BENCH_WARMUP`: untimed runs of each first (default 5);
//! - `GLASSBOX_BENCH_GBX`: a gbx binary to measure instead of the one built
//!   with this bench.
//!
//! The two are interleaved (gbx, crun, gbx, crun, ...) so that drift in the
//! machine's load hits both alike. Each run starts once gbx's warm pool is
//! refilled: the preparation of the next warm container would otherwise run
//! during the next run, crun's or gbx's, and slow it.
//! `GLASSBOX_BENCH_PAUSE_MS` (default 0) adds an idle pause before each run:
//! on this kind of machine that makes every cgroup move wait for a whole RCU
//! grace period again (crun's run takes about twice as long), which is what
//! a lone `crun run` on an idle host pays, but it flatters the warm pool. crun gets the namespaces (a user namespace
//! included) and limits that a Glassbox container gets, so both do
//! comparable work.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

/// Limits given to the crun container; keep in step with gbx's defaults.
const MEMORY_LIMIT_BYTES: u64 = 256 * 1024 * 1024;
const PIDS_LIMIT: i64 = 64;
const CPU_SHARES: u64 = 1024;
/// Host id of crun's container root: the last of Glassbox's ranges, which a
/// benchmark's few containers never reach.
const CRUN_HOST_ID: u32 = 1_000_000 + 4095 * 65_536;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run_vs_crun: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_usize(name: &str, default: usize) -> Res<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

fn run() -> Res<()> {
    let iters = env_usize("GLASSBOX_BENCH_ITERS", 50)?.max(1);
    let warmup = env_usize("GLASSBOX_BENCH_WARMUP", 5)?;
    let gbx: PathBuf = std::env::var_os("GLASSBOX_BENCH_GBX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gbx")));

    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (both gbx and crun create real containers)".into());
    }
    let crun_version = Command::new("crun")
        .arg("--version")
        .output()
        .map_err(|e| format!("crun not found ({e}); install it with scripts/install-deps bench"))?;
    let crun_version = String::from_utf8_lossy(&crun_version.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();

    let tmp = tempfile::Builder::new()
        .prefix("glassbox-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let state_dir = tmp.path().join("gbx-state");
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;

    // --- gbx: one run to pull/unpack the busybox image and prove it works.
    // Warm: gbx's default, one container prepared ahead (each run claims it
    // and starts the next one in the background). Cold: no pool.
    let gbx_with_pool = |pool: &str| -> Res<Output> {
        let mut cmd = Command::new(&gbx);
        cmd.arg("--state-dir").arg(&state_dir).args([
            "--warm-pool",
            pool,
            "run",
            "--rm",
            "busybox",
            "true",
        ]);
        spawn(&mut cmd)
    };
    let gbx_run = |_: usize| gbx_with_pool("1");
    let gbx_cold = |_: usize| gbx_with_pool("0");
    let first = gbx_run(0).map_err(|e| format!("gbx ({}): {e}", gbx.display()))?;
    check("gbx", &first)?;
    let layer = find_busybox_layer(&state_dir).ok_or_else(|| {
        format!(
            "`gbx --state-dir {} run --rm busybox true` exited 0 but left no busybox layer \
             under {}/layers/sha256/*/rootfs (is `gbx run` implemented yet?)",
            state_dir.display(),
            state_dir.display()
        )
    })?;

    // --- crun: an OCI bundle over a copy of the same rootfs.
    let bundle = tmp.path().join("bundle");
    let crun_root = tmp.path().join("crun-state");
    make_bundle(&bundle, &layer)?;
    let hide_unified = cgroup_hybrid();
    let crun_run = |i: usize| -> Res<Output> {
        let mut cmd = Command::new("crun");
        cmd.arg("--root")
            .arg(&crun_root)
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(format!("glassbox-bench-{}-{i}", std::process::id()));
        if hide_unified {
            hide_unified_cgroup(&mut cmd);
        }
        spawn(&mut cmd)
    };
    check("crun", &crun_run(0)?)?;

    println!("run_vs_crun: gbx = {}", gbx.display());
    println!("run_vs_crun: crun = {crun_version}");
    println!("run_vs_crun: rootfs = {}", layer.display());
    if hide_unified {
        println!(
            "run_vs_crun: cgroup v1 hybrid host: crun runs in a mount namespace without \
             /sys/fs/cgroup/unified (crun refuses hybrid mode), so it uses the v1 controllers"
        );
    }
    println!("run_vs_crun: {warmup} warm-up + {iters} timed runs of each, interleaved");

    for i in 0..warmup {
        check("gbx", &gbx_run(i)?)?;
        check("gbx cold", &gbx_cold(i)?)?;
        check("crun", &crun_run(1 + i)?)?;
    }
    let mut t_gbx = Vec::with_capacity(iters);
    let mut t_cold = Vec::with_capacity(iters);
    let mut t_crun = Vec::with_capacity(iters);
    // Each run starts with the warm pool's replacement entry ready (see the
    // module's comment).
    let pause = Duration::from_millis(env_usize("GLASSBOX_BENCH_PAUSE_MS", 0)? as u64);
    let settle = || {
        wait_for_ready_entry(&state_dir);
        std::thread::sleep(pause);
    };
    for i in 0..iters {
        settle();
        let t = Instant::now();
        let out = gbx_cold(i)?;
        t_cold.push(t.elapsed());
        check("gbx cold", &out)?;

        settle();
        let t = Instant::now();
        let out = gbx_run(i)?;
        t_gbx.push(t.elapsed());
        check("gbx", &out)?;

        settle();
        let t = Instant::now();
        let out = crun_run(1 + warmup + i)?;
        t_crun.push(t.elapsed());
        check("crun", &out)?;
    }

    // Leave no warm container behind.
    let _ = Command::new(&gbx)
        .arg("--state-dir")
        .arg(&state_dir)
        .args(["pool", "drain"])
        .output();
    let g = Stats::of(&mut t_gbx);
    let cold = Stats::of(&mut t_cold);
    let c = Stats::of(&mut t_crun);
    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "(milliseconds)", "mean", "p50", "p95", "min", "max"
    );
    g.print("gbx run --rm busybox true");
    cold.print("  same, --warm-pool 0 (cold)");
    c.print("crun run (busybox true)");
    println!(
        "{:<28} {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x",
        "ratio gbx/crun",
        g.mean / c.mean,
        g.p50 / c.p50,
        g.p95 / c.p95,
        g.min / c.min
    );
    println!(
        "{:<28} {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x",
        "ratio cold gbx/crun",
        cold.mean / c.mean,
        cold.p50 / c.p50,
        cold.p95 / c.p95,
        cold.min / c.min
    );
    println!(
        "run_vs_crun: n={iters} gbx_mean_ms={:.2} gbx_cold_mean_ms={:.2} crun_mean_ms={:.2} ratio_mean={:.2} ratio_cold_mean={:.2}",
        g.mean,
        cold.mean,
        c.mean,
        g.mean / c.mean,
        cold.mean / c.mean
    );
    Ok(())
}

/// Wait (two seconds at most) until the warm pool holds a ready entry and
/// the containers of the runs before are gone, files and all: `--rm`
/// reports the exit before it deletes the container's files, and that
/// work must not land in the next run, crun's or gbx's.
fn wait_for_ready_entry(state_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let ready = || {
        let pool_ready = std::fs::read_dir(state_dir.join("pool"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .any(|e| e.path().join("ready").exists())
            })
            .unwrap_or(false);
        let no_containers = std::fs::read_dir(state_dir.join("containers"))
            .map(|rd| !rd.filter_map(|e| e.ok()).any(|e| e.file_name() != ".lock"))
            .unwrap_or(true);
        pool_ready && no_containers
    };
    while !ready() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn spawn(cmd: &mut Command) -> Res<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))
}

fn check(what: &str, out: &Output) -> Res<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// `<state>/layers/sha256/<hex>/rootfs` holding busybox's `true`.
fn find_busybox_layer(state_dir: &Path) -> Option<PathBuf> {
    let dir = state_dir.join("layers").join("sha256");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("rootfs"))
        .filter(|r| r.join("bin/true").symlink_metadata().is_ok())
        .collect();
    found.sort();
    found.into_iter().next()
}

fn make_bundle(bundle: &Path, layer: &Path) -> Res<()> {
    std::fs::create_dir_all(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let rootfs = bundle.join("rootfs");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(layer)
        .arg(&rootfs)
        .output()
        .map_err(|e| format!("cp: {e}"))?;
    check("copying the busybox rootfs", &cp)?;
    // crun's container root is an unprivileged host range too, as gbx's is;
    // its rootfs is a copy, so it is chowned to the range instead of idmapped.
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{CRUN_HOST_ID}:{CRUN_HOST_ID}"))
        .arg(&rootfs)
        .output()
        .map_err(|e| format!("chown: {e}"))?;
    check("handing the rootfs to crun's id range", &chown)?;
    let spec = Command::new("crun")
        .arg("spec")
        .current_dir(bundle)
        .output()
        .map_err(|e| format!("crun spec: {e}"))?;
    check("crun spec", &spec)?;

    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut c: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    use serde_json::json;
    c["process"]["args"] = json!(["/bin/true"]);
    c["process"]["terminal"] = json!(false);
    c["root"] = json!({ "path": rootfs, "readonly": false });
    c["hostname"] = json!("glassbox-bench");
    c["linux"]["namespaces"] = json!([
        { "type": "pid" },
        { "type": "network" },
        { "type": "mount" },
        { "type": "uts" },
        { "type": "ipc" },
        { "type": "cgroup" },
        { "type": "user" },
    ]);
    let map = json!([{ "containerID": 0, "hostID": CRUN_HOST_ID, "size": 65536 }]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
    let resources = c["linux"]
        .as_object_mut()
        .ok_or("crun spec: no linux section")?
        .entry("resources")
        .or_insert_with(|| json!({}));
    resources["memory"] = json!({ "limit": MEMORY_LIMIT_BYTES });
    resources["pids"] = json!({ "limit": PIDS_LIMIT });
    resources["cpu"] = json!({ "shares": CPU_SHARES });
    let text = serde_json::to_string_pretty(&c).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A cgroup v1 host with a (controller-bearing) v2 hierarchy beside it.
fn cgroup_hybrid() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists()
}

/// Runs the command in a private mount namespace without the hybrid layout's
/// v2 mount, so crun treats the host as plain cgroup v1. The host's mounts
/// are untouched.
fn hide_unified_cgroup(cmd: &mut Command) {
    // SAFETY: only async-signal-safe syscalls run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

struct Stats {
    mean: f64,
    p50: f64,
    p95: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Stats {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let n = samples.len();
        // Nearest-rank percentiles.
        let rank = |p: f64| ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        Stats {
            mean: samples.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
            p50: ms(samples[rank(0.50)]),
            p95: ms(samples[rank(0.95)]),
            min: ms(samples[0]),
            max: ms(samples[n - 1]),
        }
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            self.mean, self.p50, self.p95, self.min, self.max
        );
    }
}
