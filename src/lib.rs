//! # scsp — the Shared Cipher Spec Protocol
//!
//! A TLS session cache that lets a pool of server processes (and, with the
//! bridge, a pool of hosts) resume each other's sessions. Every process maps
//! one shared-memory segment holding a lock-free hash table; lookups and
//! inserts are plain memory operations.
//!
//! ```no_run
//! use scsp::{Cache, Config, Lookup};
//! let cache = Cache::open_or_create("/dev/shm/scsp-example", &Config::default())?;
//! let _ = cache.put(b"session-id", b"session-state", 300);
//! let mut buf = [0u8; 8192];
//! if let Lookup::Hit(n) = cache.get(b"session-id", &mut buf) {
//!     assert_eq!(&buf[..n], b"session-state");
//! }
//! # Ok::<(), scsp::Error>(())
//! ```
//!
//! Layers, each using only those below it: [`segment`] (raw memory, layout,
//! validation) → [`table`] (operations) → adapters and the CLI.
#![deny(missing_docs)]

pub mod clock;
pub mod config;
pub mod error;
pub mod keyring;
#[cfg(not(loom))]
pub mod replication;
#[cfg(feature = "rustls")]
pub mod rustls;
pub mod segment;
pub mod stats;
mod sync;
pub mod table;

pub use config::{Config, Layout};
pub use error::{Error, Result};
pub use segment::Access;
pub use table::{Cache, Lookup, Stats, Stored, MAX_TTL_SECS};
