//! # libscsp — the C ABI of scsp
//!
//! A thin layer over [`scsp::Cache`]: argument checks, return codes, and a
//! `catch_unwind` on every entry point so no Rust panic ever crosses into C.
//! The contract (ownership, threading, fork, errors) is written in
//! `include/scsp.h`, which is the reference; `docs/c-api.md` explains it.
//!
//! Rules every entry point follows:
//! - returns `SCSP_OK` (0) or a negative `SCSP_E_*` code (see [`codes`]);
//! - NULL pointers, zero or over-long key lengths and NULL buffers with a
//!   non-zero capacity are `SCSP_E_INVAL`, never a crash;
//! - on failures other than `SCSP_E_NOT_FOUND` / `SCSP_E_BUFFER` (the hot
//!   path, which allocates nothing) `scsp_last_error()` describes what to fix;
//! - `SCSP_E_IO` leaves the OS error in `errno`.
#![deny(missing_docs)]

pub mod codes;
mod errors;
pub mod structs;
pub mod tickets;

use codes::*;
use errors::{fail, fail_errno, guard};
use std::ffi::{c_char, c_int, CStr};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use structs::{scsp_options, scsp_stats};

/// Version of the C ABI; `SCSP_ABI_VERSION` in `scsp.h` must match.
pub const SCSP_ABI_VERSION: u32 = 1;
/// Longest key accepted, in bytes.
pub const SCSP_MAX_KEY: usize = 255;

/// An open cache: what `scsp_open` hands out and `scsp_close` frees.
/// Opaque to C. Safe to share between threads (`Cache` is `Sync`).
#[allow(non_camel_case_types)]
pub struct scsp_cache {
    cache: Arc<scsp::Cache>,
    tickets: scsp::keyring::RotationPolicy,
    keys: std::sync::OnceLock<scsp::keyring::KeyRing>,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<scsp_cache>()
};

/// Borrow the handle, or `SCSP_E_INVAL` for NULL.
///
/// # Safety
/// `c` must be NULL or a live handle from `scsp_open` not yet closed.
unsafe fn handle<'a>(c: *const scsp_cache, func: &str) -> Result<&'a scsp_cache, c_int> {
    if c.is_null() {
        return Err(fail(SCSP_E_INVAL, format!("{func}: cache is NULL")));
    }
    // SAFETY: non-NULL and, by the contract, a live handle from scsp_open;
    // the handle is only read through & (all its methods take &self).
    Ok(unsafe { &*c })
}

/// Borrow a key, checking pointer and length.
///
/// # Safety
/// If `key` is non-NULL it must point to `len` readable bytes.
unsafe fn key<'a>(key: *const u8, len: usize, func: &str) -> Result<&'a [u8], c_int> {
    if key.is_null() {
        return Err(fail(SCSP_E_INVAL, format!("{func}: key is NULL")));
    }
    if len == 0 || len > SCSP_MAX_KEY {
        return Err(fail(
            SCSP_E_INVAL,
            format!("{func}: key_len is {len}; keys are 1 to {SCSP_MAX_KEY} bytes"),
        ));
    }
    // SAFETY: non-NULL, 1..=255 bytes which the caller promises are readable.
    Ok(unsafe { std::slice::from_raw_parts(key, len) })
}

fn overlaps(a: &[u8], b_ptr: *const u8, b_len: usize) -> bool {
    let (a0, a1) = (a.as_ptr() as usize, a.as_ptr() as usize + a.len());
    let (b0, b1) = (b_ptr as usize, (b_ptr as usize).saturating_add(b_len));
    a0 < b1 && b0 < a1
}

/// Open (or create) the segment at `path`. See `scsp.h`.
///
/// # Safety
/// `path` NULL or a NUL-terminated string; `opts` NULL or a struct of
/// `opts->struct_size` bytes; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn scsp_open(
    path: *const c_char,
    opts: *const scsp_options,
    out: *mut *mut scsp_cache,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return fail(SCSP_E_INVAL, "scsp_open: out is NULL".into());
        }
        // SAFETY: out is non-NULL and writable by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        if path.is_null() {
            return fail(SCSP_E_INVAL, "scsp_open: path is NULL".into());
        }
        // SAFETY: non-NULL and NUL-terminated by the contract.
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        if bytes.is_empty() {
            return fail(SCSP_E_INVAL, "scsp_open: path is empty".into());
        }
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(bytes));
        // SAFETY: opts is NULL or a struct of struct_size bytes (contract).
        let plan = match unsafe { structs::read_options(opts) }.and_then(|o| structs::plan(&o)) {
            Ok(p) => p,
            Err(msg) => return fail(SCSP_E_INVAL, format!("scsp_open: {msg}")),
        };
        let opened = if plan.no_create {
            scsp::Cache::open_with(path, scsp::Access::from(&plan.config))
        } else if plan.excl {
            scsp::Cache::create(path, &plan.config)
        } else {
            scsp::Cache::open_or_create(path, &plan.config)
        };
        match opened {
            Ok(cache) => {
                let h = Box::new(scsp_cache {
                    cache: Arc::new(cache),
                    tickets: plan.tickets,
                    keys: std::sync::OnceLock::new(),
                });
                // SAFETY: out is non-NULL and writable (checked above).
                unsafe { out.write(Box::into_raw(h)) };
                SCSP_OK
            }
            Err(e) => {
                let (code, errno) = codes::from_error(&e);
                // The library names the Rust fields; say which C one is wrong.
                let hint = if let scsp::Error::InvalidField { field, .. } = &e {
                    format!(" (fix opts->{})", structs::c_field(field))
                } else {
                    String::new()
                };
                fail_errno(code, format!("scsp_open: {e}{hint}"), errno)
            }
        }
    })
}

/// Close a handle from `scsp_open`. NULL is a no-op.
///
/// # Safety
/// `c` NULL or a live handle, not used by any thread afterwards.
#[no_mangle]
pub unsafe extern "C" fn scsp_close(c: *mut scsp_cache) {
    if c.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: a live handle made by Box::into_raw in scsp_open; the caller
        // gives up every use of it, so we own it again and may drop it.
        drop(unsafe { Box::from_raw(c) });
        SCSP_OK
    });
}

/// Store a value. See `scsp.h`.
///
/// # Safety
/// Pointers NULL or valid for the given lengths; `c` a live handle.
#[no_mangle]
pub unsafe extern "C" fn scsp_put(
    c: *mut scsp_cache,
    key_ptr: *const u8,
    key_len: usize,
    val: *const u8,
    val_len: usize,
    ttl_secs: u32,
) -> c_int {
    guard(|| {
        // SAFETY: contract of this function (see its # Safety).
        let (h, k) = match unsafe { (handle(c, "scsp_put"), key(key_ptr, key_len, "scsp_put")) } {
            (Ok(h), Ok(k)) => (h, k),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        if val.is_null() && val_len != 0 {
            return fail(
                SCSP_E_INVAL,
                "scsp_put: val is NULL but val_len is not 0".into(),
            );
        }
        if ttl_secs == 0 {
            return fail(
                SCSP_E_INVAL,
                "scsp_put: ttl_secs is 0; give the lifetime in seconds".into(),
            );
        }
        // Longer than scsp::MAX_TTL_SECS (7 days) is clamped by the table.
        // A value over max_value is refused by the table (which counts it);
        // only max_value + 1 of its bytes are borrowed to show it the size,
        // so a huge val_len never becomes a huge slice.
        let max = h.cache.max_value();
        let len = val_len.min(max + 1);
        let v: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: non-NULL; the caller promises val_len >= len readable
            // bytes, and len <= max_value + 1 is a small, valid slice length.
            unsafe { std::slice::from_raw_parts(val, len) }
        };
        match h.cache.put(k, v, ttl_secs) {
            scsp::Stored::Ok => SCSP_OK,
            scsp::Stored::TooLarge => fail(
                SCSP_E_TOO_LARGE,
                format!("scsp_put: val_len {val_len} is over this segment's max_value {max}"),
            ),
            scsp::Stored::BadKey => fail(SCSP_E_INVAL, "scsp_put: bad key".into()),
        }
    })
}

#[derive(Clone, Copy)]
enum Read {
    Get,
    Take,
}

/// The shared body of `scsp_get` and `scsp_take`.
///
/// # Safety
/// As for `scsp_get`.
unsafe fn read(
    op: Read,
    c: *mut scsp_cache,
    key_ptr: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_cap: usize,
    val_len: *mut usize,
) -> c_int {
    let func = match op {
        Read::Get => "scsp_get",
        Read::Take => "scsp_take",
    };
    // SAFETY: contract of scsp_get/scsp_take.
    let (h, k) = match unsafe { (handle(c, func), key(key_ptr, key_len, func)) } {
        (Ok(h), Ok(k)) => (h, k),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if val_len.is_null() {
        return fail(SCSP_E_INVAL, format!("{func}: val_len is NULL"));
    }
    if buf.is_null() && buf_cap != 0 {
        return fail(
            SCSP_E_INVAL,
            format!("{func}: buf is NULL but buf_cap is not 0"),
        );
    }
    // We never write more than max_value bytes, so only that much of the
    // caller's buffer is borrowed (this also keeps a huge buf_cap sound).
    let cap = buf_cap.min(h.cache.max_value());
    if cap != 0 && overlaps(k, buf, cap) {
        return fail(SCSP_E_INVAL, format!("{func}: buf overlaps key"));
    }
    let b: &mut [u8] = if cap == 0 {
        &mut []
    } else {
        // SAFETY: non-NULL; the caller promises buf_cap >= cap writable bytes,
        // and they do not overlap the key (checked above).
        unsafe { std::slice::from_raw_parts_mut(buf, cap) }
    };
    let found = match op {
        Read::Get => h.cache.get(k, b),
        Read::Take => h.cache.take(k, b),
    };
    let (code, n) = match found {
        scsp::Lookup::Hit(n) => (SCSP_OK, n),
        scsp::Lookup::Miss => (SCSP_E_NOT_FOUND, 0),
        scsp::Lookup::BufferTooSmall(n) => (SCSP_E_BUFFER, n),
    };
    // SAFETY: non-NULL and writable by the contract.
    unsafe { val_len.write_unaligned(n) };
    code
}

/// Copy the value for a key into `buf`. See `scsp.h`.
///
/// # Safety
/// Pointers NULL or valid for the given lengths; `c` a live handle.
#[no_mangle]
pub unsafe extern "C" fn scsp_get(
    c: *mut scsp_cache,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_cap: usize,
    val_len: *mut usize,
) -> c_int {
    // SAFETY: forwarded contract.
    guard(|| unsafe { read(Read::Get, c, key, key_len, buf, buf_cap, val_len) })
}

/// Remove and return the value for a key (one winner). See `scsp.h`.
///
/// # Safety
/// Pointers NULL or valid for the given lengths; `c` a live handle.
#[no_mangle]
pub unsafe extern "C" fn scsp_take(
    c: *mut scsp_cache,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_cap: usize,
    val_len: *mut usize,
) -> c_int {
    // SAFETY: forwarded contract.
    guard(|| unsafe { read(Read::Take, c, key, key_len, buf, buf_cap, val_len) })
}

/// Remove a key everywhere. See `scsp.h`.
///
/// # Safety
/// Pointers NULL or valid for the given lengths; `c` a live handle.
#[no_mangle]
pub unsafe extern "C" fn scsp_remove(
    c: *mut scsp_cache,
    key_ptr: *const u8,
    key_len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        let (h, k) = match unsafe {
            (
                handle(c, "scsp_remove"),
                key(key_ptr, key_len, "scsp_remove"),
            )
        } {
            (Ok(h), Ok(k)) => (h, k),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        if h.cache.remove(k) {
            SCSP_OK
        } else {
            SCSP_E_NOT_FOUND
        }
    })
}

/// Fill `*out` with counters and geometry. See `scsp.h`.
///
/// # Safety
/// `c` NULL or a live handle; `out` NULL or `out->struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn scsp_stats(c: *mut scsp_cache, out: *mut scsp_stats) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        let h = match unsafe { handle(c, "scsp_stats") } {
            Ok(h) => h,
            Err(e) => return e,
        };
        if out.is_null() {
            return fail(SCSP_E_INVAL, "scsp_stats: out is NULL".into());
        }
        let s = scsp_stats::from(&h.cache.stats());
        // SAFETY: out non-NULL with struct_size writable bytes (contract).
        match unsafe { structs::write_stats(out, &s) } {
            SCSP_OK => SCSP_OK,
            code => fail(
                code,
                format!(
                    "scsp_stats: out->struct_size is below {}; set it to sizeof(scsp_stats)",
                    structs::STATS_V1_SIZE
                ),
            ),
        }
    })
}

/// Whether the segment's path still names the mapped file. See `scsp.h`.
///
/// # Safety
/// `c` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn scsp_replaced(c: *mut scsp_cache) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        match unsafe { handle(c, "scsp_replaced") } {
            Ok(h) => {
                let seg = h.cache.segment();
                c_int::from(seg.replaced() || seg.truncated())
            }
            Err(e) => e,
        }
    })
}

/// Survive the segment file being truncated under this process. See
/// `scsp.h`.
///
/// # Safety
/// `c` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn scsp_guard_truncation(c: *mut scsp_cache) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        let h = match unsafe { handle(c, "scsp_guard_truncation") } {
            Ok(h) => h,
            Err(e) => return e,
        };
        match h.cache.segment().guard_against_truncation() {
            Ok(()) => SCSP_OK,
            Err(e) => match e.raw_os_error() {
                Some(errno) => fail_errno(
                    SCSP_E_IO,
                    format!("scsp_guard_truncation: sigaction(SIGBUS) failed: {e}"),
                    Some(errno),
                ),
                // More segments guarded than the handler has room for.
                None => fail(SCSP_E_INVAL, format!("scsp_guard_truncation: {e}")),
            },
        }
    })
}

/// Map every page of the segment into this process now. See `scsp.h`.
///
/// # Safety
/// `c` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn scsp_prefault(c: *mut scsp_cache) -> c_int {
    guard(|| {
        // SAFETY: contract of this function.
        let h = match unsafe { handle(c, "scsp_prefault") } {
            Ok(h) => h,
            Err(e) => return e,
        };
        match h.cache.prefault() {
            Ok(()) => SCSP_OK,
            Err(e) => {
                let errno = e.raw_os_error();
                let hint = if errno == Some(libc::EINVAL) {
                    " (MADV_POPULATE_READ needs Linux 5.14 or later; nothing changed, \
                     pages fault in as they are touched)"
                } else {
                    ""
                };
                fail_errno(
                    SCSP_E_IO,
                    format!("scsp_prefault: madvise(MADV_POPULATE_READ) failed: {e}{hint}"),
                    errno,
                )
            }
        }
    })
}

// The four functions below need no catch_unwind: they only return pointers
// to statics or thread-local storage (reached with try_with/try_borrow), and
// nothing in them can panic.

/// A static message for a return code (never NULL, never freed).
#[no_mangle]
pub extern "C" fn scsp_strerror(code: c_int) -> *const c_char {
    codes::message_ptr(code)
}

/// What went wrong in this thread's last failed call (never NULL).
#[no_mangle]
pub extern "C" fn scsp_last_error() -> *const c_char {
    errors::last_error_ptr()
}

/// The library version, e.g. "0.1.0" (static, never freed).
#[no_mangle]
pub extern "C" fn scsp_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version this library implements (`SCSP_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn scsp_abi_version() -> u32 {
    SCSP_ABI_VERSION
}
