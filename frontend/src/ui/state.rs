//! The page's state and how actions change it.

use crate::api::ServerLimits;
use crate::feed::{self, FeedItem};
use crate::history::StatsHistory;
use protocol::{ContainerEvent, ContainerInfo, Stats};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use yew::prelude::*;

/// How many feed lines are kept.
pub const FEED_CAP: usize = 200;
/// The session warning shows this long before expiry.
pub const WARN_BEFORE_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Checking whether this browser already has a session.
    Loading,
    /// No session: the start screen.
    Idle,
    /// Starting: what is happening now.
    Starting(&'static str),
    Live,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppState {
    pub phase: Phase,
    pub expires_at: Option<u64>,
    pub containers: Vec<ContainerInfo>,
    pub selected: Option<String>,
    pub stats: HashMap<String, Rc<StatsHistory>>,
    pub feed: VecDeque<FeedItem>,
    pub events_live: bool,
    /// The last problem to show the user.
    pub error: Option<String>,
    /// Whether the server answered at all on the last try.
    pub server_reachable: bool,
    pub dark: bool,
    pub images: Vec<String>,
    pub limits: ServerLimits,
    pub now_ms: u64,
    /// A container being restarted: it stays in the list (and selected) until
    /// its fresh replacement arrives, though the server already removed it.
    pub restarting: Option<String>,
}

impl AppState {
    pub fn new(dark: bool, now_ms: u64) -> Self {
        AppState {
            phase: Phase::Loading,
            expires_at: None,
            containers: Vec::new(),
            selected: None,
            stats: HashMap::new(),
            feed: VecDeque::new(),
            events_live: false,
            error: None,
            server_reachable: true,
            dark,
            images: Vec::new(),
            limits: ServerLimits::default(),
            now_ms,
            restarting: None,
        }
    }

    pub fn selected_info(&self) -> Option<&ContainerInfo> {
        let id = self.selected.as_deref()?;
        self.containers.iter().find(|c| c.id == id)
    }

    pub fn name_of(&self, id: &str) -> Option<&str> {
        self.containers
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.as_str())
    }

    /// Milliseconds left in the session, when its expiry is known.
    pub fn time_left(&self) -> Option<u64> {
        self.expires_at.map(|e| e.saturating_sub(self.now_ms))
    }
}

pub enum Action {
    Loaded {
        containers: Vec<ContainerInfo>,
        expires_at: Option<u64>,
    },
    NoSession {
        reachable: bool,
    },
    Starting(&'static str),
    Started {
        expires_at: u64,
        container: ContainerInfo,
    },
    Containers(Vec<ContainerInfo>),
    Container(ContainerInfo),
    /// A restart of this container began.
    Restarting(Option<String>),
    /// A restart made `info` in place of container `old`.
    Replaced {
        old: String,
        info: ContainerInfo,
    },
    Select(String),
    Stats {
        id: String,
        stats: Stats,
    },
    Event {
        event: ContainerEvent,
        at_ms: u64,
    },
    EventsLive(bool),
    Error(Option<String>),
    Expiry(u64),
    Ended(&'static str),
    Tick(u64),
    Theme(bool),
    Images(Vec<String>),
    Limits(ServerLimits),
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Loaded {
                containers,
                expires_at,
            } => {
                s.selected = pick(&containers, None);
                s.containers = containers;
                s.expires_at = expires_at;
                s.phase = Phase::Live;
                s.server_reachable = true;
            }
            Action::NoSession { reachable } => {
                s.phase = Phase::Idle;
                s.server_reachable = reachable;
            }
            Action::Starting(what) => {
                s.phase = Phase::Starting(what);
                s.error = None;
            }
            Action::Started {
                expires_at,
                container,
            } => {
                s.expires_at = Some(expires_at);
                s.selected = Some(container.id.clone());
                s.containers = vec![container];
                s.phase = Phase::Live;
                s.server_reachable = true;
            }
            Action::Containers(list) if s.restarting.is_some() => {
                // Mid-restart the list lacks the old container: keep it shown.
                for c in list {
                    if !s.containers.iter().any(|x| x.id == c.id) {
                        s.containers.push(c);
                    }
                }
            }
            Action::Containers(list) => {
                s.selected = pick(&list, s.selected.as_deref());
                s.stats.retain(|id, _| list.iter().any(|c| &c.id == id));
                s.containers = list;
            }
            Action::Container(info) => match s.containers.iter_mut().find(|c| c.id == info.id) {
                Some(c) => *c = info,
                None => {
                    s.selected = Some(info.id.clone());
                    s.containers.push(info);
                }
            },
            Action::Restarting(id) => s.restarting = id,
            Action::Replaced { old, info } => {
                s.restarting = None;
                // The user acted on it: show the fresh one.
                s.stats.remove(&old);
                // The list may have learnt of the new one already (`created`).
                s.containers.retain(|c| c.id != info.id);
                match s.containers.iter().position(|c| c.id == old) {
                    Some(i) => s.containers[i] = info.clone(),
                    None => s.containers.push(info.clone()),
                }
                s.selected = Some(info.id);
            }
            Action::Select(id) => s.selected = Some(id),
            Action::Stats { id, stats } => {
                let h = s.stats.entry(id).or_default();
                Rc::make_mut(h).push(stats);
            }
            Action::Event { event, at_ms } => {
                let item = feed::describe(&event, s.name_of(event.container_id()), at_ms);
                feed::push(&mut s.feed, item, FEED_CAP);
                match &event {
                    ContainerEvent::Exited { id, code } => {
                        if let Some(c) = s.containers.iter_mut().find(|c| &c.id == id) {
                            c.state = protocol::ContainerState::Exited;
                            c.exit_code = Some(*code);
                        }
                    }
                    ContainerEvent::OomKill { id, .. } => {
                        if let Some(c) = s.containers.iter_mut().find(|c| &c.id == id) {
                            c.oom_killed = true;
                        }
                    }
                    ContainerEvent::Removed { id } if s.restarting.as_ref() == Some(id) => {}
                    ContainerEvent::Removed { id } => {
                        s.containers.retain(|c| &c.id != id);
                        s.stats.remove(id);
                        s.selected = pick(&s.containers, s.selected.as_deref());
                    }
                    _ => {}
                }
            }
            Action::EventsLive(live) => s.events_live = live,
            Action::Error(e) => s.error = e,
            Action::Expiry(at) => s.expires_at = Some(at),
            Action::Ended(why) => {
                let dark = s.dark;
                let images = std::mem::take(&mut s.images);
                let limits = std::mem::take(&mut s.limits);
                s = AppState::new(dark, s.now_ms);
                s.images = images;
                s.limits = limits;
                s.phase = Phase::Idle;
                s.error = Some(why.to_string());
            }
            Action::Tick(now) => s.now_ms = now,
            Action::Theme(dark) => s.dark = dark,
            Action::Images(i) => s.images = i,
            Action::Limits(l) => s.limits = l,
        }
        name_feed(&mut s);
        Rc::new(s)
    }
}

/// A `created` event often arrives before the list knows the new container's
/// name; such lines said the short id. Once the name is known, they say it.
fn name_feed(s: &mut AppState) {
    for item in s.feed.iter_mut() {
        let short = crate::format::short_id(&item.container_id);
        if !item.text.starts_with(short) {
            continue;
        }
        if let Some(c) = s.containers.iter().find(|c| c.id == item.container_id) {
            if c.name != short {
                item.text = format!("{}{}", c.name, &item.text[short.len()..]);
            }
        }
    }
}

/// Keep the selection if it still exists, else the first running container.
fn pick(list: &[ContainerInfo], current: Option<&str>) -> Option<String> {
    if let Some(c) = current.filter(|c| list.iter().any(|x| x.id == *c)) {
        return Some(c.to_string());
    }
    list.iter()
        .find(|c| c.state == protocol::ContainerState::Running)
        .or_else(|| list.first())
        .map(|c| c.id.clone())
}

pub type Store = UseReducerHandle<AppState>;
