//! `ProducesTickets` with keys from the shared key ring.
//!
//! Ticket format (all lengths in bytes):
//!
//! ```text
//! | key name 16 | nonce 12 | AES-256-GCM ciphertext of the session | tag 16 |
//! ```
//!
//! The key name (public) selects the ring key and is authenticated as
//! associated data. The AEAD key is
//! HMAC-SHA256(hmac_key, label || SHA-256(context id) || aes_key): tickets of
//! one context never decrypt in another, and the AES key OpenSSL uses in CBC
//! mode is never used raw in GCM. Nonces are random: safe for far more
//! tickets than one key period ever sees (2^32 per key).

use crate::keyring::{KeyRing, RotationPolicy, TicketKey};
use crate::Cache;
use crypto::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use crypto::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroize;
// aws-lc-rs has ring's API; with both features on, ring is used.
#[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
use aws_lc_rs as crypto;
#[cfg(feature = "ring")]
use ring as crypto;
use std::fmt;
use std::sync::Arc;

const NAME_LEN: usize = 16;
const TAG_LEN: usize = 16;
const LABEL: &[u8] = b"scsp rustls ticket aead v1";

/// Stateless ticket encryption shared by every process on the segment.
///
/// Keys rotate by [`RotationPolicy`]; a ticket decrypts in any process until
/// its key retires (`period + lifetime` after the key starts encrypting), after
/// which the key is wiped and the ticket gives a full handshake.
pub struct TicketKeys {
    ring: KeyRing,
    context: [u8; 32],
    lifetime: u32,
    rng: SystemRandom,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// Tickets under the key ring of `cache`'s segment.
    pub fn new(cache: Arc<Cache>, policy: RotationPolicy) -> crate::Result<Arc<Self>> {
        Ok(Self::from_ring(KeyRing::new(cache, policy)?, b""))
    }

    /// As [`TicketKeys::new`], but tickets only decrypt under the same
    /// `context_id`: give each server configuration sharing the segment its
    /// own (as with [`super::SessionStore::new`]), so one never resumes
    /// another's tickets.
    pub fn for_context(
        cache: Arc<Cache>,
        policy: RotationPolicy,
        context_id: &[u8],
    ) -> crate::Result<Arc<Self>> {
        Ok(Self::from_ring(KeyRing::new(cache, policy)?, context_id))
    }

    /// As [`TicketKeys::for_context`] with another clock (unix seconds), so
    /// tests can rotate keys without waiting hours.
    pub fn with_clock(
        cache: Arc<Cache>,
        policy: RotationPolicy,
        context_id: &[u8],
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> crate::Result<Arc<Self>> {
        let ring = KeyRing::with_clock(cache, policy, clock)?;
        Ok(Self::from_ring(ring, context_id))
    }

    fn from_ring(ring: KeyRing, context_id: &[u8]) -> Arc<Self> {
        let lifetime = ring.policy().lifetime.as_secs().min(u32::MAX as u64) as u32;
        let mut context = [0u8; 32];
        context
            .copy_from_slice(crypto::digest::digest(&crypto::digest::SHA256, context_id).as_ref());
        Arc::new(TicketKeys {
            ring,
            context,
            lifetime,
            rng: SystemRandom::new(),
        })
    }

    /// The key ring underneath.
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }
}

/// The AEAD key of a ring key for one context (SHA-256 of the context id).
fn aead_key(k: &TicketKey, context: &[u8; 32]) -> Option<LessSafeKey> {
    let mac = crypto::hmac::Key::new(crypto::hmac::HMAC_SHA256, &k.hmac_key);
    let mut ctx = crypto::hmac::Context::with_key(&mac);
    ctx.update(LABEL);
    ctx.update(context);
    ctx.update(&k.aes_key);
    let tag = ctx.sign();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&tag.as_ref()[..32]);
    let key = UnboundKey::new(&AES_256_GCM, &bytes).ok();
    bytes.zeroize();
    key.map(LessSafeKey::new)
}

impl ::rustls::server::ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let k = self.ring.current()?;
        let key = aead_key(&k, &self.context)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&k.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        // Sealed in place: the only copy of the session made here is
        // encrypted, or wiped if sealing fails.
        let sealed = key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&k.name),
            &mut out[NAME_LEN + NONCE_LEN..],
        );
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Some(out)
            }
            Err(_) => {
                out.zeroize();
                None
            }
        }
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let name: [u8; NAME_LEN] = name.try_into().ok()?;
        // Unknown, retired or forged names find nothing.
        let k = self.ring.find(&name)?;
        let key = aead_key(&k, &self.context)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let n = key
            .open_in_place(nonce, Aad::from(&name), &mut buf)
            .ok()?
            .len();
        buf.truncate(n);
        Some(buf)
    }
}
