//! The terminal sockets' query strings: `…/tty?since=N&exec=N` and
//! `…/exec?cmd=…&cols=…&rows=…` (the same bytes go to both).
//! Properties: refusals are 400s; an exec always has 1 to 64 non-empty
//! arguments without NUL and a size clamped into the allowed range.
#![no_main]

use backend::fuzzing::{attach_query, exec_query};
use libfuzzer_sys::fuzz_target;
use protocol::tty::{MAX_COLS, MAX_ROWS};

fuzz_target!(|data: &[u8]| {
    // A request target is text; axum hands the raw query over as a String.
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let query = Some(q.to_string());
    if let Err(e) = attach_query(query.clone()) {
        assert_eq!(e.status().as_u16(), 400, "{e}");
    }
    match exec_query(query) {
        Ok((cmd, cols, rows)) => {
            assert!((1..=64).contains(&cmd.len()), "{} args", cmd.len());
            assert!(cmd
                .iter()
                .all(|a| !a.is_empty() && !a.contains('\0') && a.len() <= 4096));
            assert!((1..=MAX_COLS).contains(&cols) && (1..=MAX_ROWS).contains(&rows));
        }
        Err(e) => assert_eq!(e.status().as_u16(), 400, "{e}"),
    }
});
