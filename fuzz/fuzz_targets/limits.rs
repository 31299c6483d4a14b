//! Limits validation on its own, over every value (not only what JSON
//! spells): a value given is kept or refused, never clamped; a missing one
//! gets the default; a refusal names the limit that is out of range.
#![no_main]

use backend::config::ContainerLimits;
use backend::fuzzing::resolve_limits;
use backend::limits::{maxima, minima};
use libfuzzer_sys::fuzz_target;
use protocol::Limits;

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fuzz_target!(|data: &[u8]| {
    let mut d = data;
    let Some([mask]) = take::<1>(&mut d) else {
        return;
    };
    let mut next64 = |on: bool| {
        on.then(|| take::<8>(&mut d).map(u64::from_le_bytes))
            .flatten()
    };
    let memory = next64(mask & 1 != 0);
    let disk = next64(mask & 2 != 0);
    let cpu = next64(mask & 4 != 0).map(|v| v as u32);
    let pids = next64(mask & 8 != 0).map(|v| v as u32);
    let asked = Limits {
        memory_bytes: memory,
        cpu_millis: cpu,
        pids,
        disk_bytes: disk,
    };
    let operator = ContainerLimits::default();
    let (lo, hi) = (minima(), maxima(&operator));
    let out_of_range = |v: Option<u64>, lo: Option<u64>, hi: Option<u64>| matches!((v, lo, hi), (Some(v), Some(lo), Some(hi)) if v < lo || v > hi);
    let wide = |v: Option<u32>| v.map(u64::from);
    let bad = [
        (
            "memory_bytes",
            out_of_range(memory, lo.memory_bytes, hi.memory_bytes),
        ),
        (
            "cpu_millis",
            out_of_range(wide(cpu), wide(lo.cpu_millis), wide(hi.cpu_millis)),
        ),
        (
            "pids",
            out_of_range(wide(pids), wide(lo.pids), wide(hi.pids)),
        ),
        (
            "disk_bytes",
            out_of_range(disk, lo.disk_bytes, hi.disk_bytes),
        ),
    ];
    match resolve_limits(Some(asked), &operator) {
        Ok(l) => {
            assert!(
                bad.iter().all(|(_, b)| !b),
                "accepted an out-of-range limit"
            );
            assert_eq!(
                l.memory_bytes,
                Some(memory.unwrap_or(operator.default_memory_bytes))
            );
            assert_eq!(
                l.disk_bytes,
                Some(disk.unwrap_or(operator.default_disk_bytes))
            );
            assert_eq!(
                l.cpu_millis,
                Some(cpu.unwrap_or(operator.default_cpu_millis))
            );
            assert_eq!(l.pids, Some(pids.unwrap_or(operator.default_pids)));
        }
        Err(e) => {
            assert_eq!(e.status().as_u16(), 422);
            let named = e.body().error.limit.expect("a refusal names its limit");
            assert!(
                bad.iter().any(|(n, b)| *b && *n == named),
                "refused {named}, which is in range"
            );
        }
    }
});
