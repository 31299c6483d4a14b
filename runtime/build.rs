//! Builds `glassbox-probe` (runtime/probe/), the static syscall prober the
//! hardening tests run inside containers. It is compiled here with rustc
//! directly, not as a `[[bin]]`, because it must be statically linked
//! (`+crt-static`) to run in a busybox rootfs, and Cargo cannot give one
//! binary of a package its own target features. Its path is passed to the
//! crate as `GLASSBOX_PROBE`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "probe/glassbox-probe.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("glassbox-probe");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "glassbox_probe",
        ])
        .args([
            "-C",
            "opt-level=1",
            "-C",
            "panic=abort",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["--target", &target])
        .arg("-o")
        .arg(&out)
        .arg(src)
        .status()
        .expect("running rustc for glassbox-probe");
    assert!(status.success(), "building glassbox-probe failed");
    println!("cargo:rustc-env=GLASSBOX_PROBE={}", out.display());
}
