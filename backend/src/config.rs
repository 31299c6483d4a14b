//! The operator's configuration: a TOML file (`--config FILE`), overridden by
//! flags and environment variables. Every limit a user can hit is here.

use clap::Parser;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Command line; each flag also has an environment variable.
#[derive(Debug, Parser, Default)]
#[command(
    name = "glassbox",
    version,
    about = "Glassbox: a container playground you can see into"
)]
pub struct Args {
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "GLASSBOX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where images, layers and containers live [default: /var/lib/glassbox].
    #[arg(long, env = "GLASSBOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// TOML file with the rest of the settings (see the README).
    #[arg(long, env = "GLASSBOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Cgroup parent of containers, relative to each hierarchy's root.
    #[arg(long, env = "GLASSBOX_CGROUP_PARENT")]
    pub cgroup_parent: Option<String>,
    /// Warm containers kept ready for fast starts (0 turns the pool off).
    #[arg(long, env = "GLASSBOX_WARM_POOL")]
    pub warm_pool: Option<usize>,
    /// Sandboxes kept running their shell already, for creates that ask for
    /// nothing but limits: the prompt is there at once (0 turns them off).
    #[arg(long, env = "GLASSBOX_SHELL_POOL")]
    pub shell_pool: Option<usize>,
    /// Origins allowed to open WebSockets and use the cookie (repeatable);
    /// none means the page's own origin only.
    #[arg(
        long = "allowed-origin",
        env = "GLASSBOX_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Mark the session cookie `Secure` (set this behind TLS).
    #[arg(long, env = "GLASSBOX_SECURE_COOKIE")]
    pub secure_cookie: bool,
    /// Sessions in total.
    #[arg(long, env = "GLASSBOX_MAX_SESSIONS")]
    pub max_sessions: Option<u32>,
    /// Containers in total (the capacity gate).
    #[arg(long, env = "GLASSBOX_MAX_CONTAINERS")]
    pub max_containers: Option<u32>,
    /// Containers per session.
    #[arg(long, env = "GLASSBOX_CONTAINERS_PER_SESSION")]
    pub containers_per_session: Option<u32>,
    /// Seconds without activity before a session ends.
    #[arg(long, env = "GLASSBOX_IDLE_TIMEOUT")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a session lives at most.
    #[arg(long, env = "GLASSBOX_SESSION_TTL")]
    pub session_ttl_secs: Option<u64>,
    /// Let containers ask for network egress (`[network] egress`); turns on
    /// IPv4 forwarding on the host when the first such container starts.
    #[arg(long, env = "GLASSBOX_EGRESS")]
    pub egress: bool,
    /// On SIGTERM or Ctrl+C: `keep` the containers running for the next
    /// start (live restore), or `stop` and remove them [default: keep].
    #[arg(long, env = "GLASSBOX_SHUTDOWN", value_enum)]
    pub shutdown: Option<ShutdownMode>,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For`
    /// (repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "GLASSBOX_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// Sessions one address may create per minute (after its burst).
    #[arg(long, env = "GLASSBOX_SESSIONS_PER_MINUTE")]
    pub sessions_per_minute: Option<u32>,
    /// Containers one address may create or restart per minute (after its burst).
    #[arg(long, env = "GLASSBOX_CONTAINERS_PER_MINUTE")]
    pub containers_per_minute: Option<u32>,
    /// WebSockets one address may open per minute (after its burst).
    #[arg(long, env = "GLASSBOX_SOCKETS_PER_MINUTE")]
    pub sockets_per_minute: Option<u32>,
}

/// What a stopping server does with its sessions' containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownMode {
    /// Leave them running; the next start adopts them (live restore).
    #[default]
    Keep,
    /// End every session and remove its containers.
    Stop,
}

/// Everything the server needs. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub cgroup_parent: Option<String>,
    /// Warm containers kept ready, so that a create skips the slow kernel
    /// work (namespaces, cgroup moves); see the runtime's `pool` module.
    pub warm_pool: usize,
    /// Containers of the default image kept running its shell already, for
    /// creates with nothing but limits (the page's default sandbox); see
    /// the runtime's `pool` module. Size it for the bursts you expect.
    pub shell_pool: usize,
    /// `scheme://host[:port]` entries; empty: same origin as the request's `Host`.
    pub allowed_origins: Vec<String>,
    pub secure_cookie: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (the per-IP
    /// caps and rate limits key on it). From any other peer the header is
    /// ignored: anyone can send one.
    pub trusted_proxies: Vec<IpAddr>,
    /// At start, remove containers in the state dir that no live session
    /// owns (e.g. made with `gbx` by hand, or by a create that crashed).
    pub remove_orphans: bool,
    /// What SIGTERM or Ctrl+C does with running containers.
    pub shutdown: ShutdownMode,
    pub sessions: SessionLimits,
    pub limits: ContainerLimits,
    pub capacity: Capacity,
    pub ws: WsLimits,
    pub rate: RateLimits,
    /// Interval of the stats stream on `/api/v1/events` (250 ms = 4 Hz).
    pub stats_interval_ms: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Serve `/metrics`.
    pub metrics: bool,
    pub network: NetworkConfig,
}

/// `[network]`: egress for containers that ask for it, off unless enabled.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub egress: bool,
    /// Host bridge of egress containers.
    pub bridge: String,
    /// Their private subnet (`a.b.c.d/n`, n from 16 to 29, inside RFC 1918).
    pub subnet: String,
    /// Name of Glassbox's nftables tables.
    pub table: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            egress: false,
            bridge: runtime::network::DEFAULT_BRIDGE.into(),
            subnet: runtime::network::DEFAULT_SUBNET.into(),
            table: runtime::network::DEFAULT_TABLE.into(),
        }
    }
}

impl NetworkConfig {
    /// The runtime's egress setting: None unless the operator enabled it.
    pub fn egress_options(&self) -> Result<Option<runtime::network::EgressOptions>, ConfigError> {
        if !self.egress {
            return Ok(None);
        }
        runtime::network::EgressOptions::new(&self.bridge, &self.subnet, &self.table)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(format!("network: {e}")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionLimits {
    pub max_total: u32,
    pub max_per_ip: u32,
    pub containers_per_session: u32,
    pub idle_timeout_secs: u64,
    pub ttl_secs: u64,
    /// How often expired sessions are looked for.
    pub reap_interval_ms: u64,
}

/// Per-container resource limits: what a container gets when it asks for
/// nothing, and the most it may ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerLimits {
    pub default_memory_bytes: u64,
    pub max_memory_bytes: u64,
    pub default_cpu_millis: u32,
    pub max_cpu_millis: u32,
    pub default_pids: u32,
    pub max_pids: u32,
    pub default_disk_bytes: u64,
    pub max_disk_bytes: u64,
}

/// The host's capacity: above it, creates get `503 out of capacity`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capacity {
    pub max_containers: u32,
    /// Sum of the memory limits of all containers; 0: no budget.
    pub memory_bytes: u64,
    /// Container creations running at once; more wait their turn.
    pub parallel_creates: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsLimits {
    /// Largest message a client may send (keystrokes, pastes, resizes).
    pub max_message_bytes: usize,
    /// A client that does not take output for this long is disconnected (the
    /// container keeps running; the client reconnects with replay).
    pub send_timeout_secs: u64,
    /// Ping interval; also keeps reverse proxies from timing the socket out.
    pub ping_interval_secs: u64,
}

/// Per-client rates (a burst, refilled at a steady rate): how fast one
/// address may create sessions and containers and open WebSockets, and how
/// fast one terminal socket may resize.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub sessions_burst: u32,
    pub sessions_per_minute: u32,
    /// Container creations and restarts.
    pub containers_burst: u32,
    pub containers_per_minute: u32,
    /// WebSocket upgrades (terminals, execs, events).
    pub sockets_burst: u32,
    pub sockets_per_minute: u32,
    /// Resize messages on one terminal socket; more wait (the last one wins).
    pub resize_burst: u32,
    pub resizes_per_second: u32,
}

const MIB: u64 = 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            state_dir: PathBuf::from(runtime::state::DEFAULT_STATE_DIR),
            cgroup_parent: None,
            warm_pool: 4,
            shell_pool: 8,
            allowed_origins: Vec::new(),
            secure_cookie: false,
            trusted_proxies: Vec::new(),
            remove_orphans: true,
            shutdown: ShutdownMode::Keep,
            sessions: SessionLimits::default(),
            limits: ContainerLimits::default(),
            capacity: Capacity::default(),
            ws: WsLimits::default(),
            rate: RateLimits::default(),
            stats_interval_ms: 250,
            max_body_bytes: 64 * 1024,
            metrics: true,
            network: NetworkConfig::default(),
        }
    }
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_total: 100,
            max_per_ip: 10,
            containers_per_session: 5,
            idle_timeout_secs: 30 * 60,
            ttl_secs: 4 * 3600,
            reap_interval_ms: 5000,
        }
    }
}

impl Default for ContainerLimits {
    fn default() -> Self {
        ContainerLimits {
            default_memory_bytes: 256 * MIB,
            max_memory_bytes: 1024 * MIB,
            default_cpu_millis: 1000,
            max_cpu_millis: 2000,
            default_pids: 256,
            max_pids: 1024,
            default_disk_bytes: 256 * MIB,
            max_disk_bytes: 1024 * MIB,
        }
    }
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            max_containers: 100,
            memory_bytes: 0,
            parallel_creates: 32,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            sessions_burst: 5,
            sessions_per_minute: 10,
            containers_burst: 10,
            containers_per_minute: 30,
            sockets_burst: 30,
            sockets_per_minute: 120,
            resize_burst: 10,
            resizes_per_second: 10,
        }
    }
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_message_bytes: 64 * 1024,
            send_timeout_secs: 60,
            ping_interval_secs: 30,
        }
    }
}

impl Config {
    /// The file (if any), then flags and environment variables on top.
    pub fn load(args: Args) -> Result<Config, ConfigError> {
        let mut config = match &args.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = args.listen {
            config.listen = v;
        }
        if let Some(v) = args.state_dir {
            config.state_dir = v;
        }
        if args.cgroup_parent.is_some() {
            config.cgroup_parent = args.cgroup_parent;
        }
        if let Some(v) = args.warm_pool {
            config.warm_pool = v;
        }
        if let Some(v) = args.shell_pool {
            config.shell_pool = v;
        }
        if !args.allowed_origins.is_empty() {
            config.allowed_origins = args.allowed_origins;
        }
        config.secure_cookie |= args.secure_cookie;
        if let Some(v) = args.max_sessions {
            config.sessions.max_total = v;
        }
        if let Some(v) = args.max_containers {
            config.capacity.max_containers = v;
        }
        if let Some(v) = args.containers_per_session {
            config.sessions.containers_per_session = v;
        }
        if let Some(v) = args.idle_timeout_secs {
            config.sessions.idle_timeout_secs = v;
        }
        if let Some(v) = args.session_ttl_secs {
            config.sessions.ttl_secs = v;
        }
        config.network.egress |= args.egress;
        if let Some(v) = args.shutdown {
            config.shutdown = v;
        }
        if !args.trusted_proxies.is_empty() {
            config.trusted_proxies = args.trusted_proxies;
        }
        if let Some(v) = args.sessions_per_minute {
            config.rate.sessions_per_minute = v;
        }
        if let Some(v) = args.containers_per_minute {
            config.rate.containers_per_minute = v;
        }
        if let Some(v) = args.sockets_per_minute {
            config.rate.sockets_per_minute = v;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let pairs: [(&str, u64, u64); 4] = [
            ("memory_bytes", l.default_memory_bytes, l.max_memory_bytes),
            (
                "cpu_millis",
                l.default_cpu_millis.into(),
                l.max_cpu_millis.into(),
            ),
            ("pids", l.default_pids.into(), l.max_pids.into()),
            ("disk_bytes", l.default_disk_bytes, l.max_disk_bytes),
        ];
        for (name, default, max) in pairs {
            if default == 0 || default > max {
                return Err(ConfigError::Invalid(format!(
                    "limits.default_{name} must be between 1 and limits.max_{name}"
                )));
            }
        }
        if self.stats_interval_ms < 50 {
            return Err(ConfigError::Invalid(
                "stats_interval_ms must be at least 50".into(),
            ));
        }
        if self.sessions.idle_timeout_secs == 0 || self.sessions.ttl_secs == 0 {
            return Err(ConfigError::Invalid(
                "sessions.idle_timeout_secs and sessions.ttl_secs must be above 0".into(),
            ));
        }
        if self.capacity.parallel_creates == 0 {
            return Err(ConfigError::Invalid(
                "capacity.parallel_creates must be above 0".into(),
            ));
        }
        if self.ws.max_message_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "ws.max_message_bytes must be at least 1024".into(),
            ));
        }
        self.network.egress_options()?;
        let r = &self.rate;
        let rates = [
            ("sessions", r.sessions_burst, r.sessions_per_minute),
            ("containers", r.containers_burst, r.containers_per_minute),
            ("sockets", r.sockets_burst, r.sockets_per_minute),
            ("resize", r.resize_burst, r.resizes_per_second),
        ];
        if rates
            .iter()
            .any(|(_, burst, rate)| *burst == 0 || *rate == 0)
        {
            return Err(ConfigError::Invalid(
                "rate: every burst and rate must be above 0".into(),
            ));
        }
        for o in &self.allowed_origins {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "allowed origin {o:?}: write scheme://host[:port], no trailing slash"
                )));
            }
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.sessions.idle_timeout_secs)
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.sessions.ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_flags_and_defaults_combine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glassbox.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\n[limits]\nmax_memory_bytes = 2147483648\n[sessions]\nmax_total = 7\n",
        )
        .unwrap();
        let args = Args {
            config: Some(path),
            max_sessions: Some(9),
            ..Args::default()
        };
        let c = Config::load(args).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.max_memory_bytes, 2 << 30);
        assert_eq!(c.sessions.max_total, 9, "a flag wins over the file");
        assert_eq!(c.limits.default_pids, 256, "unset keys keep their default");
        assert_eq!(c.shutdown, ShutdownMode::Keep, "live restore by default");
        let stop: Config = toml::from_str("shutdown = \"stop\"").unwrap();
        assert_eq!(stop.shutdown, ShutdownMode::Stop);
    }

    #[test]
    fn egress_is_off_unless_enabled_and_its_subnet_is_checked() {
        let c = Config::default();
        assert!(!c.network.egress);
        assert!(c.network.egress_options().unwrap().is_none());
        let on: Config = toml::from_str("[network]\negress = true\n").unwrap();
        let opts = on.network.egress_options().unwrap().expect("enabled");
        assert_eq!(opts.bridge, "glassbox0");
        let public: Config =
            toml::from_str("[network]\negress = true\nsubnet = \"8.8.8.0/24\"\n").unwrap();
        assert!(public.validate().is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let mut c = Config::default();
        c.limits.default_pids = c.limits.max_pids + 1;
        assert!(c.validate().is_err());
    }
}
