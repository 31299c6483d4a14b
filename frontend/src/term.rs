//! Terminal protocol logic, free of the browser: where to resume a dropped
//! stream, how much output xterm.js may hold, what a control frame says.

use protocol::tty::TtyClientMessage;
use std::collections::VecDeque;

/// Position in the terminal's output stream (byte offsets since the process
/// started, as the server's replay ring counts them). The page first attaches
/// with `?since=0`, which replays what the ring still holds; it then counts the
/// bytes it receives, so a reconnect asks for exactly what it missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayCursor {
    next: u64,
}

impl ReplayCursor {
    pub fn since(&self) -> u64 {
        self.next
    }
    /// Bytes arrived in a binary frame.
    pub fn on_bytes(&mut self, n: usize) {
        self.next += n as u64;
    }
    /// The server says where its next bytes start.
    pub fn on_seq(&mut self, seq: u64) {
        self.next = seq;
    }
    /// The server says output `from..to` is gone (its ring overflowed): the
    /// next byte it sends is byte `to`.
    pub fn on_gap(&mut self, to_seq: u64) {
        self.next = self.next.max(to_seq);
    }
}

/// A control message from the server (text frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Exit {
        code: i32,
    },
    Gap {
        from_seq: u64,
        to_seq: u64,
    },
    /// The next binary frame starts at output byte `seq`.
    Seq {
        seq: u64,
    },
    /// First message: which terminal this is (`Some(n)` for exec session n,
    /// which a dropped socket re-attaches to with `tty?exec=n`).
    Attached {
        exec_id: Option<u32>,
    },
    /// The server gave up on this socket (it closes with 1011 next).
    Error {
        message: String,
    },
    /// A message this page does not act on: ignored.
    Unknown,
}

/// Decode a text frame. Unknown or broken messages are ignored rather than
/// fatal, so a newer server never breaks an older page's terminal.
pub fn parse_control(text: &str) -> Control {
    use protocol::tty::TtyServerMessage;
    match serde_json::from_str::<TtyServerMessage>(text) {
        Ok(TtyServerMessage::Exit { code }) => Control::Exit { code },
        Ok(TtyServerMessage::Gap { from_seq, to_seq }) => Control::Gap { from_seq, to_seq },
        Ok(TtyServerMessage::Seq { seq }) => Control::Seq { seq },
        Ok(TtyServerMessage::Attached { exec_id, .. }) => Control::Attached { exec_id },
        Ok(TtyServerMessage::Error { message }) => Control::Error { message },
        Err(_) => Control::Unknown,
    }
}

/// The text frame that tells the server the terminal's size.
pub fn resize_message(cols: u32, rows: u32) -> String {
    let (cols, rows) = protocol::tty::clamp_size(cols, rows);
    serde_json::to_string(&TtyClientMessage::Resize {
        cols: cols as u32,
        rows: rows as u32,
    })
    .expect("a resize message always serializes")
}

/// The line shown where output was lost (`gap`: the replay ring overflowed
/// while the page was away).
pub fn gap_notice(from_seq: u64, to_seq: u64) -> String {
    format!(
        "\r\n\x1b[0m\x1b[33m[glassbox: {} of output was lost while disconnected]\x1b[0m\r\n",
        crate::format::bytes(to_seq.saturating_sub(from_seq))
    )
}

/// Something that has a length in bytes (a JS `Uint8Array` in the page, a
/// `Vec<u8>` in tests).
pub trait Chunk {
    fn byte_len(&self) -> usize;
}

impl Chunk for Vec<u8> {
    fn byte_len(&self) -> usize {
        self.len()
    }
}

/// What to hand to xterm.js next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write<C> {
    Data(C),
    /// A line saying that output was skipped.
    Notice(String),
}

/// Bytes handed to xterm.js but not yet parsed by it may reach `HIGH`; then
/// output waits in a queue until xterm's write callbacks bring it under `LOW`.
pub const HIGH_WATERMARK: usize = 512 * 1024;
pub const LOW_WATERMARK: usize = 128 * 1024;
/// The queue never holds more than this: past it, the oldest output is
/// skipped (a `yes` flood shows its latest lines, and the tab stays alive).
pub const QUEUE_CAP: usize = 4 * 1024 * 1024;

/// Flow control between the socket and xterm.js, driven by xterm's write
/// callbacks. Memory stays bounded however fast the container writes.
#[derive(Debug)]
pub struct Flow<C> {
    queue: VecDeque<C>,
    queued: usize,
    in_flight: usize,
    skipped: u64,
    high: usize,
    low: usize,
    cap: usize,
}

impl<C: Chunk> Default for Flow<C> {
    fn default() -> Self {
        Self::new(HIGH_WATERMARK, LOW_WATERMARK, QUEUE_CAP)
    }
}

impl<C: Chunk> Flow<C> {
    pub fn new(high: usize, low: usize, cap: usize) -> Self {
        Flow {
            queue: VecDeque::new(),
            queued: 0,
            in_flight: 0,
            skipped: 0,
            high,
            low: low.min(high),
            cap,
        }
    }

    /// Output arrived. Returns what to write to xterm now.
    pub fn incoming(&mut self, chunk: C) -> Vec<Write<C>> {
        let n = chunk.byte_len();
        if self.queue.is_empty() && self.in_flight < self.high {
            self.in_flight += n;
            return vec![Write::Data(chunk)];
        }
        self.queued += n;
        self.queue.push_back(chunk);
        while self.queued > self.cap {
            match self.queue.pop_front() {
                Some(old) => {
                    let len = old.byte_len();
                    self.queued -= len;
                    self.skipped += len as u64;
                }
                None => break,
            }
        }
        Vec::new()
    }

    /// xterm.js finished parsing `n` bytes (a write callback). Returns what to
    /// write next.
    pub fn written(&mut self, n: usize) -> Vec<Write<C>> {
        self.in_flight = self.in_flight.saturating_sub(n);
        let mut out = Vec::new();
        if self.in_flight > self.low {
            return out;
        }
        if self.skipped > 0 {
            out.push(Write::Notice(format!(
                "\r\n\x1b[0m\x1b[33m[glassbox: {} of output skipped to keep this page responsive]\x1b[0m\r\n",
                crate::format::bytes(self.skipped)
            )));
            self.skipped = 0;
        }
        while self.in_flight < self.high {
            let Some(chunk) = self.queue.pop_front() else {
                break;
            };
            let len = chunk.byte_len();
            self.queued -= len;
            self.in_flight += len;
            out.push(Write::Data(chunk));
        }
        out
    }

    /// Bytes waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Bytes handed to xterm.js and not yet parsed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Forget everything (the terminal was reset).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queued = 0;
        self.in_flight = 0;
        self.skipped = 0;
    }
}

/// Ctrl+Shift+C copies (plain Ctrl+C is the shell's interrupt).
pub fn is_copy_shortcut(key: &str, ctrl: bool, shift: bool, meta: bool) -> bool {
    (ctrl && shift && key.eq_ignore_ascii_case("c")) || (meta && key.eq_ignore_ascii_case("c"))
}

/// Ctrl+Shift+V pastes (plain Ctrl+V is the shell's literal-next).
pub fn is_paste_shortcut(key: &str, ctrl: bool, shift: bool, meta: bool) -> bool {
    (ctrl && shift && key.eq_ignore_ascii_case("v")) || (meta && key.eq_ignore_ascii_case("v"))
}

/// How long to wait before reconnect attempt `n` (0-based): quick at first,
/// then every few seconds.
pub fn backoff_ms(attempt: u32) -> u32 {
    (250u32 << attempt.min(5)).min(5_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn cursor_counts_bytes_and_skips_gaps() {
        let mut c = ReplayCursor::default();
        assert_eq!(c.since(), 0);
        c.on_gap(1000);
        c.on_bytes(24);
        assert_eq!(c.since(), 1024);
        c.on_gap(10);
        assert_eq!(c.since(), 1024, "a gap never moves the cursor back");
    }

    #[test]
    fn control_frames() {
        assert_eq!(
            parse_control(r#"{"type":"exit","code":130}"#),
            Control::Exit { code: 130 }
        );
        assert_eq!(
            parse_control(r#"{"type":"gap","from_seq":0,"to_seq":4096}"#),
            Control::Gap {
                from_seq: 0,
                to_seq: 4096
            }
        );
        assert_eq!(
            parse_control(r#"{"type":"attached","exec_id":2,"next_seq":10}"#),
            Control::Attached { exec_id: Some(2) }
        );
        assert_eq!(
            parse_control(r#"{"type":"error","message":"supervisor gone"}"#),
            Control::Error {
                message: "supervisor gone".into()
            }
        );
        assert_eq!(parse_control(r#"{"type":"hello"}"#), Control::Unknown);
        assert_eq!(parse_control("garbage"), Control::Unknown);
        assert_eq!(
            resize_message(120, 40),
            r#"{"type":"resize","cols":120,"rows":40}"#
        );
        assert_eq!(
            resize_message(0, 100_000),
            r#"{"type":"resize","cols":1,"rows":500}"#
        );
    }

    fn data(w: &[Write<Vec<u8>>]) -> usize {
        w.iter()
            .map(|w| match w {
                Write::Data(d) => d.len(),
                Write::Notice(_) => 0,
            })
            .sum()
    }

    #[test]
    fn flow_writes_until_the_high_watermark_then_queues() {
        let mut f: Flow<Vec<u8>> = Flow::new(100, 20, 1000);
        assert_eq!(data(&f.incoming(vec![0; 60])), 60);
        assert_eq!(
            data(&f.incoming(vec![0; 60])),
            60,
            "under HIGH: written at once"
        );
        assert_eq!(f.in_flight(), 120);
        assert!(f.incoming(vec![0; 10]).is_empty(), "over HIGH: queued");
        assert_eq!(f.queued(), 10);
        assert!(f.written(60).is_empty(), "still above LOW");
        let w = f.written(60);
        assert_eq!(data(&w), 10, "under LOW: the queue drains");
        assert_eq!((f.queued(), f.in_flight()), (0, 10));
    }

    #[test]
    fn flow_keeps_memory_bounded_and_says_what_it_skipped() {
        let mut f: Flow<Vec<u8>> = Flow::new(100, 20, 1000);
        f.incoming(vec![0; 100]);
        for _ in 0..1000 {
            assert!(f.incoming(vec![1; 100]).is_empty());
            assert!(f.queued() <= 1000);
        }
        let w = f.written(100);
        match &w[0] {
            Write::Notice(n) => assert!(n.contains("96.7 KiB of output skipped"), "{n}"),
            other => panic!("expected a notice first, got {other:?}"),
        }
        assert_eq!(data(&w), 100);
        // The notice is said once.
        let w = f.written(100);
        assert!(w.iter().all(|w| matches!(w, Write::Data(_))));
        f.clear();
        assert_eq!((f.queued(), f.in_flight()), (0, 0));
    }

    #[test]
    fn shortcuts_and_backoff() {
        assert!(is_copy_shortcut("C", true, true, false));
        assert!(
            !is_copy_shortcut("c", true, false, false),
            "Ctrl+C is SIGINT"
        );
        assert!(is_paste_shortcut("V", true, true, false));
        assert!(is_paste_shortcut("v", false, false, true));
        assert!(!is_paste_shortcut("v", true, false, false));
        assert_eq!(backoff_ms(0), 250);
        assert_eq!(backoff_ms(2), 1000);
        assert_eq!(backoff_ms(30), 5000);
    }
}
