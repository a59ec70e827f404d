//! Return codes of the C ABI, their messages, and the mapping from
//! [`scsp::Error`].
//!
//! Every entry point returns `0` (`SCSP_OK`) or one of the negative codes
//! below; `include/scsp.h` defines the same numbers. Codes are never reused
//! for another meaning: a new failure gets a new number.

use std::ffi::{c_char, c_int};

/// Success.
pub const SCSP_OK: c_int = 0;
/// No live value for the key (or no ticket key with that name).
pub const SCSP_E_NOT_FOUND: c_int = -1;
/// The caller's buffer is too small; `*val_len` holds the size needed.
pub const SCSP_E_BUFFER: c_int = -2;
/// The value is larger than the segment's `max_value`.
pub const SCSP_E_TOO_LARGE: c_int = -3;
/// An argument is invalid: NULL pointer, bad length, bad option.
pub const SCSP_E_INVAL: c_int = -4;
/// The file is not a segment, or its header is damaged or unfinished.
pub const SCSP_E_CORRUPT: c_int = -5;
/// The segment was made by an incompatible format version or layout.
pub const SCSP_E_VERSION: c_int = -6;
/// `SCSP_OPEN_EXCL` was given and a file exists at the path.
pub const SCSP_E_EXISTS: c_int = -7;
/// Refused for safety: symlink, untrusted owner or group, a file open to
/// other users, or a POSIX ACL granting more than the mode.
pub const SCSP_E_PERM: c_int = -8;
/// A system call failed; `errno` holds the OS error.
pub const SCSP_E_IO: c_int = -9;
/// A bug in libscsp was caught before it could cross the ABI.
pub const SCSP_E_INTERNAL: c_int = -10;
/// An OpenSSL call failed inside the `scsp_openssl.h` helper (never returned
/// by libscsp itself, which does not link OpenSSL; named here for strerror).
pub const SCSP_E_OPENSSL: c_int = -11;

/// The message for a code, as a NUL-terminated static string.
pub fn message(code: c_int) -> &'static [u8] {
    match code {
        SCSP_OK => b"success\0",
        SCSP_E_NOT_FOUND => b"not found\0",
        SCSP_E_BUFFER => b"buffer too small (the size needed is in *val_len)\0",
        SCSP_E_TOO_LARGE => b"value larger than the segment's max_value\0",
        SCSP_E_INVAL => b"invalid argument\0",
        SCSP_E_CORRUPT => b"not an scsp segment, or its header is damaged\0",
        SCSP_E_VERSION => b"segment made by an incompatible scsp format or layout\0",
        SCSP_E_EXISTS => b"a file already exists at the path\0",
        SCSP_E_PERM => b"refused for safety (symlink, untrusted owner or group, open to other users, or an ACL)\0",
        SCSP_E_IO => b"system call failed (see errno)\0",
        SCSP_E_INTERNAL => b"internal error in libscsp (a bug; please report it)\0",
        SCSP_E_OPENSSL => {
            b"an OpenSSL call failed in the scsp_openssl.h helper (see ERR_get_error)\0"
        }
        _ => b"unknown scsp error code\0",
    }
}

/// `message` as a C string pointer (static, never freed).
pub fn message_ptr(code: c_int) -> *const c_char {
    message(code).as_ptr().cast()
}

/// The code for an open/create failure, and the errno to leave behind.
pub fn from_error(e: &scsp::Error) -> (c_int, Option<i32>) {
    use scsp::Error as E;
    match e {
        E::Io { source, .. } => (SCSP_E_IO, Some(source.raw_os_error().unwrap_or(libc::EIO))),
        E::AlreadyExists(_) => (SCSP_E_EXISTS, Some(libc::EEXIST)),
        E::Symlink(_)
        | E::ForeignOwner { .. }
        | E::UntrustedOwner { .. }
        | E::ForeignGroup { .. }
        | E::OpenToOthers { .. }
        | E::Acl { .. } => (SCSP_E_PERM, None),
        E::NotASegment(_) | E::Corrupt { .. } | E::NotReady(_) => (SCSP_E_CORRUPT, None),
        E::Version { .. } | E::Layout(_) => (SCSP_E_VERSION, None),
        E::Config(_) | E::InvalidField { .. } => (SCSP_E_INVAL, None),
        _ => (SCSP_E_INTERNAL, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_nul_terminated_message() {
        let codes = [
            SCSP_OK,
            SCSP_E_NOT_FOUND,
            SCSP_E_BUFFER,
            SCSP_E_TOO_LARGE,
            SCSP_E_INVAL,
            SCSP_E_CORRUPT,
            SCSP_E_VERSION,
            SCSP_E_EXISTS,
            SCSP_E_PERM,
            SCSP_E_IO,
            SCSP_E_INTERNAL,
            SCSP_E_OPENSSL,
        ];
        let mut seen = std::collections::HashSet::new();
        for c in codes {
            let m = message(c);
            assert_eq!(m.last(), Some(&0));
            assert_eq!(m.iter().filter(|&&b| b == 0).count(), 1);
            assert!(seen.insert(m), "code {c} shares a message");
        }
        assert_eq!(message(-999), b"unknown scsp error code\0");
    }
}
