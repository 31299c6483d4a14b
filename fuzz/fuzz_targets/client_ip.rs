//! `X-Forwarded-For` and who the client is (the key of the per-IP caps and
//! rate limits). Input: 1 byte of flags, the peer's IPv4 address, then
//! header values separated by newlines.
//! Properties: an untrusted peer is the client whatever it claims; from a
//! trusted proxy the client is the peer or an address the header named.
#![no_main]

use backend::fuzzing::{client_ip, headers};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, a, b, c, d], rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let peer = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let other: IpAddr = "10.0.0.2".parse().expect("address");
    let trusted: Vec<IpAddr> = match flags & 3 {
        0 => vec![],
        1 => vec![peer],
        2 => vec![peer, other],
        _ => vec![other],
    };
    let values: Vec<(&str, &[u8])> = rest
        .split(|b| *b == b'\n')
        .map(|v| ("x-forwarded-for", v))
        .collect();
    let map = headers(values);
    let ip = client_ip(peer, &map, &trusted);
    if !trusted.contains(&peer) {
        assert_eq!(ip, peer, "an untrusted peer named someone else");
        return;
    }
    let named: Vec<IpAddr> = map
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|e| e.trim().parse().ok())
        .collect();
    assert!(ip == peer || named.contains(&ip), "{ip} came from nowhere");
});
