//! `glassbox`: the Glassbox server.

use anyhow::Context;
use backend::config::{Args, Config};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    // The container supervisor is a re-exec of whichever binary made the
    // container, so the server must be able to become one, before anything
    // else (no threads, no tokio) starts.
    runtime::process::supervisor_entrypoint();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    let config = Config::load(args).context("loading the configuration")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let state_dir = config.state_dir.clone();
    let (addr, handle) = backend::serve(config)
        .await
        .with_context(|| format!("starting Glassbox with state dir {}", state_dir.display()))?;
    println!("Glassbox is listening on http://{addr}/");
    tracing::info!(%addr, state_dir = %state_dir.display(), "listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!(mode = ?handle.state.config.shutdown, "shutting down");
    handle.shutdown().await;
    Ok(())
}
