//! One table operation in a loop, for profilers: `perf stat`, `perf record`,
//! `valgrind --tool=callgrind`. Wall-clock medians on a shared 2-core machine
//! are noisy; instruction counts of this one process are not.
//!
//! ```text
//! cargo build --release --example hotpath
//! perf stat -e task-clock target/release/examples/hotpath get-hit 1024 2000000
//! perf stat -e task-clock target/release/examples/hotpath get-hit 1024 2000000 mutex-hashmap
//! ```
//! Subtract a run with 0 ops (segment creation and fill) and divide by the
//! op count. The same keys, visiting order and stores as `cargo bench --bench
//! table` (`scsp_lab::baselines`); the last argument picks the store.

use scsp_lab::baselines::{keys, shuffle, Store, TempSegment, IMPLS};

fn main() {
    // Sessions stored first: 10 000 as in the benches; `HOTPATH_ENTRIES=1000`
    // keeps the working set inside L2.
    let n: usize =
        std::env::var("HOTPATH_ENTRIES").map_or(10_000, |v| v.parse().expect("HOTPATH_ENTRIES"));
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: hotpath get-hit|get-miss|put|take VALUE_BYTES OPS [scsp|locked-shm|mutex-hashmap|rustls-memory|redis-loopback]";
    let (op, size, ops, imp) = match &args[1..] {
        [op, size, ops, rest @ ..] if rest.len() <= 1 => (
            op.as_str(),
            size.parse::<usize>().expect(usage),
            ops.parse::<usize>().expect(usage),
            rest.first().map_or("scsp", |s| s.as_str()),
        ),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    assert!(IMPLS.contains(&imp), "{usage}");
    let seg = TempSegment::new("hotpath");
    let store = Store::new(imp, seg.path(), n, size).expect("baseline store");
    let present = keys(1, n);
    let value = vec![0x5au8; size];
    for k in &present {
        store.put(k, &value);
    }
    let (present, absent) = (shuffle(&present), shuffle(&keys(2, n)));
    let mut buf = vec![0u8; size.max(1)];
    let mut hits = 0usize;
    if std::env::var_os("HOTPATH_DEPENDENT").is_some() && op == "get-hit" {
        // Each lookup's key depends on the last byte of the previous value,
        // so no two lookups overlap: per-op latency, as in a server where
        // lookups are far apart.
        let mut k = 0usize;
        for _ in 0..ops {
            let last = match &store {
                Store::Rustls(r) => {
                    use rustls::server::StoresServerSessions;
                    r.get(&present[k]).map_or(0, |v| v[v.len() - 1])
                }
                _ => {
                    store.get(&present[k], &mut buf);
                    buf[size - 1]
                }
            };
            // A byte shifted right by 8 is 0, but only after it arrived.
            k += 1 + (std::hint::black_box(usize::from(last)) >> 8);
            if k == n {
                k = 0;
            }
        }
        return;
    }
    for i in 0..ops {
        let k = i % n;
        match op {
            "get-hit" => hits += store.get(&present[k], &mut buf) as usize,
            "get-miss" => hits += store.get(&absent[k], &mut buf) as usize,
            "put" => store.put(&present[k], &value),
            "take" => {
                if k == 0 && i > 0 {
                    for p in &present {
                        store.put(p, &value);
                    }
                }
                hits += store.take(&present[k], &mut buf) as usize;
            }
            _ => panic!("{usage}"),
        }
    }
    std::hint::black_box(hits);
}
