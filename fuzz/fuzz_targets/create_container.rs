//! The JSON body of `POST /api/v1/containers`, decoded, checked and its
//! limits resolved exactly as the handler does.
//! Properties: a refusal is a client error (400/422), never a 500; an
//! accepted body has checked names, command and environment, limits within
//! the operator's range, and survives a re-encode unchanged.
#![no_main]

use backend::config::ContainerLimits;
use backend::fuzzing::create_container;
use backend::limits::{maxima, minima};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let operator = ContainerLimits::default();
    match create_container(data, &operator) {
        Ok((req, limits)) => {
            assert!(!req.image.is_empty() && req.image.len() <= 128);
            for name in req.name.iter().chain(req.hostname.iter()) {
                assert!(!name.is_empty() && name.len() <= 40, "{name:?}");
            }
            if let Some(cmd) = &req.cmd {
                assert!(!cmd.is_empty() && cmd.len() <= 64 && !cmd[0].is_empty());
                assert!(cmd.iter().all(|a| !a.contains('\0') && a.len() <= 4096));
            }
            if let Some(env) = &req.env {
                assert!(env.len() <= 64);
                assert!(env.keys().all(|k| !k.is_empty() && !k.contains('=')));
            }
            let (lo, hi) = (minima(), maxima(&operator));
            let within = |v: Option<u64>, lo: Option<u64>, hi: Option<u64>| matches!((v, lo, hi), (Some(v), Some(lo), Some(hi)) if lo <= v && v <= hi);
            assert!(within(
                limits.memory_bytes,
                lo.memory_bytes,
                hi.memory_bytes
            ));
            assert!(within(limits.disk_bytes, lo.disk_bytes, hi.disk_bytes));
            let wide = |v: Option<u32>| v.map(u64::from);
            assert!(within(
                wide(limits.cpu_millis),
                wide(lo.cpu_millis),
                wide(hi.cpu_millis)
            ));
            assert!(within(wide(limits.pids), wide(lo.pids), wide(hi.pids)));
            let again = serde_json::to_vec(&req).expect("our types serialize");
            let (req2, limits2) = create_container(&again, &operator).expect("re-encoded body");
            assert_eq!((req2, limits2), (req, limits), "decode(encode(x)) == x");
        }
        Err(e) => {
            let status = e.status().as_u16();
            assert!(status == 400 || status == 422, "{status}: {e}");
        }
    }
});
