//! Failure reporting across the ABI: the panic fence, the per-thread last
//! error message, and `errno`.

use crate::codes::SCSP_E_INTERNAL;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Run an entry point's body; a panic becomes `SCSP_E_INTERNAL` instead of
/// unwinding into C (which would abort the process).
///
/// Unwind safety: the body only touches the shared table, whose operations
/// leave it consistent at every instruction (docs/architecture.md, I1
/// NO-WAIT), and thread-local error text, which is replaced whole.
pub fn guard(body: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code,
        Err(_) => fail(
            SCSP_E_INTERNAL,
            "internal error: a bug in libscsp was caught (a Rust panic); please report it".into(),
        ),
    }
}

/// Record `msg` as this thread's last error and return `code`.
pub fn fail(code: c_int, msg: String) -> c_int {
    fail_errno(code, msg, None)
}

/// As [`fail`], and leave `errno` set to `errno` (set last, so nothing we do
/// afterwards can clobber it).
pub fn fail_errno(code: c_int, msg: String, errno: Option<i32>) -> c_int {
    let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // try_with: during thread teardown the slot may be gone; lose the text.
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = text;
        }
    });
    if let Some(e) = errno {
        // SAFETY: __errno_location returns this thread's errno slot, valid
        // for the thread's lifetime.
        unsafe { *libc::__errno_location() = e };
    }
    code
}

/// Pointer to this thread's last error text ("" if none). Valid until the
/// next failing scsp call in the same thread.
pub fn last_error_ptr() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    LAST_ERROR
        .try_with(|l| l.try_borrow().map(|s| s.as_ptr()).ok())
        .ok()
        .flatten()
        .unwrap_or(EMPTY.as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_internal_error_with_a_message() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = guard(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(code, SCSP_E_INTERNAL);
        // SAFETY: last_error_ptr returns a valid NUL-terminated string.
        let msg = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert!(msg.to_string_lossy().contains("internal error"));
    }

    #[test]
    fn errno_is_left_as_given() {
        fail_errno(-9, "x".into(), Some(libc::ENOSPC));
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSPC)
        );
    }
}
