//! `gbx`: Glassbox's container CLI. It feels like `docker` for someone who
//! knows Docker, but talks to no daemon: each container has a supervisor of
//! its own, and state lives under `--state-dir`.

mod size;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use protocol::Limits;
use runtime::network::{self, EgressOptions, NetworkMode};
use runtime::process::client;
use runtime::{CreateOptions, Runtime, RuntimeOptions};
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "gbx", version, about = "Run and inspect Glassbox containers")]
struct Cli {
    /// Where images, layers and containers live.
    #[arg(long, env = "GLASSBOX_STATE_DIR", default_value = runtime::state::DEFAULT_STATE_DIR, global = true)]
    state_dir: PathBuf,
    /// Cgroup parent for containers (relative to each hierarchy root); default: gbx's own cgroup.
    #[arg(long, env = "GLASSBOX_CGROUP_PARENT", global = true)]
    cgroup_parent: Option<String>,
    /// Warm containers to keep ready for fast starts (0 turns the pool off).
    #[arg(long, env = "GLASSBOX_WARM_POOL", default_value_t = 1, global = true)]
    warm_pool: usize,
    /// Seconds an unclaimed warm container waits before it removes itself.
    #[arg(
        long,
        env = "GLASSBOX_WARM_IDLE_SECS",
        default_value_t = 300,
        global = true
    )]
    warm_idle_secs: u64,
    /// The image warm containers are prepared for (their rootfs is built
    /// ahead); other images start cold.
    #[arg(
        long,
        env = "GLASSBOX_WARM_IMAGE",
        default_value = runtime::image::BUSYBOX_IMAGE,
        global = true
    )]
    warm_image: String,
    /// Warm containers of the warm image to keep running its shell on a
    /// terminal, for a detached create that asks for nothing but limits
    /// (`gbx run -dit IMAGE`). `gbx pool fill` makes them.
    #[arg(long, env = "GLASSBOX_SHELL_POOL", default_value_t = 0, global = true)]
    shell_pool: usize,
    /// Let containers ask for `--network egress` (NAT through a host bridge,
    /// with a deny-list). Off by default: an operator's decision, as it
    /// turns on IPv4 forwarding on the host.
    #[arg(long, env = "GLASSBOX_ALLOW_EGRESS", global = true)]
    allow_egress: bool,
    /// Host bridge for egress containers.
    #[arg(long, env = "GLASSBOX_EGRESS_BRIDGE", default_value = network::DEFAULT_BRIDGE, global = true)]
    egress_bridge: String,
    /// Private subnet for egress containers (the gateway is its first address).
    #[arg(long, env = "GLASSBOX_EGRESS_SUBNET", default_value = network::DEFAULT_SUBNET, global = true)]
    egress_subnet: String,
    /// Name of Glassbox's nftables tables (inet and bridge).
    #[arg(long, env = "GLASSBOX_EGRESS_TABLE", default_value = network::DEFAULT_TABLE, global = true)]
    egress_table: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and start a container.
    Run(RunArgs),
    /// List containers.
    Ps {
        /// Show exited containers too.
        #[arg(short, long)]
        all: bool,
        /// Only print ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a command in a running container.
    Exec {
        #[arg(short, long)]
        interactive: bool,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long = "env")]
        env: Vec<String>,
        container: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Send a signal to a container's PID 1.
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        container: String,
    },
    /// Remove containers.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Print a container's details as JSON.
    Inspect { container: String },
    /// List what the container's read-write layer holds.
    Diff { container: String },
    /// Print one snapshot of a container's cgroup counters as JSON.
    Stats { container: String },
    /// List a container's processes: PID inside and on the host.
    Top { container: String },
    /// Print a container's events (OOM kills, refused forks, exit) as JSON lines until it exits.
    Events { container: String },
    /// Attach to a container's terminal (an exited one's: print the output it kept).
    Attach { container: String },
    /// List images.
    Images,
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage the pool of warm containers (prepared ahead for fast starts).
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Manage the egress bridge and nftables tables.
    #[command(subcommand)]
    Network(NetworkCommand),
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Remove the egress bridge and Glassbox's nftables tables (they are made
    /// again by the next egress container). Running egress containers lose egress.
    Down,
}

#[derive(Subcommand)]
enum PoolCommand {
    /// List warm containers.
    Ls,
    /// Fill the pool up to --warm-pool now.
    Fill,
    /// Remove every warm container.
    Drain,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import a rootfs tarball (.tar or .tar.gz) as a one-layer image.
    Import { name: String, file: PathBuf },
    /// Remove an image.
    Rm { name: String },
    /// List images.
    Ls,
}

#[derive(Args)]
struct RunArgs {
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// Memory limit, e.g. 64m.
    #[arg(short, long, value_parser = size::parse_bytes)]
    memory: Option<u64>,
    /// CPUs, e.g. 0.5.
    #[arg(long, value_parser = size::parse_cpus)]
    cpus: Option<u32>,
    #[arg(long)]
    pids_limit: Option<u32>,
    /// Size cap of the read-write layer, e.g. 256m.
    #[arg(long, value_parser = size::parse_bytes)]
    disk: Option<u64>,
    /// Run Glassbox's init as PID 1 (the default).
    #[arg(long, overrides_with = "no_init")]
    init: bool,
    /// Make the command itself PID 1.
    #[arg(long)]
    no_init: bool,
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// `none` (loopback only, the default) or `egress` (needs --allow-egress).
    #[arg(long, default_value = "none", value_parser = parse_network)]
    network: NetworkMode,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

fn main() {
    runtime::process::supervisor_entrypoint();
    // Die quietly on a closed pipe (`gbx inspect x | head`), like other Unix tools.
    // SAFETY: restoring the default disposition of SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    init_logging();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("gbx: {e:#}");
            let code = e
                .downcast_ref::<runtime::ContainerError>()
                .and_then(|c| match c {
                    runtime::ContainerError::StartFailed { exit_code, .. } => Some(*exit_code),
                    _ => None,
                })
                .unwrap_or(125);
            std::process::exit(code);
        }
    }
}

/// Warnings to stderr; `GBX_LOG` (e.g. `debug`, `runtime=trace`) for more.
/// The filter is only built when asked for: compiling it costs a
/// millisecond at every start.
fn init_logging() {
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    match std::env::var("GBX_LOG") {
        Ok(filter) => builder
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .init(),
        Err(_) => builder.with_max_level(tracing::Level::WARN).init(),
    }
}

fn parse_network(s: &str) -> std::result::Result<NetworkMode, String> {
    match s {
        "none" => Ok(NetworkMode::None),
        "egress" => Ok(NetworkMode::Egress),
        other => Err(format!("{other:?}: use none or egress")),
    }
}

fn run(cli: Cli) -> Result<i32> {
    let egress = || EgressOptions::new(&cli.egress_bridge, &cli.egress_subnet, &cli.egress_table);
    if let Command::Network(NetworkCommand::Down) = cli.command {
        network::host::teardown(&egress()?)?;
        return Ok(0);
    }
    let egress = if cli.allow_egress {
        Some(egress()?)
    } else {
        None
    };
    let rt = Runtime::open(RuntimeOptions {
        state_dir: cli.state_dir.clone(),
        cgroup_parent: cli.cgroup_parent.clone(),
        warm_pool: cli.warm_pool,
        warm_idle: std::time::Duration::from_secs(cli.warm_idle_secs),
        warm_image: cli.warm_image.clone(),
        shell_pool: cli.shell_pool,
        // gbx's creates ask for no limit unless told: its shell entries
        // have none.
        shell_limits: Default::default(),
        refill_on_claim: true,
        egress,
    })
    .with_context(|| format!("opening state dir {}", cli.state_dir.display()))?;
    match cli.command {
        Command::Run(args) => run_container(&rt, args),
        Command::Ps { all, quiet } => {
            let list = rt.list()?;
            if !quiet {
                println!(
                    "{:<16}  {:<14}  {:<10}  {:<9}  {:<8}  COMMAND",
                    "CONTAINER ID", "NAME", "IMAGE", "STATE", "HOST PID"
                );
            }
            for c in list
                .iter()
                .filter(|c| all || c.state == protocol::ContainerState::Running)
            {
                if quiet {
                    println!("{}", c.id);
                    continue;
                }
                let state = match (c.state, c.exit_code) {
                    (protocol::ContainerState::Exited, Some(code)) => format!("exited({code})"),
                    (s, _) => s.as_str().to_string(),
                };
                let pid = c
                    .host_pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<16}  {:<14}  {:<10}  {:<9}  {:<8}  {}",
                    c.id,
                    c.name,
                    c.image,
                    state,
                    pid,
                    c.cmd.join(" ")
                );
            }
            Ok(0)
        }
        Command::Exec {
            interactive,
            tty,
            env,
            container,
            cmd,
        } => {
            let socket = rt.socket_path(&container)?;
            let _raw = raw_mode_if(tty)?;
            Ok(client::exec(&socket, cmd, env, tty, interactive)?)
        }
        Command::Kill { signal, container } => {
            rt.kill(&container, parse_signal(&signal)?)?;
            println!("{container}");
            Ok(0)
        }
        Command::Rm { force, containers } => {
            let mut code = 0;
            for c in containers {
                match rt.remove(&c, force) {
                    Ok(()) => println!("{c}"),
                    Err(e) => {
                        eprintln!("gbx: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Command::Inspect { container } => print_json(&rt.inspect(&container)?),
        Command::Diff { container } => {
            for change in rt.diff(&container)? {
                let mark = match change.kind {
                    protocol::ChangeKind::Added => 'A',
                    protocol::ChangeKind::Modified => 'C',
                    protocol::ChangeKind::Deleted => 'D',
                };
                println!("{mark} {}", change.path);
            }
            Ok(0)
        }
        Command::Stats { container } => print_json(&rt.stats(&container)?),
        Command::Top { container } => {
            println!("{:>6}  {:>9}  {:>6}  CMD", "PID", "HOST PID", "PPID");
            for p in rt.processes(&container)? {
                println!("{:>6}  {:>9}  {:>6}  {}", p.pid, p.host_pid, p.ppid, p.cmd);
            }
            Ok(0)
        }
        Command::Events { container } => {
            let mut monitor = rt.events(&container)?;
            loop {
                for event in monitor.next(std::time::Duration::from_secs(1)) {
                    println!("{}", serde_json::to_string(&event)?);
                }
                if monitor.exited() {
                    return Ok(0);
                }
            }
        }
        Command::Attach { container } => {
            // An exited container shows what it left: its output, its code.
            if let Some((code, kept)) = rt.kept_output(&container, 0)? {
                std::io::Write::write_all(&mut std::io::stdout(), &kept.data)?;
                return Ok(code);
            }
            let socket = rt.socket_path(&container)?;
            let raw = raw_mode_if(std::io::stdin().is_terminal())?;
            Ok(client::attach_main(&socket, raw.is_some())?)
        }
        Command::Images | Command::Image(ImageCommand::Ls) => {
            println!("{:<20}  {:<8}  {:>10}  LAYERS", "NAME", "LAYERS", "SIZE");
            for img in rt.images().list()? {
                let size: u64 = img.layers.iter().map(|l| l.size).sum();
                let digests: Vec<&str> = img
                    .layers
                    .iter()
                    .map(|l| &l.digest[..19.min(l.digest.len())])
                    .collect();
                println!(
                    "{:<20}  {:<8}  {:>10}  {}",
                    img.name,
                    img.layers.len(),
                    size::human(size),
                    digests.join(",")
                );
            }
            Ok(0)
        }
        Command::Pool(PoolCommand::Ls) => {
            println!(
                "{:<16}  {:<6}  {:<9}  {:>14}  CGROUP",
                "ID", "KIND", "STATE", "SUPERVISOR PID"
            );
            for e in rt.pool_entries() {
                let pid = e
                    .supervisor_pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into());
                let state = if rt.pool_entry_ready(&e) {
                    "ready"
                } else {
                    "preparing"
                };
                let kind = if rt.pool_entry_runs_shell(&e) {
                    "shell"
                } else {
                    "parked"
                };
                println!(
                    "{:<16}  {:<6}  {:<9}  {:>14}  {}",
                    e.id, kind, state, pid, e.cgroup.path
                );
            }
            Ok(0)
        }
        Command::Pool(PoolCommand::Fill) => {
            rt.refill_pool();
            Ok(0)
        }
        Command::Pool(PoolCommand::Drain) => {
            println!("{} removed", rt.drain_pool()?);
            Ok(0)
        }
        Command::Network(NetworkCommand::Down) => Ok(0),
        Command::Image(ImageCommand::Import { name, file }) => {
            let img = rt.images().import(&name, &file)?;
            println!(
                "{}",
                img.layers.first().map(|l| l.digest.as_str()).unwrap_or("")
            );
            Ok(0)
        }
        Command::Image(ImageCommand::Rm { name }) => {
            rt.remove_image(&name)?;
            println!("{name}");
            Ok(0)
        }
    }
}

fn run_container(rt: &Runtime, args: RunArgs) -> Result<i32> {
    let stdin_tty = std::io::stdin().is_terminal();
    if args.tty && args.interactive && !stdin_tty && !args.detach {
        bail!("the input device is not a TTY; drop -t or run from a terminal");
    }
    let opts = CreateOptions {
        image: args.image,
        name: args.name,
        hostname: args.hostname,
        cmd: args.cmd,
        env: args.env,
        limits: Limits {
            memory_bytes: args.memory,
            cpu_millis: args.cpus,
            pids: args.pids_limit,
            disk_bytes: args.disk,
        },
        init: !args.no_init,
        tty: args.tty,
        tty_size: runtime::tty::get_size(0),
        interactive: args.interactive,
        foreground: !args.detach,
        auto_remove: args.rm,
        network: args.network,
    };
    let _ = args.init;
    let started = rt.create(opts)?;
    if args.detach {
        println!("{}", started.info.id);
        return Ok(0);
    }
    if args.tty {
        let socket = rt.state_dir().container(&started.info.id).socket();
        let _raw = raw_mode_if(args.interactive && stdin_tty)?;
        return Ok(client::attach_main(&socket, args.interactive && stdin_tty)?);
    }
    let id = started.info.id.clone();
    // Only a detached create takes a container running already.
    let supervisor = started
        .supervisor
        .context("the container was started without a handle to wait on")?;
    Ok(supervisor.wait_exit_forwarding(|sig| {
        let _ = rt.kill(&id, sig);
    })?)
}

fn raw_mode_if(want: bool) -> Result<Option<runtime::tty::RawMode>> {
    if !want || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    Ok(Some(runtime::tty::RawMode::enable(
        std::io::stdin().as_fd(),
    )?))
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<i32> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(0)
}

fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return Ok(nix::sys::signal::Signal::try_from(n)?);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).with_context(|| format!("unknown signal {s:?}"))
}
