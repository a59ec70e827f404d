//! Creating and opening segment files: permissions, `O_NOFOLLOW`, mapping,
//! and the initialisation protocol.
//!
//! Creation never exposes a half-built segment: the creator builds it in an
//! unnamed file (`O_TMPFILE`; a private temporary name with `O_EXCL` where the
//! filesystem lacks it), reserves its memory, writes the header, publishes
//! READY, and only then `link(2)`s it to the real path, which fails if someone
//! else got there first. An opener therefore sees either nothing or a
//! finished segment, and a creator killed half-way leaves nothing behind.

use super::layout::{Geometry, H_STATE, MAGIC, MAGIC_SETS, PAGE};
use super::{Access, Backing, Segment};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::sync::Ordering;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

fn random_seed() -> [u64; 2] {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // getrandom only fails on ancient kernels; fall back to the clock
            // and pid, which is still unique per segment (the seed is a keyed
            // hash key against flooding, not a secret protecting sessions).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            return [t, std::process::id() as u64 ^ t.rotate_left(32)];
        }
    }
    [
        u64::from_le_bytes(buf[..8].try_into().unwrap_or_default()),
        u64::from_le_bytes(buf[8..].try_into().unwrap_or_default()),
    ]
}

/// Whether the file starts with a segment's magic word (read with
/// `pread`, before anything is mapped).
fn has_magic(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 8];
    file.read_exact_at(&mut magic, 0).is_ok()
        && [MAGIC, MAGIC_SETS].contains(&u64::from_le_bytes(magic))
}

/// A file with a segment's magic but `len` bytes, too short or not whole
/// words: a segment cut or extended by hand, damaged.
fn cut_short(path: &Path, len: u64) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        what: format!(
            "length mismatch: the file has {len} bytes, not a whole segment (truncated or \
             extended?)"
        ),
    }
}

fn map(path: &Path, file: &File, len: u64) -> Result<memmap2::MmapRaw> {
    let map = memmap2::MmapOptions::new()
        .len(len as usize)
        .map_raw(file)
        .map_err(|e| Error::io(path, "mmap", e))?;
    // Session state is key material: keep it out of core dumps.
    // SAFETY: the range is exactly the mapping we own; MADV_DONTDUMP changes
    // only what a core dump contains, not the memory's contents.
    let rc = unsafe { libc::madvise(map.as_mut_ptr().cast(), len as usize, libc::MADV_DONTDUMP) };
    if rc != 0 {
        return Err(Error::io(
            path,
            "madvise(MADV_DONTDUMP)",
            io::Error::last_os_error(),
        ));
    }
    // Ask for 2 MiB pages: on a tmpfs mounted with `huge=advise` this is
    // what enables them (fewer TLB misses on every get and put; see
    // docs/operations.md). Elsewhere it changes nothing, and a refusal (no
    // THP in this kernel) only leaves 4 KiB pages, so the result is ignored.
    // SAFETY: the same range as above; MADV_HUGEPAGE may change the page
    // size backing the mapping, never its contents.
    let _ = unsafe { libc::madvise(map.as_mut_ptr().cast(), len as usize, libc::MADV_HUGEPAGE) };
    Ok(map)
}

fn segment_from_map(
    path: &Path,
    file: &std::fs::Metadata,
    map: memmap2::MmapRaw,
    geo: Geometry,
) -> Segment {
    Segment {
        base: map.as_ptr() as *const crate::sync::AtomicU64,
        len_words: geo.total_words(),
        geo,
        // Absolute, so that `replaced` still finds the file after the
        // process changes directory (daemon(3) does).
        path: Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())),
        file_id: Some((file.dev(), file.ino())),
        _backing: Backing::Mapped(map),
    }
}

fn open_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::Symlink(path.to_path_buf()),
        Some(libc::EEXIST) => Error::AlreadyExists(path.to_path_buf()),
        _ => Error::io(path, "open", e),
    }
}

/// Where a new segment is built before it gets its name.
enum Staging {
    /// An unnamed file (`O_TMPFILE`): if the creator dies, nothing is left.
    Unnamed,
    /// A hidden temporary name, on filesystems without `O_TMPFILE`.
    Named(PathBuf),
}

/// Open the file a new segment is built in, in the directory of `path`.
fn stage(path: &Path, mode: u32) -> Result<(File, Staging)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Config(format!("{} has no file name", path.display())))?;
    let unnamed = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(mode)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir);
    match unnamed {
        Ok(file) => return Ok((file, Staging::Unnamed)),
        // The filesystem (or kernel) has no O_TMPFILE: use a hidden name.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {}
        // Errors name the path asked for, not the directory we opened.
        Err(e) => return Err(open_error(path, e)),
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:x}",
        name.to_string_lossy(),
        std::process::id(),
        random_seed()[0]
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| open_error(path, e))?;
    Ok((file, Staging::Named(tmp)))
}

/// Give the finished file its name; fails if `path` exists.
fn link(file: &File, staging: &Staging, path: &Path) -> Result<()> {
    let linked = match staging {
        // An unnamed file is linked through its /proc name.
        Staging::Unnamed => nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())),
            nix::fcntl::AT_FDCWD,
            path,
            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        )
        .map_err(io::Error::from),
        Staging::Named(tmp) => std::fs::hard_link(tmp, path),
    };
    linked.map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => Error::AlreadyExists(path.to_path_buf()),
        _ => Error::io(path, "link", e),
    })
}

/// Refuse a segment its filesystem has no room for, before touching a page:
/// on a tmpfs as large as RAM (the usual /dev/shm) memory runs out before
/// the filesystem does, and faulting the pages in would wake the OOM killer
/// instead of failing with ENOSPC.
fn check_room(path: &Path, file: &File, len: u64) -> Result<()> {
    let refuse = |errno: i32| {
        Err(Error::io(
            path,
            "reserve memory for",
            io::Error::from_raw_os_error(errno),
        ))
    };
    if let Ok(v) = nix::sys::statvfs::fstatvfs(file) {
        let free = v.blocks_available().saturating_mul(v.fragment_size());
        if len > free {
            return refuse(libc::ENOSPC);
        }
    }
    let in_memory = nix::sys::statfs::fstatfs(file)
        .is_ok_and(|f| f.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    if in_memory && available_memory().is_some_and(|m| len > m) {
        return refuse(libc::ENOMEM);
    }
    Ok(())
}

/// Memory a tmpfs file could still get: MemAvailable plus free swap, from
/// /proc/meminfo (`None` if it cannot be read).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |field: &str| {
        info.lines().find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some((kib("MemAvailable:")? + kib("SwapFree:").unwrap_or(0)) * 1024)
}

/// Give every page of a new segment its memory now, so that a full
/// filesystem is an error here instead of a SIGBUS in a worker later.
fn reserve(path: &Path, file: &File, map: &memmap2::MmapRaw) -> Result<()> {
    // Faulting the pages in through the mapping keeps MADV_HUGEPAGE's 2 MiB
    // pages on a `huge=advise` tmpfs (fallocate would give 4 KiB ones).
    // SAFETY: the range is exactly the mapping we own; MADV_POPULATE_WRITE
    // only allocates the pages (zero-filled, as a new file reads anyway).
    let rc = unsafe {
        libc::madvise(
            map.as_mut_ptr().cast(),
            map.len(),
            libc::MADV_POPULATE_WRITE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // An older kernel (EINVAL), or a page that could not be allocated
    // (EFAULT): posix_fallocate reserves the rest or says why not (ENOSPC).
    nix::fcntl::posix_fallocate(file, 0, map.len() as libc::off_t)
        .map_err(|e| Error::io(path, "reserve memory for", e.into()))
}

/// Whose segment we may trust: our own; with `allow_foreign_owner`, one
/// owned by root or the configured owner and belonging to the configured
/// group.
fn check_owner(path: &Path, meta: &std::fs::Metadata, access: Access) -> Result<()> {
    let ours = nix::unistd::geteuid().as_raw();
    let owner = meta.uid();
    if owner == ours {
        return Ok(());
    }
    if !access.allow_foreign_owner {
        return Err(Error::ForeignOwner {
            path: path.to_path_buf(),
            owner,
            ours,
        });
    }
    if owner != 0 && Some(owner) != access.owner {
        return Err(Error::UntrustedOwner {
            path: path.to_path_buf(),
            owner,
            trusted: access.owner,
        });
    }
    if Some(meta.gid()) != access.group {
        return Err(Error::ForeignGroup {
            path: path.to_path_buf(),
            group: meta.gid(),
            expected: access.group,
        });
    }
    Ok(())
}

/// The extended attribute holding a file's POSIX access ACL.
const ACL_XATTR: &std::ffi::CStr = c"system.posix_acl_access";

/// Refuse a file whose POSIX ACL grants more than its mode shows: a named
/// user or group with any permission, or a mask wider than the group bits
/// (`ls -l` shows the mask there, so a wider one cannot normally be set).
/// A filesystem without ACLs has nothing to refuse.
fn check_acl(path: &Path, file: &File, mode: u32) -> Result<()> {
    // The largest ACL a tmpfs keeps is far below this; a larger one is
    // refused by the kernel with ERANGE, which we refuse too.
    let mut buf = [0u8; 4096];
    // SAFETY: the buffer is ours and `buf.len()` long; the name is a
    // NUL-terminated C string; fgetxattr writes at most `buf.len()` bytes.
    let n = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            ACL_XATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA | libc::EOPNOTSUPP) => Ok(()),
            Some(libc::ERANGE) => Err(Error::Acl {
                path: path.to_path_buf(),
                grants: "is too large to read".into(),
            }),
            _ => Err(Error::io(path, "read the ACL of", e)),
        };
    }
    match acl_grants(&buf[..n as usize], mode) {
        Some(grants) => Err(Error::Acl {
            path: path.to_path_buf(),
            grants,
        }),
        None => Ok(()),
    }
}

/// What an ACL (the kernel's xattr form: a 4-byte version, then 8-byte
/// entries of tag, permissions and id, little-endian) grants beyond `mode`,
/// described; `None` if nothing.
pub(crate) fn acl_grants(acl: &[u8], mode: u32) -> Option<String> {
    const ACL_USER: u16 = 0x02;
    const ACL_GROUP: u16 = 0x08;
    const ACL_MASK: u16 = 0x10;
    let perms = |p: u16| {
        format!(
            "{}{}{}",
            if p & 4 != 0 { 'r' } else { '-' },
            if p & 2 != 0 { 'w' } else { '-' },
            if p & 1 != 0 { 'x' } else { '-' }
        )
    };
    if acl.len() < 4 || (acl.len() - 4) % 8 != 0 {
        return Some("cannot be read (malformed)".into());
    }
    let mut found = Vec::new();
    for e in acl[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]) & 7;
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        match tag {
            ACL_USER if perm != 0 => found.push(format!("gives user {id} {}", perms(perm))),
            ACL_GROUP if perm != 0 => found.push(format!("gives group {id} {}", perms(perm))),
            ACL_MASK if u32::from(perm) & !((mode >> 3) & 7) != 0 => found.push(format!(
                "has a mask {} wider than the group bits {}",
                perms(perm),
                perms(((mode >> 3) & 7) as u16)
            )),
            _ => {}
        }
    }
    (!found.is_empty()).then(|| found.join(", "))
}

/// Drop an access ACL a new file inherited from its directory's default
/// ACL: the segment gets exactly the mode asked for. A filesystem without
/// ACLs has none to drop.
fn drop_inherited_acl(path: &Path, file: &File) -> Result<()> {
    // SAFETY: the name is a NUL-terminated C string; the call only removes
    // an attribute of the file we hold open.
    let rc = unsafe { libc::fremovexattr(file.as_raw_fd(), ACL_XATTR.as_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA | libc::EOPNOTSUPP) => Ok(()),
        _ => Err(Error::io(path, "remove the inherited ACL of", e)),
    }
}

impl Segment {
    /// Create a new segment at `path`; fails with [`Error::AlreadyExists`] if
    /// there is one. The file gets exactly `cfg.mode` (umask does not apply;
    /// an ACL inherited from the directory is removed), and all its memory
    /// up front. A mode giving "other" any permission is refused.
    pub fn create(path: &Path, cfg: &Config) -> Result<Segment> {
        let mut geo = Geometry::from_config(cfg)?;
        geo.seed = random_seed();
        geo.created = crate::clock::now_secs();
        let (file, staging) = stage(path, cfg.mode)?;
        let result = Self::build_then_link(&file, &staging, path, cfg, geo);
        if let Staging::Named(tmp) = &staging {
            let _ = std::fs::remove_file(tmp);
        }
        result
    }

    fn build_then_link(
        file: &File,
        staging: &Staging,
        path: &Path,
        cfg: &Config,
        geo: Geometry,
    ) -> Result<Segment> {
        if let Some(gid) = cfg.group {
            nix::unistd::fchown(file, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| Error::io(path, "fchown (group)", e.into()))?;
        }
        // A default ACL on the directory gives new files named users and
        // groups: the segment gets only its mode.
        drop_inherited_acl(path, file)?;
        // After fchown: changing the group may clear mode bits.
        nix::sys::stat::fchmod(file, nix::sys::stat::Mode::from_bits_truncate(cfg.mode))
            .map_err(|e| Error::io(path, "fchmod", e.into()))?;
        file.set_len(geo.total_len)
            .map_err(|e| Error::io(path, "ftruncate", e))?;
        check_room(path, file, geo.total_len)?;
        let map = map(path, file, geo.total_len)?;
        reserve(path, file, &map)?;
        // The link below gives `path` this very inode.
        let meta = file.metadata().map_err(|e| Error::io(path, "fstat", e))?;
        let seg = segment_from_map(path, &meta, map, geo);
        seg.write_header();
        link(file, staging, path)?;
        Ok(seg)
    }

    /// Open and validate an existing segment. Refused: a symlink; a file of
    /// another user unless `access` trusts it (see [`Access`]); a file
    /// giving "other" any permission; a file whose POSIX ACL grants more
    /// than its mode shows.
    pub fn open(path: &Path, access: Access) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, "fstat", e))?;
        // What is no segment at all is said first: a mistyped path must not
        // get advice to change another file's owner or mode.
        if !meta.file_type().is_file() || !has_magic(&file) {
            return Err(Error::NotASegment(path.to_path_buf()));
        }
        check_owner(path, &meta, access)?;
        if meta.mode() & 0o007 != 0 {
            return Err(Error::OpenToOthers {
                path: path.to_path_buf(),
                mode: meta.mode() & 0o7777,
            });
        }
        check_acl(path, &file, meta.mode())?;
        let len = meta.len();
        if len < PAGE || len % 8 != 0 {
            return Err(cut_short(path, len));
        }
        let map = map(path, &file, len)?;
        // Read the header through atomics: the file is shared.
        // SAFETY: the mapping is at least one page, page-aligned, and lives in
        // `map` until the end of this function or is moved into the Segment.
        let header: &[crate::sync::AtomicU64] =
            unsafe { std::slice::from_raw_parts(map.as_ptr().cast(), H_STATE + 1) };
        // Pairs with the Release store of READY in `write_header`.
        let state = header[H_STATE].load(Ordering::Acquire);
        let mut words = [0u64; H_STATE + 1];
        for (i, w) in header.iter().enumerate() {
            words[i] = w.load(Ordering::Relaxed);
        }
        words[H_STATE] = state;
        let geo = Geometry::from_header(path, &words, len)?;
        Ok(segment_from_map(path, &meta, map, geo))
    }

    /// Open the segment at `path`, creating it with `cfg` if there is none.
    /// Safe to race: exactly one process creates, the others open.
    pub fn open_or_create(path: &Path, cfg: &Config) -> Result<Segment> {
        for _ in 0..3 {
            match Self::open(path, cfg.into()) {
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                other => return other,
            }
            match Self::create(path, cfg) {
                Err(Error::AlreadyExists(_)) => continue,
                other => return other,
            }
        }
        Self::open(path, cfg.into())
    }
}

/// Remove a segment file. Processes that have it mapped keep working on their
/// copy until they reopen.
pub fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| Error::io(path, "unlink", e))
}

#[cfg(test)]
mod tests {
    use super::acl_grants;

    /// The kernel's xattr form of an ACL: version 2, then (tag, perm, id).
    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    const USER_OBJ: u16 = 0x01;
    const USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const GROUP: u16 = 0x08;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    const NONE: u32 = u32::MAX;

    #[test]
    fn a_minimal_acl_grants_nothing_beyond_the_mode() {
        let base = [(USER_OBJ, 6, NONE), (GROUP_OBJ, 6, NONE), (OTHER, 0, NONE)];
        assert_eq!(acl_grants(&acl(&base), 0o660), None);
        // A mask equal to the group bits, and a named entry with nothing.
        let masked = [
            (USER_OBJ, 6, NONE),
            (USER, 0, 1001),
            (GROUP_OBJ, 6, NONE),
            (MASK, 6, NONE),
            (OTHER, 0, NONE),
        ];
        assert_eq!(acl_grants(&acl(&masked), 0o660), None);
    }

    #[test]
    fn named_entries_and_a_wide_mask_are_reported() {
        let named = [
            (USER_OBJ, 6, NONE),
            (USER, 6, 1001),
            (GROUP, 4, 2002),
            (GROUP_OBJ, 0, NONE),
            (MASK, 6, NONE),
            (OTHER, 0, NONE),
        ];
        let text = acl_grants(&acl(&named), 0o660).unwrap();
        assert!(text.contains("user 1001 rw-"), "{text}");
        assert!(text.contains("group 2002 r--"), "{text}");
        // The mode shows no group bits, the mask gives rw.
        let wide = [(USER_OBJ, 6, NONE), (MASK, 6, NONE), (OTHER, 0, NONE)];
        let text = acl_grants(&acl(&wide), 0o600).unwrap();
        assert!(
            text.contains("mask rw- wider than the group bits ---"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_acl_is_refused() {
        assert!(acl_grants(&[2, 0, 0], 0o600).is_some());
        assert!(acl_grants(&[2, 0, 0, 0, 1, 0, 6], 0o600).is_some());
    }
}
