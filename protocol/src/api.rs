//! HTTP API bodies.

use crate::container::{Limits, NetworkMode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /api/v1/sessions` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session_id: String,
    pub token: String,
    /// Unix time in milliseconds.
    pub expires_at: u64,
}

/// `POST /api/v1/containers` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    pub image: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub init: Option<bool>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub limits: Option<Limits>,
    /// `"none"` (the default) or `"egress"`, which the operator must enable.
    #[serde(default)]
    pub network: Option<NetworkMode>,
}

/// Every API error: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `limit_exceeded`.
    pub code: String,
    pub message: String,
    /// For `limit_exceeded` and `out_of_capacity`: the name of the limit that was hit,
    /// e.g. `memory_bytes` or `containers_per_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// `GET /api/v1/sessions/current`: the session and the limits that apply to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    /// Unix time in milliseconds when the session ends regardless of activity (hard TTL).
    pub expires_at: u64,
    /// Unix time in milliseconds when the session ends if nothing happens before then.
    pub idle_expires_at: u64,
    pub idle_timeout_secs: u64,
    /// How many containers this session may have at once.
    pub max_containers: u32,
    /// What a container gets when it asks for nothing.
    pub default_limits: Limits,
    /// The most a container may ask for.
    pub max_limits: Limits,
}

/// `GET /api/v1/limits`: the operator's limits, public so that a create form
/// can offer only what the server allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLimits {
    /// What a container gets for each limit it does not ask for.
    #[serde(default)]
    pub defaults: Limits,
    /// The most a container may ask for.
    #[serde(default)]
    pub maxima: Limits,
    /// How many containers a session may have at once.
    #[serde(default)]
    pub containers_per_session: u32,
    /// Whether a container may ask for `"network": "egress"` (the operator's
    /// `[network] egress`).
    #[serde(default)]
    pub egress: bool,
}
