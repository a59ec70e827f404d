//! Which page size backs a segment file.
//!
//! Every get and put touches an index bucket and an entry at random places
//! in the segment, so with 4 KiB pages both usually miss the TLB. 2 MiB
//! pages remove most of those misses (docs/operations.md, "Huge pages").
//! Whether a file gets them is decided by how its tmpfs is mounted
//! (`huge=always|within_size|advise`; scsp asks with `MADV_HUGEPAGE`, which
//! is what `advise` waits for), so `scsp stats` reports the mount's policy.

use std::path::Path;

/// The huge-page policy of the filesystem holding a segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PagePolicy {
    /// Filesystem type (`tmpfs`, `ext4`, ...), or `unknown`.
    pub fs_type: String,
    /// The tmpfs `huge=` mount option, if any.
    pub huge: Option<String>,
}

impl PagePolicy {
    /// Will the segment's pages be 2 MiB ones?
    pub fn huge_pages(&self) -> bool {
        self.fs_type == "tmpfs"
            && self
                .huge
                .as_deref()
                .is_some_and(|h| matches!(h, "always" | "within_size" | "advise"))
    }

    /// The policy of the filesystem `path` lives on (`/proc/self/mountinfo`).
    pub fn of(path: &Path) -> PagePolicy {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::from_mountinfo(&mountinfo, &path)
    }

    /// The policy of the innermost mount holding `path` (the last one listed
    /// wins among mounts stacked on one point).
    fn from_mountinfo(mountinfo: &str, path: &Path) -> PagePolicy {
        let mut best: Option<(usize, PagePolicy)> = None;
        for line in mountinfo.lines() {
            // id parent dev root MOUNT_POINT opts [optional...] - FSTYPE source SUPER_OPTS
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let (Some(point), mut right) = (left.split(' ').nth(4), right.split(' ')) else {
                continue;
            };
            let point = unescape(point);
            let depth = Path::new(&point).components().count();
            if !path.starts_with(&point) || best.as_ref().is_some_and(|(d, _)| depth < *d) {
                continue;
            }
            let fs_type = right.next().unwrap_or("unknown").to_string();
            let huge = right
                .nth(1)
                .and_then(|opts| opts.split(',').find_map(|o| o.strip_prefix("huge=")))
                .map(str::to_string);
            best = Some((depth, PagePolicy { fs_type, huge }));
        }
        best.map_or(
            PagePolicy {
                fs_type: "unknown".into(),
                huge: None,
            },
            |(_, p)| p,
        )
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
25 22 0:21 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k
31 22 0:30 / /run/scsp rw,relatime - tmpfs tmpfs rw,size=2097152k,huge=within_size,mode=755
32 22 0:31 / /run/with\\040space rw - tmpfs tmpfs rw,huge=advise
33 25 0:32 / /dev/shm rw - tmpfs tmpfs rw,huge=always
";

    fn at(p: &str) -> PagePolicy {
        PagePolicy::from_mountinfo(MOUNTINFO, Path::new(p))
    }

    #[test]
    fn innermost_and_last_stacked_mount_wins() {
        assert_eq!(at("/var/lib/x").fs_type, "ext4");
        assert!(!at("/var/lib/x").huge_pages());
        let p = at("/run/scsp/segment");
        assert_eq!(p.huge.as_deref(), Some("within_size"));
        assert!(p.huge_pages());
        // /dev/shm is mounted twice; the later mount (huge=always) is on top.
        assert_eq!(at("/dev/shm/scsp").huge.as_deref(), Some("always"));
        assert!(at("/run/with space/seg").huge_pages());
        // A sibling whose name merely starts with a mount point's name.
        assert_eq!(at("/run/scspx/seg").fs_type, "ext4");
    }

    #[test]
    fn tmpfs_without_huge_has_small_pages() {
        let info = "25 22 0:21 / /dev/shm rw - tmpfs tmpfs rw,size=1024k\n";
        let p = PagePolicy::from_mountinfo(info, Path::new("/dev/shm/seg"));
        assert_eq!((p.fs_type.as_str(), p.huge), ("tmpfs", None));
        let p = PagePolicy::from_mountinfo("garbage\n", Path::new("/x"));
        assert_eq!(p.fs_type, "unknown");
    }
}
