//! rustls adapter: resume sessions across every process attached to a segment.
//!
//! Two lines on a `rustls::ServerConfig` make a pool of worker processes
//! resume each other's clients:
//!
//! ```no_run
//! # fn cfg(mut config: rustls::ServerConfig) -> scsp::Result<()> {
//! use std::sync::Arc;
//! let cache = Arc::new(scsp::Cache::open("/dev/shm/scsp")?);
//! // Stateful: TLS 1.2 session ids and TLS 1.3 single-use tickets.
//! config.session_storage = Arc::new(scsp::rustls::SessionStore::new(cache.clone(), b"www.example.com"));
//! // Stateless: tickets under keys shared through the segment (optional).
//! config.ticketer = scsp::rustls::TicketKeys::new(cache, Default::default())?;
//! # Ok(()) }
//! ```
//!
//! [`SessionStore`] keeps sessions in the shared table, keyed by a context id
//! and the session id. `TicketKeys` encrypts tickets under the key ring of
//! [`crate::keyring`] with AES-256-GCM from *ring* (feature `ring`, the
//! default) or aws-lc-rs (feature `aws-lc-rs`): enable the one your rustls
//! crypto provider already links. See `docs/tickets.md` for the trade-offs.

mod session_store;
#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
mod tickets;

pub use crate::keyring::RotationPolicy;
pub use session_store::{SessionStore, DEFAULT_TTL_SECS};
#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
pub use tickets::TicketKeys;
