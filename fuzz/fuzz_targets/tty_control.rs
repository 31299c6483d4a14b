//! The terminal socket's text frames (`{"type":"resize",...}`).
//! Properties: a frame decodes to a message or closes with 1003/1007, never
//! anything else; a decoded resize clamps into the allowed size; decoding the
//! message's own encoding gives the message back.
#![no_main]

use backend::fuzzing::tty_control;
use libfuzzer_sys::fuzz_target;
use protocol::tty::{clamp_size, TtyClientMessage, MAX_COLS, MAX_ROWS};

fuzz_target!(|data: &[u8]| {
    // The WebSocket layer refuses text frames that are not UTF-8 (1007).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tty_control(text) {
        Ok(msg) => {
            let TtyClientMessage::Resize { cols, rows } = msg.clone();
            let (c, r) = clamp_size(cols, rows);
            assert!((1..=MAX_COLS).contains(&c) && (1..=MAX_ROWS).contains(&r));
            assert_eq!(u32::from(c), cols.clamp(1, MAX_COLS.into()));
            assert_eq!(u32::from(r), rows.clamp(1, MAX_ROWS.into()));
            let again = serde_json::to_string(&msg).expect("our messages serialize");
            assert_eq!(tty_control(&again), Ok(msg), "decode(encode(x)) == x");
        }
        Err(code) => assert!(code == 1003 || code == 1007, "close code {code}"),
    }
});
