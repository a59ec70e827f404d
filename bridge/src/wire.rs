//! Frames of the bridge protocol: encoding, and a strict incremental decoder.
//!
//! Inside the TLS stream every message is one frame (docs/PROTOCOL.md):
//!
//! ```text
//! frame   := length:u32be  type:u8  body        length = 1 + body bytes, 1..=MAX_FRAME
//! HELLO   (1) := "SCSP" version:u16be host_id:u32be cluster_len:u8 cluster
//! ENTRIES (2) := seq:u64be count:u16be entry*count
//!   entry     := flags:u8 key_len:u8 value_len:u32be expiry:u64be origin:u32be key value
//! ACK     (3) := seq:u64be
//! HEARTBEAT(4):= unix_ms:u64be
//! CLOSE   (5) := reason:u8
//! ```
//!
//! The decoder trusts nothing: a length over [`MAX_FRAME`] is refused before
//! anything is buffered, every field is range-checked, and a body must be
//! consumed exactly. Any violation is a [`WireError`]; the connection that
//! sent it is closed. Decoding never panics and never allocates more than
//! the frame it holds.

use std::fmt;

/// Protocol version spoken by this build.
pub const VERSION: u16 = 1;
/// Largest frame (type byte + body), bytes.
pub const MAX_FRAME: usize = 256 << 10;
/// Largest value carried in an entry, bytes (the segment format's limit).
pub const MAX_WIRE_VALUE: usize = 64 << 10;
/// Most entries in one ENTRIES frame.
pub const MAX_BATCH: usize = 4096;
/// The only entry flag defined: a removal (tombstone).
pub const WIRE_TOMBSTONE: u8 = 1;
/// Bytes of an entry before its key.
pub const ENTRY_FIXED: usize = 1 + 1 + 4 + 8 + 4;
/// Bytes of an ENTRIES frame before its entries (type, seq, count).
pub const ENTRIES_FIXED: usize = 1 + 8 + 2;

const MAGIC: &[u8; 4] = b"SCSP";
const T_HELLO: u8 = 1;
const T_ENTRIES: u8 = 2;
const T_ACK: u8 = 3;
const T_HEARTBEAT: u8 = 4;
const T_CLOSE: u8 = 5;
const T_KEYS: u8 = 6;
/// Most ticket keys in one KEYS frame: a host sends only its own keys, and
/// a ring holds at most this many of one origin.
pub const MAX_KEYS: usize = scsp::keyring::MAX_KEYS_PER_ORIGIN;
/// Bytes of one key in a KEYS frame: name, AES key, HMAC key, created, origin.
const KEY_BYTES: usize = 16 + 32 + 32 + 8 + 4;

/// Why a connection is being closed, sent in a CLOSE frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Protocol version not supported.
    Version = 1,
    /// Cluster name does not match.
    Cluster = 2,
    /// Host id unknown, not matching the certificate, or wrong direction.
    Identity = 3,
    /// A frame broke the protocol.
    Malformed = 4,
    /// The bridge is stopping.
    Shutdown = 5,
}

impl CloseReason {
    fn from_u8(v: u8) -> Option<CloseReason> {
        Some(match v {
            1 => CloseReason::Version,
            2 => CloseReason::Cluster,
            3 => CloseReason::Identity,
            4 => CloseReason::Malformed,
            5 => CloseReason::Shutdown,
            _ => return None,
        })
    }
}

/// One replicated entry on the wire. Key and value are secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct WireEntry {
    /// 0, or [`WIRE_TOMBSTONE`].
    pub flags: u8,
    /// Expiry, unix seconds.
    pub expiry: u64,
    /// The host that created the entry.
    pub origin: u32,
    /// 1 to 255 bytes.
    pub key: Vec<u8>,
    /// Up to [`MAX_WIRE_VALUE`] bytes; empty for a tombstone.
    pub value: Vec<u8>,
}

impl fmt::Debug for WireEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireEntry")
            .field("flags", &self.flags)
            .field("expiry", &self.expiry)
            .field("origin", &self.origin)
            .field("key_len", &self.key.len())
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// First frame each way after the TLS handshake.
    Hello {
        /// Sender's protocol version.
        version: u16,
        /// Sender's host id.
        host_id: u32,
        /// Sender's cluster name.
        cluster: String,
    },
    /// A batch of entries, numbered for acknowledgement.
    Entries {
        /// Batch number (per connection, from 1).
        seq: u64,
        /// The entries.
        entries: Vec<WireEntry>,
    },
    /// The receiver has applied every batch up to `seq`.
    Ack {
        /// Last batch applied.
        seq: u64,
    },
    /// Liveness; the sender's wall clock in unix milliseconds.
    Heartbeat {
        /// Sender's clock, unix ms.
        unix_ms: u64,
    },
    /// The sender's usable ticket keys (secret: only ever sent inside TLS).
    Keys {
        /// The keys.
        keys: Vec<scsp::keyring::TicketKey>,
    },
    /// The sender is closing the connection, and why.
    Close {
        /// Why.
        reason: CloseReason,
    },
}

/// A frame that breaks the protocol. Names the problem, never the content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

impl std::error::Error for WireError {}

fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + body.len());
    f.extend_from_slice(&(1 + body.len() as u32).to_be_bytes());
    f.push(ty);
    f.extend_from_slice(body);
    f
}

/// Encode a HELLO frame.
pub fn hello(host_id: u32, cluster: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + cluster.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&host_id.to_be_bytes());
    b.push(cluster.len().min(255) as u8);
    b.extend_from_slice(&cluster.as_bytes()[..cluster.len().min(255)]);
    frame(T_HELLO, &b)
}

/// Encode an ACK frame.
pub fn ack(seq: u64) -> Vec<u8> {
    frame(T_ACK, &seq.to_be_bytes())
}

/// Encode a HEARTBEAT frame.
pub fn heartbeat(unix_ms: u64) -> Vec<u8> {
    frame(T_HEARTBEAT, &unix_ms.to_be_bytes())
}

/// Encode a KEYS frame with at most [`MAX_KEYS`] keys.
pub fn keys(keys: &[scsp::keyring::TicketKey]) -> Vec<u8> {
    let keys = &keys[..keys.len().min(MAX_KEYS)];
    let mut b = Vec::with_capacity(1 + keys.len() * KEY_BYTES);
    b.push(keys.len() as u8);
    for k in keys {
        b.extend_from_slice(&k.name);
        b.extend_from_slice(&k.aes_key);
        b.extend_from_slice(&k.hmac_key);
        b.extend_from_slice(&k.created.to_be_bytes());
        b.extend_from_slice(&k.origin.to_be_bytes());
    }
    let f = frame(T_KEYS, &b);
    b.fill(0);
    f
}

/// Encode a CLOSE frame.
pub fn close(reason: CloseReason) -> Vec<u8> {
    frame(T_CLOSE, &[reason as u8])
}

/// Builds one ENTRIES frame, keeping it within [`MAX_FRAME`].
pub struct EntriesBuilder {
    buf: Vec<u8>,
    count: u16,
}

impl EntriesBuilder {
    /// Start batch `seq`.
    pub fn new(seq: u64) -> EntriesBuilder {
        let mut buf = Vec::with_capacity(16 << 10);
        buf.extend_from_slice(&[0; 4]);
        buf.push(T_ENTRIES);
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(&[0; 2]);
        debug_assert_eq!(buf.len(), ENTRIES_AT);
        EntriesBuilder { buf, count: 0 }
    }

    /// Entries added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// No entries yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Would an entry of these sizes still fit?
    pub fn fits(&self, key_len: usize, value_len: usize) -> bool {
        (self.count as usize) < MAX_BATCH
            && self.buf.len() - 4 + ENTRY_FIXED + key_len + value_len <= MAX_FRAME
    }

    /// Add an entry. The caller checks [`EntriesBuilder::fits`] first and
    /// only passes keys of 1..=255 bytes and values up to [`MAX_WIRE_VALUE`].
    pub fn push(&mut self, flags: u8, expiry: u64, origin: u32, key: &[u8], value: &[u8]) {
        debug_assert!(self.fits(key.len(), value.len()));
        debug_assert!(!key.is_empty() && key.len() <= 255 && value.len() <= MAX_WIRE_VALUE);
        self.buf.push(flags);
        self.buf.push(key.len() as u8);
        self.buf
            .extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(&expiry.to_be_bytes());
        self.buf.extend_from_slice(&origin.to_be_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        self.count += 1;
    }

    /// The finished frame.
    pub fn finish(mut self) -> Vec<u8> {
        self.frame();
        self.buf
    }

    /// The frame so far, length and count filled in. The builder can go on
    /// from here, or [`EntriesBuilder::restart`].
    pub fn frame(&mut self) -> &[u8] {
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf[13..15].copy_from_slice(&self.count.to_be_bytes());
        &self.buf
    }

    /// Empty, as batch `seq`, keeping the allocation (a sender calls this
    /// every poll, mostly to find nothing to send).
    pub fn restart(&mut self, seq: u64) {
        self.buf.truncate(ENTRIES_AT);
        self.buf[5..13].copy_from_slice(&seq.to_be_bytes());
        self.count = 0;
    }
}

/// Where an ENTRIES frame's first entry starts: length, type, seq, count.
const ENTRIES_AT: usize = 4 + ENTRIES_FIXED;

/// A cursor over a frame body; every read is bounds-checked.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_be_bytes(a))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError("trailing bytes after the frame's fields"))
        }
    }
}

/// Decode one frame's type byte and body (the bytes after the length).
pub fn decode(frame: &[u8]) -> Result<Frame, WireError> {
    let mut b = Body(frame);
    let ty = b.u8("empty frame")?;
    let f = match ty {
        T_HELLO => {
            if b.take(4, "short HELLO")? != MAGIC {
                return Err(WireError("HELLO without the SCSP magic"));
            }
            let version = b.u16("short HELLO")?;
            let host_id = b.u32("short HELLO")?;
            let n = b.u8("short HELLO")? as usize;
            let name = b.take(n, "HELLO cluster name runs past the frame")?;
            let cluster = std::str::from_utf8(name)
                .map_err(|_| WireError("HELLO cluster name is not UTF-8"))?
                .to_string();
            Frame::Hello {
                version,
                host_id,
                cluster,
            }
        }
        T_ENTRIES => {
            let seq = b.u64("short ENTRIES")?;
            let count = b.u16("short ENTRIES")? as usize;
            if count == 0 || count > MAX_BATCH {
                return Err(WireError("ENTRIES count out of range"));
            }
            // Each entry needs at least ENTRY_FIXED + 1 bytes: bounds the Vec.
            if count * (ENTRY_FIXED + 1) > b.0.len() {
                return Err(WireError("ENTRIES count exceeds the frame"));
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let flags = b.u8("short entry")?;
                let key_len = b.u8("short entry")? as usize;
                let value_len = b.u32("short entry")? as usize;
                let expiry = b.u64("short entry")?;
                let origin = b.u32("short entry")?;
                if flags & !WIRE_TOMBSTONE != 0 {
                    return Err(WireError("entry has unknown flags"));
                }
                if key_len == 0 {
                    return Err(WireError("entry has an empty key"));
                }
                if value_len > MAX_WIRE_VALUE {
                    return Err(WireError("entry value too large"));
                }
                if flags & WIRE_TOMBSTONE != 0 && value_len != 0 {
                    return Err(WireError("tombstone carries a value"));
                }
                let key = b.take(key_len, "entry key runs past the frame")?.to_vec();
                let value = b
                    .take(value_len, "entry value runs past the frame")?
                    .to_vec();
                entries.push(WireEntry {
                    flags,
                    expiry,
                    origin,
                    key,
                    value,
                });
            }
            Frame::Entries { seq, entries }
        }
        T_ACK => Frame::Ack {
            seq: b.u64("short ACK")?,
        },
        T_HEARTBEAT => Frame::Heartbeat {
            unix_ms: b.u64("short HEARTBEAT")?,
        },
        T_KEYS => {
            let n = b.u8("short KEYS")? as usize;
            if n > MAX_KEYS {
                return Err(WireError("KEYS frame has too many keys"));
            }
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                let mut k = scsp::keyring::TicketKey {
                    name: [0; 16],
                    aes_key: [0; 32],
                    hmac_key: [0; 32],
                    created: 0,
                    origin: 0,
                };
                k.name.copy_from_slice(b.take(16, "short KEYS key")?);
                k.aes_key.copy_from_slice(b.take(32, "short KEYS key")?);
                k.hmac_key.copy_from_slice(b.take(32, "short KEYS key")?);
                k.created = b.u64("short KEYS key")?;
                k.origin = b.u32("short KEYS key")?;
                if k.origin == 0 {
                    return Err(WireError("ticket key has origin 0"));
                }
                keys.push(k);
            }
            Frame::Keys { keys }
        }
        T_CLOSE => Frame::Close {
            reason: CloseReason::from_u8(b.u8("short CLOSE")?)
                .ok_or(WireError("unknown CLOSE reason"))?,
        },
        _ => return Err(WireError("unknown frame type")),
    };
    b.end()?;
    Ok(f)
}

/// Reassembles frames from a byte stream.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// A reader with nothing buffered.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Bytes received and not yet consumed by a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Add received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. An error
    /// is final: the stream cannot be resynchronised.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len == 0 {
            return Err(WireError("zero-length frame"));
        }
        if len > MAX_FRAME {
            return Err(WireError("frame longer than the maximum"));
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let f = decode(&avail[4..4 + len]);
        self.start += 4 + len;
        if self.start > (64 << 10) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        f.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_restarted_builder_makes_the_same_frame_as_a_new_one() {
        let mut reused = EntriesBuilder::new(1);
        reused.push(0, 9, 1, b"old", &[1; 300]);
        let _ = reused.frame();
        reused.restart(42);
        reused.push(WIRE_TOMBSTONE, 7, 3, b"key", b"");
        let mut fresh = EntriesBuilder::new(42);
        fresh.push(WIRE_TOMBSTONE, 7, 3, b"key", b"");
        assert_eq!(reused.frame(), &fresh.finish()[..]);
        reused.restart(43);
        assert!(reused.is_empty());
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Frame>, WireError> {
        let mut r = FrameReader::new();
        r.push(bytes);
        let mut out = Vec::new();
        while let Some(f) = r.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn frames_round_trip() {
        let mut b = EntriesBuilder::new(7);
        b.push(0, 99, 3, b"k", b"value");
        b.push(WIRE_TOMBSTONE, 100, 3, b"gone", b"");
        let mut bytes = hello(3, "c1");
        bytes.extend(b.finish());
        bytes.extend(ack(7));
        bytes.extend(heartbeat(5));
        bytes.extend(close(CloseReason::Cluster));
        let f = read_all(&bytes).unwrap();
        assert_eq!(f.len(), 5);
        assert_eq!(
            f[0],
            Frame::Hello {
                version: VERSION,
                host_id: 3,
                cluster: "c1".into()
            }
        );
        let Frame::Entries { seq: 7, entries } = &f[1] else {
            panic!("{:?}", f[1])
        };
        assert_eq!(entries[0].value, b"value");
        assert_eq!(entries[1].flags, WIRE_TOMBSTONE);
        assert_eq!(
            f[4],
            Frame::Close {
                reason: CloseReason::Cluster
            }
        );
    }

    #[test]
    fn an_entry_of_origin_0_is_left_for_the_receiver_to_refuse() {
        // Origin is judged per entry when a batch is applied; only flags
        // and lengths break the framing.
        let mut b = EntriesBuilder::new(1);
        b.push(0, 9, 0, b"k", b"v");
        b.push(0, 9, 2, b"k2", b"v");
        let f = read_all(&b.finish()).unwrap();
        let [Frame::Entries { entries, .. }] = &f[..] else {
            panic!("{f:?}")
        };
        assert_eq!((entries[0].origin, entries[1].origin), (0, 2));
    }

    #[test]
    fn keys_round_trip_and_bad_keys_frames_are_errors() {
        let k = scsp::keyring::TicketKey {
            name: [1; 16],
            aes_key: [2; 32],
            hmac_key: [3; 32],
            created: 1_700_000_000,
            origin: 4,
        };
        let f = read_all(&keys(std::slice::from_ref(&k))).unwrap();
        assert_eq!(f, vec![Frame::Keys { keys: vec![k] }]);
        assert!(decode(&[T_KEYS, 17]).is_err(), "too many keys");
        assert!(decode(&[T_KEYS, 1, 0, 0]).is_err(), "short key");
        let mut zero_origin = vec![T_KEYS, 1];
        zero_origin.extend([0u8; KEY_BYTES]);
        assert!(decode(&zero_origin).is_err(), "origin 0");
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut r = FrameReader::new();
        r.push(&((MAX_FRAME + 1) as u32).to_be_bytes());
        assert!(r.next_frame().is_err());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let bad: &[&[u8]] = &[
            &[9],                                             // unknown type
            &[T_ACK, 1, 2],                                   // short
            &[T_CLOSE, 1, 0],                                 // trailing bytes
            &[T_ENTRIES, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff], // count too big
        ];
        for body in bad {
            assert!(decode(body).is_err(), "{body:?}");
        }
        let mut b = EntriesBuilder::new(1);
        b.push(WIRE_TOMBSTONE, 1, 1, b"k", b"v");
        assert!(read_all(&b.finish()).is_err(), "tombstone with a value");
    }

    #[test]
    fn builder_stays_under_the_maximum() {
        let mut b = EntriesBuilder::new(1);
        let v = vec![1u8; MAX_WIRE_VALUE];
        while b.fits(255, v.len()) {
            b.push(0, 1, 1, &[2u8; 255], &v);
        }
        let f = b.finish();
        assert!(f.len() - 4 <= MAX_FRAME);
        assert_eq!(read_all(&f).unwrap().len(), 1);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_all(&bytes);
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_valid_frames_never_panic(pos in 0usize..64, val in any::<u8>()) {
            let mut b = EntriesBuilder::new(1);
            b.push(0, 1, 1, b"key", b"value-bytes");
            let mut f = b.finish();
            let i = pos % f.len();
            f[i] = val;
            let _ = read_all(&f);
        }
    }
}
