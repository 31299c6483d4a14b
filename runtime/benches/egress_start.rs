//! Benchmark: what `--network egress` adds to a start. Times
//! `gbx run --rm busybox true` with and without it, interleaved, cold and
//! warm (a pool of one), and prints the medians and the difference.
//!
//!     cargo bench -p runtime --bench egress_start
//!
//! Needs root, `ip` and `nft` (`scripts/install-deps runtime net`). It uses a
//! bridge, subnet and nftables tables of its own, and removes them (and its
//! state dir) at the end. `GLASSBOX_BENCH_ITERS`: timed runs of each
//! (default 20). Forwarding is switched on by the first egress run and left
//! as it was found afterwards.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const BRIDGE: &str = "gbxbench0";
const SUBNET: &str = "10.87.0.0/24";
const TABLE: &str = "glassbox_bench";

fn main() -> ExitCode {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("egress_start: needs root");
        return ExitCode::FAILURE;
    }
    let iters: usize = std::env::var("GLASSBOX_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let state = match tempfile::Builder::new()
        .prefix("gbx-bench-egress-")
        .tempdir()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("egress_start: temp dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let result = bench(state.path(), iters);
    let _ = gbx(state.path(), "0", &["pool", "drain"]);
    let _ = gbx(state.path(), "0", &["network", "down"]);
    if !forward.trim().is_empty() {
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", forward.trim());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("egress_start: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn gbx(state: &Path, pool: &str, args: &[&str]) -> Result<Duration, String> {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gbx"))
        .args(["--state-dir"])
        .arg(state)
        .args(["--warm-pool", pool, "--allow-egress"])
        .args(["--egress-bridge", BRIDGE, "--egress-subnet", SUBNET])
        .args(["--egress-table", TABLE])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running gbx: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "gbx {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn bench(state: &Path, iters: usize) -> Result<(), String> {
    println!("egress_start: gbx run --rm busybox true, {iters} runs of each, medians");
    for pool in ["0", "1"] {
        // Untimed: builds the image, makes the bridge and tables, fills the pool.
        gbx(state, pool, &["run", "--rm", "busybox", "true"])?;
        gbx(
            state,
            pool,
            &["run", "--rm", "--network", "egress", "busybox", "true"],
        )?;
        let (mut none, mut egress) = (Vec::new(), Vec::new());
        for _ in 0..iters {
            none.push(gbx(state, pool, &["run", "--rm", "busybox", "true"])?);
            egress.push(gbx(
                state,
                pool,
                &["run", "--rm", "--network", "egress", "busybox", "true"],
            )?);
        }
        let (n, e) = (median(none), median(egress));
        println!(
            "  {:<5} network none {:>7.1} ms   egress {:>7.1} ms   egress adds {:>6.1} ms",
            if pool == "0" { "cold" } else { "warm" },
            ms(n),
            ms(e),
            ms(e) - ms(n),
        );
        gbx(state, "0", &["pool", "drain"])?;
    }
    Ok(())
}
