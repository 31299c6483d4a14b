//! Placeholder with the agreed interface; replaced by the real module.
#![allow(dead_code, unused_variables)]
use protocol::{CgroupInfo, CgroupVersion, Limits, Stats};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup i/o on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}
pub struct CgroupParent(pub Option<String>);
pub fn detect_version() -> Result<CgroupVersion, CgroupError> { Ok(CgroupVersion::V1) }
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CgroupRecord { pub path: String }
pub struct Cgroup { rec: CgroupRecord }
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounters { pub oom_kills: u64, pub pids_limit_hits: u64 }
impl Cgroup {
    pub fn create(parent: &CgroupParent, id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> { Ok(Cgroup { rec: CgroupRecord { path: format!("/glassbox/{id}") } }) }
    pub fn open(record: &CgroupRecord) -> Cgroup { Cgroup { rec: record.clone() } }
    pub fn record(&self) -> CgroupRecord { self.rec.clone() }
    pub fn info(&self) -> CgroupInfo { CgroupInfo { path: self.rec.path.clone(), version: CgroupVersion::V1 } }
    pub fn procs_files(&self) -> Vec<PathBuf> { vec![] }
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> { Ok(()) }
    pub fn stats(&self) -> Result<Stats, CgroupError> { Ok(Stats::default()) }
    pub fn event_counters(&self) -> Result<EventCounters, CgroupError> { Ok(EventCounters::default()) }
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> { Ok(vec![]) }
    pub fn remove(&self) -> Result<(), CgroupError> { Ok(()) }
}
