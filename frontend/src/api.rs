//! The HTTP API as the page uses it: paths, bodies, errors. Browser-free.

use protocol::api::{CreateContainer, ErrorBody};
use protocol::{Limits, NetworkMode};

pub const SESSIONS: &str = "/api/v1/sessions";
pub const SESSION: &str = "/api/v1/sessions/current";
/// Pushes the session's idle deadline; answers like `GET` [`SESSION`].
pub const SESSION_EXTEND: &str = "/api/v1/sessions/current/extend";
pub const IMAGES: &str = "/api/v1/images";
pub const CONTAINERS: &str = "/api/v1/containers";
/// The operator's defaults and maxima, so that the create form offers only
/// what the server allows.
pub const LIMITS: &str = "/api/v1/limits";
pub const EVENTS: &str = "/api/v1/events";

pub fn container(id: &str) -> String {
    format!("{CONTAINERS}/{}", encode(id))
}
pub fn stats(id: &str) -> String {
    format!("{}/stats", container(id))
}
pub fn processes(id: &str) -> String {
    format!("{}/processes", container(id))
}
pub fn diff(id: &str) -> String {
    format!("{}/diff", container(id))
}
/// Restart and stop are `POST …/{id}/restart` and `POST …/{id}/stop`.
pub fn action(id: &str, what: &str) -> String {
    format!("{}/{what}", container(id))
}
pub fn tty(id: &str, since: u64) -> String {
    format!("{}/tty?since={since}", container(id))
}
/// Re-attach to a running exec session (after a dropped socket).
pub fn exec_tty(id: &str, exec_id: u32, since: u64) -> String {
    format!("{}/tty?exec={exec_id}&since={since}", container(id))
}
pub fn exec(id: &str, cmd: &str) -> String {
    format!("{}/exec?cmd={}", container(id), encode(cmd))
}

/// A WebSocket URL for `path` on the page's own origin.
pub fn ws_url(page_protocol: &str, host: &str, path: &str) -> String {
    let scheme = if page_protocol == "https:" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{host}{path}")
}

/// Percent-encode a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error message to show for a failed call: the server's own message when
/// it sent the API's error body, otherwise the status.
pub fn error_message(status: u16, body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => e.error.message,
        Err(_) => match status {
            0 => "the server cannot be reached".into(),
            401 => "your session has ended".into(),
            404 => "not found".into(),
            503 => "the server is out of capacity; try again in a minute".into(),
            s => format!("the server answered {s}"),
        },
    }
}

pub use protocol::api::ServerLimits;

/// When the session ends if nothing else happens: at its idle deadline, or
/// at its hard TTL, whichever comes first.
pub fn session_deadline(info: &protocol::api::SessionInfo) -> u64 {
    info.idle_expires_at.min(info.expires_at)
}

/// The create form, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateForm {
    pub image: String,
    pub name: String,
    pub memory: String,
    pub cpu: String,
    pub pids: String,
    pub disk: String,
    /// Ask for egress (offered only when the operator allows it).
    pub egress: bool,
}

impl CreateForm {
    pub fn from_defaults(image: &str, d: &Limits) -> Self {
        let mb = |b: Option<u64>| b.map(|b| format!("{}m", b >> 20)).unwrap_or_default();
        CreateForm {
            image: image.into(),
            name: String::new(),
            memory: mb(d.memory_bytes),
            cpu: d
                .cpu_millis
                .map(|m| format!("{}", m as f64 / 1000.0))
                .unwrap_or_default(),
            pids: d.pids.map(|p| p.to_string()).unwrap_or_default(),
            disk: mb(d.disk_bytes),
            egress: false,
        }
    }

    /// The request body, or what is wrong with the form. Empty fields take the
    /// server's defaults; values above a known maximum are refused here already.
    pub fn to_request(&self, max: &Limits) -> Result<CreateContainer, String> {
        if self.image.trim().is_empty() {
            return Err("choose an image".into());
        }
        let size = |label: &str, s: &str, max: Option<u64>| -> Result<Option<u64>, String> {
            if s.trim().is_empty() {
                return Ok(None);
            }
            let v = crate::format::parse_bytes(s)
                .ok_or_else(|| format!("{label}: write a size like 64m or 1g"))?;
            if v < (1 << 20) {
                return Err(format!("{label}: at least 1 MiB"));
            }
            if let Some(m) = max.filter(|m| v > *m) {
                return Err(format!("{label}: at most {}", crate::format::bytes(m)));
            }
            Ok(Some(v))
        };
        let memory_bytes = size("memory", &self.memory, max.memory_bytes)?;
        let disk_bytes = size("disk", &self.disk, max.disk_bytes)?;
        let cpu_millis = if self.cpu.trim().is_empty() {
            None
        } else {
            let c: f64 = self
                .cpu
                .trim()
                .parse()
                .map_err(|_| "CPU: write a number of CPUs like 0.5".to_string())?;
            let m = (c * 1000.0).round();
            if !(10.0..=1_000_000.0).contains(&m) {
                return Err("CPU: between 0.01 and 1000".into());
            }
            let m = m as u32;
            if let Some(mx) = max.cpu_millis.filter(|mx| m > *mx) {
                return Err(format!("CPU: at most {}", crate::format::cpu_millis(mx)));
            }
            Some(m)
        };
        let pids = if self.pids.trim().is_empty() {
            None
        } else {
            let p: u32 = self
                .pids
                .trim()
                .parse()
                .map_err(|_| "pids: write a whole number".to_string())?;
            if p < 2 {
                return Err("pids: at least 2".into());
            }
            if let Some(mx) = max.pids.filter(|mx| p > *mx) {
                return Err(format!("pids: at most {mx}"));
            }
            Some(p)
        };
        let limits = Limits {
            memory_bytes,
            cpu_millis,
            pids,
            disk_bytes,
        };
        let name = self.name.trim();
        Ok(CreateContainer {
            image: self.image.trim().into(),
            name: (!name.is_empty()).then(|| name.to_string()),
            limits: (limits != Limits::default()).then_some(limits),
            network: self.egress.then_some(NetworkMode::Egress),
            ..CreateContainer::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn paths_and_urls() {
        assert_eq!(tty("c1", 42), "/api/v1/containers/c1/tty?since=42");
        assert_eq!(
            exec_tty("c1", 3, 7),
            "/api/v1/containers/c1/tty?exec=3&since=7"
        );
        assert_eq!(
            exec("c1", "/bin/sh"),
            "/api/v1/containers/c1/exec?cmd=%2Fbin%2Fsh"
        );
        assert_eq!(diff("a b"), "/api/v1/containers/a%20b/diff");
        assert_eq!(action("c1", "restart"), "/api/v1/containers/c1/restart");
        assert_eq!(
            ws_url("https:", "gb.example", EVENTS),
            "wss://gb.example/api/v1/events"
        );
        assert_eq!(
            ws_url("http:", "127.0.0.1:8080", "/x"),
            "ws://127.0.0.1:8080/x"
        );
    }

    #[test]
    fn errors_use_the_servers_words() {
        let body = r#"{"error":{"code":"limit_exceeded","message":"memory: at most 256 MiB"}}"#;
        assert_eq!(error_message(422, body), "memory: at most 256 MiB");
        assert_eq!(
            error_message(503, "<html>"),
            "the server is out of capacity; try again in a minute"
        );
        assert_eq!(error_message(500, ""), "the server answered 500");
        assert_eq!(error_message(0, ""), "the server cannot be reached");
    }

    #[test]
    fn the_create_form_checks_against_maxima() {
        let max = Limits {
            memory_bytes: Some(256 << 20),
            cpu_millis: Some(1000),
            pids: Some(128),
            disk_bytes: Some(1 << 30),
        };
        let defaults = Limits {
            memory_bytes: Some(64 << 20),
            cpu_millis: Some(500),
            pids: Some(64),
            disk_bytes: None,
        };
        let mut f = CreateForm::from_defaults("busybox", &defaults);
        assert_eq!(
            (f.memory.as_str(), f.cpu.as_str(), f.pids.as_str()),
            ("64m", "0.5", "64")
        );
        let req = f.to_request(&max).unwrap();
        assert_eq!(req.image, "busybox");
        assert_eq!(req.name, None);
        let l = req.limits.unwrap();
        assert_eq!(
            (l.memory_bytes, l.cpu_millis, l.pids, l.disk_bytes),
            (Some(64 << 20), Some(500), Some(64), None)
        );
        let json = serde_json::to_string(&req).unwrap();
        assert!(
            json.contains(r#""limits":{"memory_bytes":67108864,"cpu_millis":500,"pids":64}"#),
            "{json}"
        );

        f.memory = "1g".into();
        assert_eq!(f.to_request(&max).unwrap_err(), "memory: at most 256 MiB");
        f.memory = "64m".into();
        f.cpu = "2".into();
        assert_eq!(f.to_request(&max).unwrap_err(), "CPU: at most 1 CPU");
        f.cpu = "half".into();
        assert!(f.to_request(&max).unwrap_err().starts_with("CPU"));
        f.cpu = String::new();
        f.pids = "1000".into();
        assert_eq!(f.to_request(&max).unwrap_err(), "pids: at most 128");
        f.pids = String::new();
        f.memory = String::new();
        f.name = " web ".into();
        let req = f.to_request(&Limits::default()).unwrap();
        assert_eq!(req.name.as_deref(), Some("web"));
        assert_eq!(req.limits, None, "empty fields: the server's defaults");
        assert_eq!(req.network, None, "no network unless asked for");
        f.egress = true;
        let req = f.to_request(&Limits::default()).unwrap();
        assert_eq!(req.network, Some(NetworkMode::Egress));
        f.image = " ".into();
        assert_eq!(f.to_request(&max).unwrap_err(), "choose an image");
    }
}
