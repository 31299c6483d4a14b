//! A bounded replay buffer of terminal output, addressed by sequence numbers
//! (byte offsets since the process started). A client that reconnects with the
//! last sequence number it saw gets exactly what it missed, or a gap marker if
//! that output already fell out of the buffer.

use std::collections::VecDeque;

pub struct Ring {
    buf: VecDeque<u8>,
    /// Sequence number of `buf[0]`.
    start: u64,
    cap: usize,
}

/// What a client asking for output since some sequence number gets.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    /// Output in `[gap.0, gap.1)` is gone.
    pub gap: Option<(u64, u64)>,
    /// Sequence number of the first byte of `data`.
    pub seq: u64,
    pub data: Vec<u8>,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            buf: VecDeque::new(),
            start: 0,
            cap: cap.max(1),
        }
    }

    /// A ring holding `data`, whose first byte has sequence number `start`
    /// (output kept at an exit, read back).
    pub fn kept(start: u64, data: Vec<u8>) -> Ring {
        Ring {
            cap: data.len().max(1),
            buf: data.into(),
            start,
        }
    }

    /// Everything it holds: (sequence number of the first byte, the bytes).
    pub fn contents(&self) -> (u64, Vec<u8>) {
        let (a, b) = self.buf.as_slices();
        (self.start, [a, b].concat())
    }

    /// Sequence number the next byte will get.
    pub fn next_seq(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    pub fn push(&mut self, data: &[u8]) {
        let data = if data.len() > self.cap {
            let skip = data.len() - self.cap;
            self.start += (self.buf.len() + skip) as u64;
            self.buf.clear();
            &data[skip..]
        } else {
            data
        };
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.start += overflow as u64;
        }
        self.buf.extend(data);
    }

    /// Everything from `since` on. A `since` from the future yields nothing.
    pub fn since(&self, since: u64) -> Replay {
        let next = self.next_seq();
        if since >= next {
            return Replay {
                gap: None,
                seq: next,
                data: Vec::new(),
            };
        }
        let (gap, from) = if since < self.start {
            (Some((since, self.start)), self.start)
        } else {
            (None, since)
        };
        let skip = (from - self.start) as usize;
        Replay {
            gap,
            seq: from,
            data: self.buf.iter().skip(skip).copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_exactly_what_was_missed() {
        let mut r = Ring::new(8);
        r.push(b"hello");
        assert_eq!(
            r.since(2),
            Replay {
                gap: None,
                seq: 2,
                data: b"llo".to_vec()
            }
        );
        assert_eq!(r.since(5).data, b"");
        assert_eq!(r.since(99).seq, 5);
    }

    #[test]
    fn kept_output_replays_like_the_ring_it_came_from() {
        let mut r = Ring::new(4);
        r.push(b"abcdef");
        let (start, data) = r.contents();
        assert_eq!((start, data.as_slice()), (2, &b"cdef"[..]));
        let kept = Ring::kept(start, data);
        assert_eq!(kept.since(0), r.since(0));
        assert_eq!(kept.since(4), r.since(4));
        assert_eq!(kept.next_seq(), 6);
    }

    #[test]
    fn overflow_reports_the_gap() {
        let mut r = Ring::new(4);
        r.push(b"abcdef");
        r.push(b"gh");
        assert_eq!(r.next_seq(), 8);
        let rep = r.since(1);
        assert_eq!(rep.gap, Some((1, 4)));
        assert_eq!(rep.seq, 4);
        assert_eq!(rep.data, b"efgh");
    }
}
