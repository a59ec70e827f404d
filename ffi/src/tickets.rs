//! Shared ticket keys for C servers: `scsp_ticket_key_current` and
//! `scsp_ticket_key_find`, over the segment's key ring
//! ([`scsp::keyring::KeyRing`], shared with the rustls adapter and the
//! bridge, so C and Rust servers of one pool use the same keys).
//!
//! Keys are secrets: the copies made here are wiped before they are dropped,
//! and nothing is logged. The C caller is told (in `scsp.h`) to wipe its own.

use crate::codes::{SCSP_E_INVAL, SCSP_E_NOT_FOUND, SCSP_OK};
use crate::errors::{fail, guard};
use crate::{handle, scsp_cache};
use std::ffi::c_int;

/// The key new tickets use (`scsp_ticket_key.flags`).
pub const SCSP_TICKET_KEY_CURRENT: u32 = 1;

/// One ticket key as C sees it (`scsp_ticket_key` in `scsp.h`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct scsp_ticket_key {
    /// Public name, sent in each ticket.
    pub name: [u8; 16],
    /// AES-256-CBC key (secret).
    pub aes_key: [u8; 32],
    /// HMAC-SHA256 key (secret).
    pub hmac_key: [u8; 32],
    /// Creation time, unix seconds.
    pub created: u64,
    /// Host id that created the key.
    pub origin: u32,
    /// `SCSP_TICKET_KEY_CURRENT` or 0.
    pub flags: u32,
}

const _: () = assert!(std::mem::size_of::<scsp_ticket_key>() == 96);

impl scsp_ticket_key {
    /// Overwrite the secret fields with zeros in a way the compiler keeps.
    pub fn wipe(&mut self) {
        for b in self.aes_key.iter_mut().chain(self.hmac_key.iter_mut()) {
            // SAFETY: b is a valid, aligned &mut u8; a volatile write is
            // never elided, so the secret really leaves memory.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl From<&scsp::keyring::TicketKey> for scsp_ticket_key {
    fn from(k: &scsp::keyring::TicketKey) -> Self {
        scsp_ticket_key {
            name: k.name,
            aes_key: k.aes_key,
            hmac_key: k.hmac_key,
            created: k.created,
            origin: k.origin,
            flags: 0,
        }
    }
}

/// The segment's key ring for this handle, attached on first use (most
/// users never need it). An error when the segment's ring holds another
/// rotation policy than this handle's: nothing is kept then, so every call
/// says so again.
pub(crate) fn ring(h: &scsp_cache) -> scsp::Result<&scsp::keyring::KeyRing> {
    if let Some(ring) = h.keys.get() {
        return Ok(ring);
    }
    let ring = scsp::keyring::KeyRing::new(h.cache.clone(), h.tickets)?;
    Ok(h.keys.get_or_init(|| ring))
}

/// Copy `key` to the caller, then wipe our copy.
///
/// # Safety
/// `out` non-NULL and writable.
unsafe fn hand_out(out: *mut scsp_ticket_key, mut key: scsp_ticket_key) {
    // SAFETY: out is non-NULL and writable by the caller's contract.
    unsafe { out.write_unaligned(key) };
    key.wipe();
}

/// Fill `*out` with the current ticket key. See `scsp.h`.
///
/// # Safety
/// `c` NULL or a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn scsp_ticket_key_current(
    c: *mut scsp_cache,
    out: *mut scsp_ticket_key,
) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        let h = match unsafe { handle(c, "scsp_ticket_key_current") } {
            Ok(h) => h,
            Err(e) => return e,
        };
        if out.is_null() {
            return fail(SCSP_E_INVAL, "scsp_ticket_key_current: out is NULL".into());
        }
        let ring = match ring(h) {
            Ok(ring) => ring,
            Err(e) => return fail(SCSP_E_INVAL, format!("scsp_ticket_key_current: {e}")),
        };
        // The ring's TicketKey wipes itself when dropped.
        match ring.current().as_ref().map(scsp_ticket_key::from) {
            Some(mut k) => {
                k.flags = SCSP_TICKET_KEY_CURRENT;
                // SAFETY: out checked non-NULL; writable by contract.
                unsafe { hand_out(out, k) };
                SCSP_OK
            }
            None => fail(
                SCSP_E_NOT_FOUND,
                "scsp_ticket_key_current: no key could be made (key ring full, or its maker is stuck); issue no ticket".into(),
            ),
        }
    })
}

/// Fill `*out` with the key named `name`. See `scsp.h`.
///
/// # Safety
/// `c` NULL or a live handle; `name` NULL or 16 readable bytes; `out` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn scsp_ticket_key_find(
    c: *mut scsp_cache,
    name: *const u8,
    out: *mut scsp_ticket_key,
) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        let h = match unsafe { handle(c, "scsp_ticket_key_find") } {
            Ok(h) => h,
            Err(e) => return e,
        };
        if name.is_null() || out.is_null() {
            return fail(
                SCSP_E_INVAL,
                "scsp_ticket_key_find: name or out is NULL".into(),
            );
        }
        // SAFETY: non-NULL and 16 readable bytes by contract; u8 has no
        // alignment requirement.
        let name: [u8; 16] = unsafe { name.cast::<[u8; 16]>().read_unaligned() };
        let ring = match ring(h) {
            Ok(ring) => ring,
            Err(e) => return fail(SCSP_E_INVAL, format!("scsp_ticket_key_find: {e}")),
        };
        match ring.find(&name).as_ref().map(scsp_ticket_key::from) {
            Some(mut k) => {
                let current = ring.current().map(|cur| cur.name == k.name);
                k.flags = if current == Some(true) {
                    SCSP_TICKET_KEY_CURRENT
                } else {
                    0
                };
                // SAFETY: out checked non-NULL; writable by contract.
                unsafe { hand_out(out, k) };
                SCSP_OK
            }
            None => SCSP_E_NOT_FOUND,
        }
    })
}

/// How long a ticket stays accepted under this handle's rotation. See `scsp.h`.
///
/// # Safety
/// `c` NULL or a live handle; `secs` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn scsp_ticket_lifetime(c: *mut scsp_cache, secs: *mut u32) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        let h = match unsafe { handle(c, "scsp_ticket_lifetime") } {
            Ok(h) => h,
            Err(e) => return e,
        };
        if secs.is_null() {
            return fail(SCSP_E_INVAL, "scsp_ticket_lifetime: secs is NULL".into());
        }
        // Attach the ring now (servers call this when they set up tickets,
        // before they serve): it stores this handle's rotation policy in the
        // segment, where the bridge finds it, and a policy that disagrees
        // with the segment's is reported here rather than at a handshake.
        if let Err(e) = ring(h) {
            return fail(SCSP_E_INVAL, format!("scsp_ticket_lifetime: {e}"));
        }
        let lifetime = h.tickets.lifetime.as_secs().min(u32::MAX.into()) as u32;
        // SAFETY: secs checked non-NULL; writable by contract.
        unsafe { secs.write_unaligned(lifetime) };
        SCSP_OK
    })
}
