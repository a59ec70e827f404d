//! How many of the newest sessions does a table of sets keep, against a
//! log of the same capacity? A model, no shared memory: what sizing a
//! table with sessions in place would need (docs/perf-scaling.md,
//! "Sessions beyond the caches").
//!
//! A log of C entries keeps exactly the newest C sessions. A table of C
//! slots in sets of W ways, where a put evicts the oldest way of its set
//! (or, with two candidate sets, of the set whose oldest way is older),
//! loses some of the newest sessions whenever a set fills before the
//! others. This puts 8 C distinct keys in order (a TLS server's stream of
//! new sessions) and reports, for the newest K = load x C of them, the
//! share no longer in the table.
//!
//! ```text
//! cargo run --release -p scsp-lab --example set_retention [SLOTS]
//! ```

/// splitmix64: the key hash (any good 64-bit hash gives the same figures).
fn hash(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sets of `ways` slots, each holding the sequence number of the session
/// in it plus one (0: empty).
struct Sets {
    ways: usize,
    choices: usize,
    slots: Vec<u64>,
}

impl Sets {
    fn new(slots: usize, ways: usize, choices: usize) -> Sets {
        Sets {
            ways,
            choices,
            slots: vec![0; slots],
        }
    }

    fn sets(&self) -> usize {
        self.slots.len() / self.ways
    }

    fn set(&self, seq: u64, choice: usize) -> usize {
        let h = hash(seq);
        let h = if choice == 0 { h } else { h.rotate_left(32) };
        (h % self.sets() as u64) as usize
    }

    fn ways_of(&self, set: usize) -> &[u64] {
        &self.slots[set * self.ways..(set + 1) * self.ways]
    }

    /// Put session `seq`: into an empty way of a candidate set if there is
    /// one, else over the oldest way of the candidate whose oldest is older.
    fn put(&mut self, seq: u64) {
        let (mut best, mut best_at) = (u64::MAX, 0);
        for c in 0..self.choices {
            let set = self.set(seq, c);
            for (w, &v) in self.ways_of(set).iter().enumerate() {
                if v < best {
                    (best, best_at) = (v, set * self.ways + w);
                }
            }
        }
        self.slots[best_at] = seq + 1;
    }

    fn holds(&self, seq: u64) -> bool {
        (0..self.choices).any(|c| self.ways_of(self.set(seq, c)).contains(&(seq + 1)))
    }
}

fn main() {
    let slots: usize = std::env::args()
        .nth(1)
        .map_or(1 << 18, |a| a.parse().expect("SLOTS: a number of slots"));
    let loads = [0.25, 0.5, 0.75, 0.9, 1.0];
    println!("{slots} slots; share of the newest load x {slots} sessions lost (a log of {slots} entries loses none up to load 1)");
    print!("{:<22}", "design");
    for l in loads {
        print!("{:>10}", format!("load {l}"));
    }
    println!();
    for (ways, choices) in [(8, 1), (12, 1), (15, 1), (16, 1), (32, 1), (8, 2), (16, 2)] {
        let mut t = Sets::new(slots - slots % ways, ways, choices);
        let n = 8 * slots as u64;
        for seq in 0..n {
            t.put(seq);
        }
        print!("{:<22}", format!("{ways}-way, {choices} set(s)"));
        for l in loads {
            let k = (l * slots as f64) as u64;
            let lost = (n - k..n).filter(|&s| !t.holds(s)).count();
            print!("{:>9.3}%", 100.0 * lost as f64 / k as f64);
        }
        println!();
    }
}
