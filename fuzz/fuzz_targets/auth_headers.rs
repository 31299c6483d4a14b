//! `Authorization`, `Cookie`, `Origin` and `Host`, as a client sends them
//! (input: `name: value` lines).
//! Properties: a token found is a piece of a header the client sent (a
//! bearer token trimmed, a cookie value without `;`); without an allowlist
//! only the request's own host is an allowed origin, with one only its
//! entries are.
#![no_main]

use backend::fuzzing::{credentials, headers, origin_allowed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines: Vec<(&str, &[u8])> = data
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let at = line.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&line[..at]).ok()?;
            let value = &line[at + 1..];
            Some((name.trim(), value.strip_prefix(b" ").unwrap_or(value)))
        })
        .collect();
    let map = headers(lines.iter().copied());
    let (bearer, cookie) = credentials(&map);
    let sent = |name: &str| -> Vec<&str> {
        map.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    if let Some(t) = bearer {
        assert_eq!(t, t.trim());
        assert!(sent("authorization").iter().any(|v| v.contains(t)));
    }
    if let Some(c) = cookie {
        assert!(!c.contains(';'));
        assert!(sent("cookie").iter().any(|v| v.contains(c)));
    }
    let host = map.get("host").and_then(|h| h.to_str().ok());
    for origin in sent("origin") {
        if origin_allowed(origin, host, &[]) {
            let h = host.expect("no host, no same-origin");
            let bare = origin.split_once("://").map(|(_, rest)| rest);
            assert!(origin.starts_with("http://") || origin.starts_with("https://"));
            assert!(bare.is_some_and(|b| b.eq_ignore_ascii_case(h)));
        }
        let list = ["https://play.example.org".to_string()];
        if origin_allowed(origin, host, &list) {
            assert!(origin.eq_ignore_ascii_case(&list[0]));
        }
    }
});
