//! How many live sessions the lossy index drops before the log wraps: a
//! 64 MiB segment filled with three logs' worth of sessions, as on a busy
//! server, then the newest 90 % of a log's worth (all still in the log)
//! looked up. Each one missing was pushed out of a full 8-slot bucket and
//! would cost a full handshake (docs/operations.md, "Sizing a segment").
//!
//! ```text
//! cargo run --release --example index_loss [TYPICAL_VALUE_BYTES]
//! ```

use scsp::segment::layout::{entry_bytes, TYPICAL_KEY};
use scsp::{Cache, Config, Lookup};

/// Value sizes tried: rustls and OpenSSL sessions, and the default typical.
const VALUES: [usize; 5] = [100, 150, 176, 250, 300];
const LOG: u64 = 64 << 20;

fn main() {
    let typical_value: u32 = std::env::args()
        .nth(1)
        .map_or(scsp::config::DEFAULT_TYPICAL_VALUE, |v| {
            v.parse().expect("usage: index_loss [TYPICAL_VALUE_BYTES]")
        });
    let seg = scsp_lab::baselines::TempSegment::new("index-loss");
    for value_len in VALUES {
        let cfg = Config {
            size: LOG,
            typical_value,
            ..Config::default()
        };
        let _ = std::fs::remove_file(seg.path());
        let cache = Cache::create(seg.path(), &cfg).expect("segment");
        let per_log = LOG / entry_bytes(TYPICAL_KEY, value_len);
        let key = |i: u64| {
            let mut k = [0u8; TYPICAL_KEY];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k
        };
        let value = vec![7u8; value_len];
        for i in 0..3 * per_log {
            assert_eq!(cache.put(&key(i), &value, 3600), scsp::Stored::Ok);
        }
        let newest = per_log * 9 / 10;
        let mut buf = vec![0u8; value_len];
        let lost = (3 * per_log - newest..3 * per_log)
            .filter(|&i| cache.get(&key(i), &mut buf) != Lookup::Hit(value_len))
            .count();
        println!(
            "typical value {typical_value} B ({} index slots), sessions of {value_len} B: \
             {lost} of the newest {newest} lost ({:.3} %)",
            cache.stats().index_slots,
            100.0 * lost as f64 / newest as f64
        );
    }
}
