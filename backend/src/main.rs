//! `glassbox`: the Glassbox server. The HTTP and WebSocket API lands here;
//! until then the binary says so plainly and points at `gbx`.

fn main() {
    // The container supervisor is a re-exec of whichever binary made the
    // container, so the server must be able to become one too.
    runtime::process::supervisor_entrypoint();
    eprintln!(
        "glassbox: the web server is not part of this build yet.\n\
         Containers work today through the CLI: cargo run -p runtime --bin gbx -- run -it --rm busybox"
    );
    std::process::exit(2);
}
