//! Builds the Glassbox page (the `frontend` crate) to wasm, runs wasm-bindgen
//! (as a library, pinned to the frontend's wasm-bindgen), shrinks the wasm
//! with wasm-opt when npm's binaryen is installed, and leaves the result in
//! `$OUT_DIR/dist` for `src/assets.rs` to embed.
//!
//! Needs: the `wasm32-unknown-unknown` target and `frontend/node_modules`
//! (xterm.js). `scripts/install-deps frontend` installs both.
//! `GLASSBOX_SKIP_FRONTEND=1` embeds a one-line placeholder page instead
//! (quick backend-only builds).

#![cfg_attr(not(feature = "page"), allow(dead_code, unused_imports))]

use std::env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let root = manifest
        .parent()
        .expect("backend/ is inside the workspace")
        .to_path_buf();
    let frontend = root.join("frontend");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets this"));
    let dist = out.join("dist");

    println!("cargo:rerun-if-env-changed=GLASSBOX_SKIP_FRONTEND");
    for p in [
        "frontend/src",
        "frontend/index.html",
        "frontend/style.css",
        "frontend/Cargo.toml",
        "frontend/package-lock.json",
        "protocol/src",
        "protocol/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    let _ = fs::remove_dir_all(&dist);
    fs::create_dir_all(&dist).expect("create OUT_DIR/dist");

    // Without the `page` feature (the fuzz targets build the library only)
    // the build dependencies that make the page are not even compiled.
    let skip = env::var_os("GLASSBOX_SKIP_FRONTEND").is_some_and(|v| !v.is_empty() && v != "0");
    if skip || cfg!(not(feature = "page")) {
        fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Glassbox</title>\
             <p>This glassbox was built with GLASSBOX_SKIP_FRONTEND: the API works, the page is not included.</p>\n",
        )
        .expect("write placeholder");
        return;
    }

    build_page(&root, &frontend, &out, &dist);
}

/// The real page: the frontend crate to wasm, wasm-bindgen, wasm-opt.
#[cfg(feature = "page")]
fn build_page(root: &Path, frontend: &Path, out: &Path, dist: &Path) {
    let xterm = frontend.join("node_modules/@xterm/xterm/lib/xterm.mjs");
    if !xterm.exists() {
        fail(&format!(
            "xterm.js is not installed ({} is missing).\n\
             Install the page's npm packages with `scripts/install-deps frontend` \
             (or `cd frontend && npm ci`; Debian: `apt-get install nodejs npm`).\n\
             To build the server without the page: GLASSBOX_SKIP_FRONTEND=1.",
            xterm.display()
        ));
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    check_wasm_target();

    // A target dir of its own: sharing the outer build's deadlocks on its lock.
    let target_dir = root.join("target/frontend");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "-p",
            "frontend",
            "--lib",
            "--profile",
            "wasm-release",
        ])
        .args(["--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target_dir);
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy();
        if matches!(
            k.as_ref(),
            "CARGO_ENCODED_RUSTFLAGS"
                | "RUSTFLAGS"
                | "CARGO_TARGET_DIR"
                | "CARGO_BUILD_TARGET"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_PKG_NAME"
                | "OUT_DIR"
                | "TARGET"
                | "HOST"
                | "PROFILE"
                | "OPT_LEVEL"
                | "DEBUG"
                | "NUM_JOBS"
        ) || k.starts_with("CARGO_FEATURE_")
            || k.starts_with("CARGO_CFG_")
            || k.starts_with("DEP_")
        {
            cmd.env_remove(k.as_ref());
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run cargo: {e}")));
    if !status.success() {
        fail("building the frontend crate to wasm failed (see the errors above)");
    }
    let wasm = target_dir.join("wasm32-unknown-unknown/wasm-release/frontend.wasm");

    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&wasm)
        .web(true)
        .expect("the web target is valid")
        .omit_default_module_path(false)
        .debug(false)
        .keep_debug(false);
    if let Err(e) = bindgen.generate(dist) {
        fail(&format!("wasm-bindgen failed: {e:#}"));
    }

    let bg = dist.join("frontend_bg.wasm");
    let wasm_opt = frontend.join("node_modules/.bin/wasm-opt");
    if wasm_opt.exists() {
        let tmp = dist.join("frontend_bg.opt.wasm");
        let ok = Command::new(&wasm_opt)
            .arg(&bg)
            .args(["-Oz", "--strip-debug", "--strip-producers"])
            .args(["--enable-bulk-memory", "--enable-nontrapping-float-to-int"])
            .args(["--enable-sign-ext", "--enable-mutable-globals"])
            .args(["--enable-reference-types", "--enable-multivalue"])
            .arg("-o")
            .arg(&tmp)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            fs::rename(&tmp, &bg).expect("replace the wasm");
        } else {
            println!("cargo:warning=wasm-opt failed; embedding the unoptimized wasm");
        }
    }

    // index.html: Trunk's directives become plain tags.
    let html = fs::read_to_string(frontend.join("index.html")).expect("frontend/index.html");
    let mut page = String::new();
    for line in html.lines() {
        let t = line.trim();
        if t.starts_with("<link data-trunk rel=\"css\"") {
            let href = attr(t, "href").expect("a css link has an href");
            let name = Path::new(&href)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            fs::copy(frontend.join(&href), dist.join(&name))
                .unwrap_or_else(|e| fail(&format!("copy {href}: {e}")));
            page.push_str(&format!(
                "    <link rel=\"stylesheet\" href=\"/{name}\" />\n"
            ));
        } else if t.starts_with("<link data-trunk rel=\"rust\"") {
            page.push_str(
                "    <link rel=\"modulepreload\" href=\"/frontend.js\" />\n    \
                 <link rel=\"preload\" href=\"/frontend_bg.wasm\" as=\"fetch\" type=\"application/wasm\" crossorigin />\n    \
                 <script type=\"module\">import init from \"/frontend.js\"; init();</script>\n",
            );
        } else {
            page.push_str(line);
            page.push('\n');
        }
    }
    fs::write(dist.join("index.html"), page).expect("write index.html");

    // Precompressed copies, served to browsers that accept gzip.
    let mut sizes = String::new();
    for entry in walk(dist) {
        let data = fs::read(&entry).expect("read a dist file");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&data).expect("gzip in memory");
        let gz = gz.finish().expect("gzip in memory");
        let rel = entry.strip_prefix(dist).unwrap().display().to_string();
        sizes.push_str(&format!("{rel}\t{}\t{}\n", data.len(), gz.len()));
        if gz.len() + 64 < data.len() {
            let mut name = entry.clone().into_os_string();
            name.push(".gz");
            fs::write(name, gz).expect("write .gz");
        }
    }
    // Sizes of what the page loads (path, bytes, gzipped bytes), for the README.
    fs::write(out.join("dist-sizes.tsv"), sizes).expect("write sizes");
}

#[cfg(not(feature = "page"))]
fn build_page(_: &Path, _: &Path, _: &Path, _: &Path) {
    unreachable!("without the `page` feature the placeholder is written");
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read dist").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn check_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(s) = sysroot {
        if !Path::new(&s)
            .join("lib/rustlib/wasm32-unknown-unknown")
            .exists()
        {
            fail(
                "the wasm32-unknown-unknown target is not installed.\n\
                 Install it with `rustup target add wasm32-unknown-unknown` \
                 (or `scripts/install-deps frontend`).",
            );
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: the Glassbox page cannot be built: {msg}\n");
    panic!("the Glassbox page cannot be built: {msg}");
}
