//! The C structs of the ABI (`scsp_options`, `scsp_stats`) and how versioned
//! structs are read and written.
//!
//! Both structs start with `struct_size`, set by the caller to
//! `sizeof(struct)` as its header declares it. This lets the struct grow in
//! later ABI versions without breaking old binaries:
//! - a struct smaller than the version-1 size is refused (`SCSP_E_INVAL`);
//! - options larger than ours are accepted only if the bytes we do not know
//!   are zero (a newer caller asking for something we cannot do is refused,
//!   not silently ignored — the rule of Linux's `openat2`);
//! - stats larger than ours get our fields filled and the rest left alone.

use crate::codes::{SCSP_E_INVAL, SCSP_OK};
use std::ffi::c_int;

/// Open only an existing segment; never create one.
pub const SCSP_OPEN_NO_CREATE: u32 = 1;
/// Create a new segment; fail with `SCSP_E_EXISTS` if one exists.
pub const SCSP_OPEN_EXCL: u32 = 2;
/// Accept a segment owned by another user.
pub const SCSP_OPEN_ALLOW_FOREIGN_OWNER: u32 = 4;
/// The segment's group is `group`: a new segment gets it (use with
/// `mode = 0660`), and with `SCSP_OPEN_ALLOW_FOREIGN_OWNER` a segment of
/// another user must belong to it.
pub const SCSP_OPEN_SET_GROUP: u32 = 8;
/// A new segment is of the sets layout (`scsp::Layout::Sets`).
pub const SCSP_OPEN_LAYOUT_SETS: u32 = 16;
const KNOWN_FLAGS: u32 = SCSP_OPEN_NO_CREATE
    | SCSP_OPEN_EXCL
    | SCSP_OPEN_ALLOW_FOREIGN_OWNER
    | SCSP_OPEN_SET_GROUP
    | SCSP_OPEN_LAYOUT_SETS;

/// How `scsp_open` creates or attaches. Zero in a field means "default".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct scsp_options {
    /// `sizeof(scsp_options)` as the caller's header declares it.
    pub struct_size: u32,
    /// `SCSP_OPEN_*` bits.
    pub flags: u32,
    /// Bytes of session log for a new segment (0: 64 MiB).
    pub size_bytes: u64,
    /// Largest value for a new segment (0: 8192; power of two, 256..=65536).
    pub max_value: u32,
    /// Shards of a new segment (0: 16; power of two).
    pub shards: u32,
    /// Permission bits of a new segment file (0: 0600).
    pub mode: u32,
    /// Origin id stamped on entries (0: 1).
    pub host_id: u32,
    /// Group id, used with `SCSP_OPEN_SET_GROUP`: given to a new file, and
    /// required of a segment of another user.
    pub group: u32,
    /// About how large most values are, for a new segment's index (0: 176;
    /// 64..=max_value). Was `reserved` (must be 0) before: same layout.
    pub typical_value: u32,
    /// Seconds between ticket key rotations (0: 6 hours).
    pub ticket_period_secs: u32,
    /// Seconds a ticket stays valid (0: 12 hours; at most twice the period).
    pub ticket_lifetime_secs: u32,
    /// With `SCSP_OPEN_ALLOW_FOREIGN_OWNER`: the uid, besides root, a
    /// segment of another user may be owned by (0: root only). Added after
    /// version 1's 48 bytes: a caller whose `struct_size` is 48 has it 0.
    pub owner: u32,
    /// Must be 0 (room for a later field).
    pub reserved: u32,
}

/// Size of the version-1 `scsp_options` (the smallest accepted).
pub const OPTIONS_V1_SIZE: usize = 48;
/// Size of `scsp_options` with `owner` (this library's).
pub const OPTIONS_SIZE: usize = 56;
const _: () = assert!(std::mem::size_of::<scsp_options>() == OPTIONS_SIZE);

/// What `scsp_open` should do, decoded from `scsp_options`.
#[derive(Debug)]
pub struct OpenPlan {
    /// Geometry and permissions for a new segment; access rules for any.
    pub config: scsp::Config,
    /// Attach only (`SCSP_OPEN_NO_CREATE`).
    pub no_create: bool,
    /// Create only (`SCSP_OPEN_EXCL`).
    pub excl: bool,
    /// Ticket key rotation for this handle's key ring.
    pub tickets: scsp::keyring::RotationPolicy,
}

/// Defaults: what a NULL `opts` means.
pub fn default_options() -> scsp_options {
    let d = scsp::Config::default();
    scsp_options {
        struct_size: OPTIONS_SIZE as u32,
        flags: 0,
        size_bytes: d.size,
        max_value: d.max_value,
        shards: d.shards,
        mode: d.mode,
        host_id: d.host_id,
        group: 0,
        typical_value: 0,
        ticket_period_secs: 0,
        ticket_lifetime_secs: 0,
        owner: 0,
        reserved: 0,
    }
}

/// Read a caller's options following the versioning rule above.
///
/// # Safety
/// `p` must be NULL or point to at least `(*p).struct_size` readable bytes
/// (the caller promises this by the ABI contract).
pub unsafe fn read_options(p: *const scsp_options) -> Result<scsp_options, String> {
    if p.is_null() {
        return Ok(default_options());
    }
    // SAFETY: p is non-NULL and, by the contract, points to at least
    // struct_size >= 4 bytes; read the size field unaligned-tolerant.
    let size = unsafe { std::ptr::read_unaligned(p.cast::<u32>()) } as usize;
    if size < OPTIONS_V1_SIZE {
        return Err(format!(
            "opts->struct_size is {size}, at least {OPTIONS_V1_SIZE} is needed; set it to sizeof(scsp_options)"
        ));
    }
    if size > 4096 {
        return Err(format!(
            "opts->struct_size is {size}, which is not a size of scsp_options; set it to sizeof(scsp_options)"
        ));
    }
    // Fields past the caller's struct_size (an older caller's struct) are 0.
    let mut o = scsp_options::default();
    let known = size.min(OPTIONS_SIZE);
    // SAFETY: the caller's struct holds `size` >= `known` readable bytes;
    // `o` is a plain struct of OPTIONS_SIZE >= `known` bytes (u32 and u64
    // fields: any bytes are valid values); the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            p.cast::<u8>(),
            std::ptr::addr_of_mut!(o).cast::<u8>(),
            known,
        )
    };
    if size > OPTIONS_SIZE {
        // SAFETY: bytes OPTIONS_SIZE..size are inside the caller's struct.
        let tail = unsafe {
            std::slice::from_raw_parts(p.cast::<u8>().add(OPTIONS_SIZE), size - OPTIONS_SIZE)
        };
        if tail.iter().any(|&b| b != 0) {
            return Err(
                "opts has non-zero fields this libscsp does not know; upgrade libscsp or clear them"
                    .into(),
            );
        }
    }
    if o.reserved != 0 {
        return Err(format!(
            "opts->reserved is {}; it must be 0 (start from SCSP_OPTIONS_INIT)",
            o.reserved
        ));
    }
    Ok(o)
}

/// Turn options into a plan, applying defaults to zero fields.
pub fn plan(o: &scsp_options) -> Result<OpenPlan, String> {
    if o.flags & !KNOWN_FLAGS != 0 {
        return Err(format!(
            "opts->flags has unknown bits {:#x}; use only SCSP_OPEN_* flags",
            o.flags & !KNOWN_FLAGS
        ));
    }
    if o.flags & SCSP_OPEN_NO_CREATE != 0 && o.flags & SCSP_OPEN_EXCL != 0 {
        return Err("SCSP_OPEN_NO_CREATE and SCSP_OPEN_EXCL exclude each other; pick one".into());
    }
    let d = scsp::Config::default();
    let or = |v: u32, def: u32| if v == 0 { def } else { v };
    let layout = if o.flags & SCSP_OPEN_LAYOUT_SETS != 0 {
        scsp::Layout::Sets
    } else {
        scsp::Layout::Log
    };
    // The sets layout's default slot is `scsp create --layout sets`'s.
    let max_value = match layout {
        scsp::Layout::Log => d.max_value,
        scsp::Layout::Sets => scsp::config::DEFAULT_SETS_MAX_VALUE,
    };
    let config = scsp::Config {
        layout,
        size: if o.size_bytes == 0 {
            d.size
        } else {
            o.size_bytes
        },
        shards: or(o.shards, d.shards),
        max_value: or(o.max_value, max_value),
        typical_value: or(o.typical_value, d.typical_value),
        host_id: or(o.host_id, d.host_id),
        mode: or(o.mode, d.mode),
        group: (o.flags & SCSP_OPEN_SET_GROUP != 0).then_some(o.group),
        // Root always owns a segment trustworthily: 0 needs no naming.
        owner: (o.owner != 0).then_some(o.owner),
        allow_foreign_owner: o.flags & SCSP_OPEN_ALLOW_FOREIGN_OWNER != 0,
    };
    let mut tickets = scsp::keyring::RotationPolicy::default();
    if o.ticket_period_secs != 0 {
        tickets.period = std::time::Duration::from_secs(o.ticket_period_secs.into());
    }
    if o.ticket_lifetime_secs != 0 {
        tickets.lifetime = std::time::Duration::from_secs(o.ticket_lifetime_secs.into());
    } else if o.ticket_period_secs != 0 {
        // Keep the default lifetime legal for a short period.
        tickets.lifetime = tickets.lifetime.min(2 * tickets.period);
    }
    tickets.validate().map_err(|e| match &e {
        scsp::Error::InvalidField {
            field: "period", ..
        } => format!("{e} (fix opts->ticket_period_secs)"),
        _ => format!("{e} (fix opts->ticket_lifetime_secs, or opts->ticket_period_secs)"),
    })?;
    Ok(OpenPlan {
        config,
        tickets,
        no_create: o.flags & SCSP_OPEN_NO_CREATE != 0,
        excl: o.flags & SCSP_OPEN_EXCL != 0,
    })
}

/// The `scsp_options` field that sets a [`scsp::Config`] field (as
/// [`scsp::Error::InvalidField`] names it).
pub fn c_field(config_field: &str) -> &str {
    match config_field {
        "size" => "size_bytes",
        // max_value, shards, host_id, mode, typical_value, group, owner:
        // the same names in C.
        other => other,
    }
}

/// Counters and geometry, as `scsp_stats` returns them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[allow(non_camel_case_types)]
pub struct scsp_stats {
    /// `sizeof(scsp_stats)` as the caller's header declares it.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// The table's counters, in the order of [`scsp::stats::COUNTERS`]:
    /// named fields (`hits`, `misses`, ...) in `scsp.h`, which a test
    /// checks against that list.
    pub counters: [u64; scsp::stats::COUNTERS.len()],
    /// Live processes holding a counter slot now: at most 1023 (handles
    /// beyond share slot 0, which is not counted).
    pub processes: u64,
    /// Bytes of session log (all shards).
    pub capacity_bytes: u64,
    /// Number of shards.
    pub shards: u64,
    /// Index slots.
    pub index_slots: u64,
    /// Largest value accepted.
    pub max_value: u64,
    /// Host id stamped on entries.
    pub host_id: u64,
    /// Creation time of the segment, unix seconds.
    pub created: u64,
    /// Bytes ever appended (sum of shard tails).
    pub appended_bytes: u64,
    /// Fraction of the log holding data, 0.0 to 1.0.
    pub log_fill: f64,
}

/// Size of the version-1 `scsp_stats`.
pub const STATS_V1_SIZE: usize = 168;
const _: () = assert!(std::mem::size_of::<scsp_stats>() == STATS_V1_SIZE);

impl From<&scsp::Stats> for scsp_stats {
    fn from(s: &scsp::Stats) -> Self {
        let c = &s.counters;
        scsp_stats {
            struct_size: STATS_V1_SIZE as u32,
            reserved: 0,
            counters: std::array::from_fn(|i| c.get(scsp::stats::COUNTERS[i].counter)),
            processes: c.processes,
            capacity_bytes: s.capacity_bytes,
            shards: s.shards,
            index_slots: s.index_slots,
            max_value: s.max_value,
            host_id: s.host_id,
            created: s.created,
            appended_bytes: s.appended_bytes,
            log_fill: s.log_fill,
        }
    }
}

/// Write stats into the caller's struct, keeping its `struct_size`.
///
/// # Safety
/// `out` must be non-NULL and point to at least `(*out).struct_size`
/// writable bytes.
pub unsafe fn write_stats(out: *mut scsp_stats, s: &scsp_stats) -> c_int {
    // SAFETY: out is non-NULL and holds at least 4 bytes by contract.
    let size = unsafe { std::ptr::read_unaligned(out.cast::<u32>()) } as usize;
    if size < STATS_V1_SIZE {
        return SCSP_E_INVAL;
    }
    let mut s = *s;
    s.struct_size = size as u32;
    // SAFETY: the caller's struct holds size >= STATS_V1_SIZE writable bytes;
    // we write exactly STATS_V1_SIZE of them.
    unsafe { std::ptr::write_unaligned(out, s) };
    SCSP_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `struct scsp_stats` in `scsp.h`: each field's name and its offset
    /// computed from the C types, in order.
    fn header_stats_fields() -> Vec<(String, usize)> {
        let h = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/scsp.h"))
            .unwrap();
        let body = h.split("struct scsp_stats {").nth(1).unwrap();
        let body = body.split("};").next().unwrap();
        let mut at = 0usize;
        let mut out = Vec::new();
        for line in body.lines() {
            let decl = line.split("/*").next().unwrap().trim();
            let Some(decl) = decl.strip_suffix(';') else {
                continue;
            };
            let (ty, name) = decl.rsplit_once(' ').unwrap();
            let size = match ty.trim() {
                "uint32_t" => 4,
                "uint64_t" | "double" => 8,
                other => panic!("unexpected type {other} in struct scsp_stats"),
            };
            at = at.next_multiple_of(size);
            out.push((name.to_string(), at));
            at += size;
        }
        out
    }

    #[test]
    fn the_c_header_declares_every_counter_by_name_at_its_offset() {
        use std::mem::offset_of;
        let header = header_stats_fields();
        let counters = scsp::stats::COUNTERS
            .iter()
            .enumerate()
            .map(|(i, c)| (c.field, offset_of!(scsp_stats, counters) + 8 * i));
        let ours: Vec<(String, usize)> = [
            ("struct_size", offset_of!(scsp_stats, struct_size)),
            ("reserved", offset_of!(scsp_stats, reserved)),
        ]
        .into_iter()
        .chain(counters)
        .chain([
            ("processes", offset_of!(scsp_stats, processes)),
            ("capacity_bytes", offset_of!(scsp_stats, capacity_bytes)),
            ("shards", offset_of!(scsp_stats, shards)),
            ("index_slots", offset_of!(scsp_stats, index_slots)),
            ("max_value", offset_of!(scsp_stats, max_value)),
            ("host_id", offset_of!(scsp_stats, host_id)),
            ("created", offset_of!(scsp_stats, created)),
            ("appended_bytes", offset_of!(scsp_stats, appended_bytes)),
            ("log_fill", offset_of!(scsp_stats, log_fill)),
        ])
        .map(|(n, o)| (n.to_string(), o))
        .collect();
        assert_eq!(
            header, ours,
            "include/scsp.h and scsp::stats::COUNTERS disagree"
        );
        let end = header.last().unwrap().1 + 8;
        assert_eq!(end, STATS_V1_SIZE);
    }

    #[test]
    fn zero_fields_mean_defaults() {
        let o = scsp_options {
            struct_size: OPTIONS_V1_SIZE as u32,
            ..Default::default()
        };
        // SAFETY: o is a live struct of OPTIONS_SIZE >= struct_size bytes.
        let o = unsafe { read_options(&o) }.unwrap();
        let p = plan(&o).unwrap();
        assert_eq!(p.config, scsp::Config::default());
        assert!(!p.no_create && !p.excl);
    }

    #[test]
    fn typical_value_sizes_the_index_and_bad_ones_are_refused_by_name() {
        let mut o = default_options();
        o.typical_value = 1024;
        assert_eq!(plan(&o).unwrap().config.typical_value, 1024);
        o.typical_value = 16;
        let err = scsp::segment::Geometry::from_config(&plan(&o).unwrap().config).unwrap_err();
        assert!(err.to_string().contains("typical value"), "{err}");
    }

    #[test]
    fn unknown_flags_and_contradictions_are_refused() {
        let mut o = default_options();
        o.flags = 1 << 20;
        assert!(plan(&o).unwrap_err().contains("unknown bits"));
        o.flags = SCSP_OPEN_NO_CREATE | SCSP_OPEN_EXCL;
        assert!(plan(&o).is_err());
    }

    #[test]
    fn a_version_1_struct_has_no_owner_and_a_newer_one_does() {
        let mut o = default_options();
        o.owner = 1234;
        // A version-1 caller's struct ends before `owner`: what lies there
        // is not its data, and is not read.
        o.struct_size = OPTIONS_V1_SIZE as u32;
        // SAFETY: o is a live struct of OPTIONS_SIZE >= struct_size bytes.
        let read = unsafe { read_options(&o) }.unwrap();
        assert_eq!((read.owner, plan(&read).unwrap().config.owner), (0, None));
        o.struct_size = OPTIONS_SIZE as u32;
        // SAFETY: as above.
        let read = unsafe { read_options(&o) }.unwrap();
        assert_eq!(plan(&read).unwrap().config.owner, Some(1234));
        o.reserved = 7;
        // SAFETY: as above.
        let err = unsafe { read_options(&o) }.unwrap_err();
        assert!(err.contains("opts->reserved"), "{err}");
    }

    #[test]
    fn larger_struct_needs_a_zero_tail() {
        #[repr(C)]
        struct Bigger {
            o: scsp_options,
            extra: u64,
        }
        let mut b = Bigger {
            o: default_options(),
            extra: 0,
        };
        b.o.struct_size = std::mem::size_of::<Bigger>() as u32;
        // SAFETY: b is a live, fully initialised struct of struct_size bytes.
        assert!(unsafe { read_options(&b.o) }.is_ok());
        b.extra = 1;
        // SAFETY: as above.
        assert!(unsafe { read_options(&b.o) }.is_err());
        b.o.struct_size = 8;
        // SAFETY: as above (a smaller claimed size is still inside b).
        assert!(unsafe { read_options(&b.o) }.is_err());
    }
}
