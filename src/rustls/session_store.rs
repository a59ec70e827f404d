//! `StoresServerSessions` over the shared table.

use crate::segment::layout::MAX_KEY;
use crate::{Cache, Stored};
use std::fmt;
use std::sync::Arc;

/// Context ids up to this length are used as they are; longer ones are
/// replaced by their SHA-256.
const MAX_RAW_CONTEXT: usize = 64;
/// Default lifetime of a stored session: one day, the lifetime rustls
/// announces for TLS 1.3 stateful tickets.
pub const DEFAULT_TTL_SECS: u32 = 24 * 3600;

/// A rustls server session store shared by every process on the segment.
///
/// Keys are `tag || context || session id`, where the context id separates
/// server configurations sharing one segment (different virtual hosts,
/// certificates or client-auth policies): a session made under one context
/// can never be resumed under another (the class of bug behind
/// CVE-2014-3616). Values are session secrets; they are only ever copied
/// between the segment and rustls.
pub struct SessionStore {
    cache: Arc<Cache>,
    prefix: Vec<u8>,
    ttl: u32,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("context_prefix_len", &self.prefix.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// A store on `cache` for sessions of the configuration named
    /// `context_id` (any bytes: a host name, a certificate fingerprint).
    pub fn new(cache: Arc<Cache>, context_id: &[u8]) -> Self {
        // Raw ids are length-prefixed, long ones hashed under another tag,
        // so no two distinct context ids give one prefix.
        let prefix = if context_id.len() <= MAX_RAW_CONTEXT {
            let mut p = vec![b'r', context_id.len() as u8];
            p.extend_from_slice(context_id);
            p
        } else {
            let d = ring::digest::digest(&ring::digest::SHA256, context_id);
            let mut p = vec![b'h', 32];
            p.extend_from_slice(d.as_ref());
            p
        };
        SessionStore {
            cache,
            prefix,
            ttl: DEFAULT_TTL_SECS,
        }
    }

    /// Keep sessions for `secs` seconds instead of [`DEFAULT_TTL_SECS`],
    /// clamped to `1..=`[`crate::MAX_TTL_SECS`] (7 days, the longest
    /// lifetime TLS 1.3 allows a ticket): a longer TTL keeps sessions 7
    /// days, 0 keeps them one second.
    pub fn with_ttl(mut self, secs: u32) -> Self {
        self.ttl = crate::table::clamp_ttl(secs);
        self
    }

    /// The TTL sessions are stored with, after clamping.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The table key for a session id; `None` if it cannot be one of ours
    /// (empty, or too long: a client may send any ticket bytes).
    fn key(&self, id: &[u8]) -> Option<Vec<u8>> {
        if id.is_empty() || self.prefix.len() + id.len() > MAX_KEY {
            return None;
        }
        let mut k = Vec::with_capacity(self.prefix.len() + id.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(id);
        Some(k)
    }
}

impl ::rustls::server::StoresServerSessions for SessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(k) = self.key(&key) else {
            return false;
        };
        // Too large a value is refused: rustls then just doesn't resume it.
        self.cache.put(&k, &value, self.ttl) == Stored::Ok
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get_vec(&self.key(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // Exactly once across every process: the table's take wins one CAS.
        self.cache.take_vec(&self.key(key)?)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
