//! One ticket key, and its encoding in a ring slot.

use std::fmt;
use zeroize::Zeroize;

const CHECK_SEED: u64 = 0x5c5b_6b65_7972_696e;

/// One ticket key. Secret: its `Debug` output shows only the name, and its
/// bytes are zeroed when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey {
    /// Key name, sent in clear at the front of every ticket to select the key.
    pub name: [u8; 16],
    /// AES-256 key (OpenSSL: CBC; rustls: input to the AEAD key).
    pub aes_key: [u8; 32],
    /// HMAC-SHA256 key (OpenSSL: ticket MAC; rustls: input to the AEAD key).
    pub hmac_key: [u8; 32],
    /// Start of the period in which this key encrypts (unix seconds). A key
    /// is made up to one period before this time.
    pub created: u64,
    /// Host that made the key.
    pub origin: u32,
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKey")
            .field("name", &self.name)
            .field("created", &self.created)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Drop for TicketKey {
    fn drop(&mut self) {
        self.aes_key.zeroize();
        self.hmac_key.zeroize();
    }
}

/// A fresh random key.
pub(super) fn new_key(created: u64, origin: u32) -> Option<TicketKey> {
    let mut k = TicketKey {
        name: [0; 16],
        aes_key: [0; 32],
        hmac_key: [0; 32],
        created,
        origin,
    };
    getrandom::getrandom(&mut k.name).ok()?;
    getrandom::getrandom(&mut k.aes_key).ok()?;
    getrandom::getrandom(&mut k.hmac_key).ok()?;
    Some(k)
}

pub(super) fn checksum(words: &[u64]) -> u64 {
    let mut bytes = [0u8; 12 * 8];
    for (c, w) in bytes.chunks_exact_mut(8).zip(words) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, CHECK_SEED);
    bytes.zeroize();
    h
}

pub(super) fn key_to_words(k: &TicketKey) -> [u64; 13] {
    let mut d = [0u64; 13];
    d[0] = k.created;
    d[1] = k.origin as u64;
    let mut put = |at: usize, bytes: &[u8]| {
        for (j, c) in bytes.chunks_exact(8).enumerate() {
            d[at + j] = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        }
    };
    put(2, &k.name);
    put(4, &k.aes_key);
    put(8, &k.hmac_key);
    d[12] = checksum(&d[..12]);
    d
}

pub(super) fn key_from_words(d: &[u64; 13]) -> TicketKey {
    let mut k = TicketKey {
        name: [0; 16],
        aes_key: [0; 32],
        hmac_key: [0; 32],
        created: d[0],
        origin: d[1] as u32,
    };
    let get = |out: &mut [u8], at: usize| {
        for (j, c) in out.chunks_exact_mut(8).enumerate() {
            c.copy_from_slice(&d[at + j].to_le_bytes());
        }
    };
    get(&mut k.name, 2);
    get(&mut k.aes_key, 4);
    get(&mut k.hmac_key, 8);
    k
}

pub(super) fn wipe_words(d: &mut [u64]) {
    d.zeroize();
}
