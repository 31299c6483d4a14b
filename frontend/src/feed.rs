//! The events feed: each container event as a sentence a person can read.

use crate::format;
use protocol::{ContainerEvent, EventsMessage, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Good,
    Warn,
    Bad,
}

impl Severity {
    pub fn class(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Good => "good",
            Severity::Warn => "warn",
            Severity::Bad => "bad",
        }
    }
}

/// One line of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub at_ms: u64,
    pub container_id: String,
    pub severity: Severity,
    /// What happened, in plain words.
    pub text: String,
    /// What it means, for the curious (may be empty).
    pub detail: String,
    /// A limit event: a run of them from one container is one line whose
    /// count and time move, not a flood of lines (a fork bomb makes
    /// thousands of refusals a second).
    pub repeats: bool,
}

/// Add `item` at the front of the feed, newest first, merging it into the
/// newest line when it repeats that line's limit event; then keep `cap` lines.
pub fn push(feed: &mut std::collections::VecDeque<FeedItem>, item: FeedItem, cap: usize) {
    match feed.front_mut() {
        Some(top)
            if item.repeats
                && top.repeats
                && top.container_id == item.container_id
                && top.text == item.text =>
        {
            *top = item;
        }
        _ => feed.push_front(item),
    }
    feed.truncate(cap);
}

/// Describe an event. `name` is the container's name when known.
pub fn describe(event: &ContainerEvent, name: Option<&str>, at_ms: u64) -> FeedItem {
    let id = event.container_id().to_string();
    let who = name
        .map(str::to_string)
        .unwrap_or_else(|| format::short_id(&id).to_string());
    let repeats = matches!(
        event,
        ContainerEvent::OomKill { .. } | ContainerEvent::PidsLimit { .. }
    );
    let (severity, text, detail) = match event {
        ContainerEvent::Created { .. } => (
            Severity::Good,
            format!("{who} started"),
            "new namespaces, a cgroup and an overlay root were set up".to_string(),
        ),
        ContainerEvent::Exited { code, .. } => exit_sentence(&who, *code),
        ContainerEvent::OomKill {
            count, limit_bytes, ..
        } => (
            Severity::Bad,
            match limit_bytes {
                Some(l) => format!(
                    "a process was killed: memory limit {} reached",
                    format::bytes(*l)
                ),
                None => "a process was killed: out of memory".to_string(),
            },
            format!(
                "the kernel's OOM killer chose a victim in {who}'s cgroup ({} so far)",
                plural(*count, "kill", "kills")
            ),
        ),
        ContainerEvent::PidsLimit { count, limit, .. } => (
            Severity::Warn,
            match limit {
                Some(l) => format!("fork refused: pids limit {l} reached"),
                None => "fork refused: pids limit reached".to_string(),
            },
            format!(
                "the pids controller made fork() fail with EAGAIN in {who} ({} so far)",
                plural(*count, "refusal", "refusals")
            ),
        ),
        ContainerEvent::Removed { .. } => (
            Severity::Info,
            format!("{who} was removed"),
            "its processes, cgroup and read-write layer are gone".to_string(),
        ),
    };
    FeedItem {
        at_ms,
        container_id: id,
        severity,
        text,
        detail,
        repeats,
    }
}

fn exit_sentence(who: &str, code: i32) -> (Severity, String, String) {
    match code {
        0 => (
            Severity::Info,
            format!("{who} exited with code 0"),
            "PID 1 finished normally".to_string(),
        ),
        c if c > 128 && c < 128 + 65 => {
            let sig = c - 128;
            (
                Severity::Bad,
                format!(
                    "{who} exited with code {c} (killed by {})",
                    signal_name(sig)
                ),
                format!("PID 1 died of signal {sig}; 128 + {sig} = {c}"),
            )
        }
        c => (
            Severity::Warn,
            format!("{who} exited with code {c}"),
            "PID 1 returned a non-zero status".to_string(),
        ),
    }
}

/// Names of the signals people meet in a shell.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A message of the events WebSocket, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Stats {
        id: String,
        stats: Stats,
    },
    Event {
        event: ContainerEvent,
        at_ms: u64,
    },
    /// A message this page does not know (a newer server): ignored.
    Unknown,
}

/// Decode one text frame of `/api/v1/events`. Unknown kinds are not errors,
/// so that a newer server can add messages; broken JSON is.
pub fn decode_events_message(text: &str) -> Result<Incoming, String> {
    match serde_json::from_str::<EventsMessage>(text) {
        Ok(EventsMessage::Stats { id, stats }) => Ok(Incoming::Stats { id, stats }),
        Ok(EventsMessage::Event { event, at_ms }) => Ok(Incoming::Event { event, at_ms }),
        Err(e) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => Ok(Incoming::Unknown),
            _ => Err(format!("bad events message: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn limits_are_named_in_plain_words() {
        let oom = ContainerEvent::OomKill {
            id: "abc".into(),
            count: 1,
            limit_bytes: Some(64 << 20),
        };
        let item = describe(&oom, Some("web"), 5);
        assert_eq!(
            item.text,
            "a process was killed: memory limit 64 MiB reached"
        );
        assert_eq!(item.severity, Severity::Bad);
        assert!(item.detail.contains("1 kill so far"), "{}", item.detail);
        assert_eq!(item.at_ms, 5);

        let pids = ContainerEvent::PidsLimit {
            id: "abc".into(),
            count: 7,
            limit: Some(64),
        };
        let item = describe(&pids, None, 0);
        assert_eq!(item.text, "fork refused: pids limit 64 reached");
        assert!(item.detail.contains("7 refusals"));
        assert_eq!(item.container_id, "abc");
    }

    #[test]
    fn a_run_of_limit_events_is_one_line_with_the_latest_count() {
        let mut feed = std::collections::VecDeque::new();
        let pids = |count, id: &str| ContainerEvent::PidsLimit {
            id: id.into(),
            count,
            limit: Some(40),
        };
        for n in 1..=500 {
            push(&mut feed, describe(&pids(n, "a"), Some("lab"), n), 50);
        }
        assert_eq!(feed.len(), 1);
        assert!(
            feed[0].detail.contains("500 refusals"),
            "{}",
            feed[0].detail
        );
        assert_eq!(feed[0].at_ms, 500);
        // Another container's events, an exit, then more refusals: new lines.
        push(&mut feed, describe(&pids(1, "b"), Some("web"), 501), 50);
        push(
            &mut feed,
            describe(
                &ContainerEvent::Exited {
                    id: "a".into(),
                    code: 0,
                },
                Some("lab"),
                502,
            ),
            50,
        );
        push(&mut feed, describe(&pids(501, "a"), Some("lab"), 503), 50);
        assert_eq!(feed.len(), 4);
        // Exits never merge, and the cap holds.
        for n in 0..60 {
            let exit = ContainerEvent::Exited {
                id: "a".into(),
                code: 0,
            };
            push(&mut feed, describe(&exit, Some("lab"), 600 + n), 50);
        }
        assert_eq!(feed.len(), 50);
    }

    #[test]
    fn exits_say_their_code_and_signal() {
        let e = |code| {
            describe(
                &ContainerEvent::Exited {
                    id: "x".into(),
                    code,
                },
                Some("box"),
                0,
            )
        };
        assert_eq!(e(0).text, "box exited with code 0");
        assert_eq!(e(1).text, "box exited with code 1");
        assert_eq!(e(137).text, "box exited with code 137 (killed by SIGKILL)");
        assert_eq!(e(130).text, "box exited with code 130 (killed by SIGINT)");
        assert_eq!(e(137).severity, Severity::Bad);
        assert_eq!(signal_name(40), "signal 40");
    }

    #[test]
    fn lifecycle_sentences_use_short_ids() {
        let c = describe(
            &ContainerEvent::Created {
                id: "0123456789abcdef0123".into(),
            },
            None,
            0,
        );
        assert_eq!(c.text, "0123456789ab started");
        let r = describe(&ContainerEvent::Removed { id: "x".into() }, Some("db"), 0);
        assert_eq!(r.text, "db was removed");
    }

    #[test]
    fn events_messages_decode() {
        let m = decode_events_message(
            r#"{"kind":"event","at_ms":7,"event":{"type":"pids_limit","id":"c1","count":2,"limit":64}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            Incoming::Event {
                event: ContainerEvent::PidsLimit {
                    id: "c1".into(),
                    count: 2,
                    limit: Some(64)
                },
                at_ms: 7
            }
        );
        let stats = serde_json::to_string(&EventsMessage::Stats {
            id: "c1".into(),
            stats: Stats {
                pids_current: 4,
                ..Stats::default()
            },
        })
        .unwrap();
        match decode_events_message(&stats).unwrap() {
            Incoming::Stats { id, stats } => {
                assert_eq!((id.as_str(), stats.pids_current), ("c1", 4))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_events_message(r#"{"kind":"hello","version":2}"#).unwrap(),
            Incoming::Unknown
        );
        assert!(decode_events_message("{not json").is_err());
    }
}
