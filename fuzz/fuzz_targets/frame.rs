//! Fuzz the bridge's frame decoder: any byte stream, fed in arbitrary
//! chunks, must give frames or an error — never a panic, hang or huge
//! allocation. Run: `cargo +nightly fuzz run frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scsp_bridge::wire::{decode, FrameReader};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    // First byte picks the chunk size the stream arrives in.
    let chunk = data.first().map(|b| *b as usize % 64 + 1).unwrap_or(1);
    let mut r = FrameReader::new();
    for piece in data.chunks(chunk) {
        r.push(piece);
        loop {
            match r.next_frame() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
