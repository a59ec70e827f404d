//! Whole groups of four value words copied in or out of a shard log and
//! added to the entry checksum in the same pass: one 32-byte vector step per
//! group where the CPU has AVX2, word by word through `AtomicU64` elsewhere
//! (and under loom and Miri). Both paths compute the same [`ValueSum`]: a
//! group's four words go into lanes 0..=3, which is what a vector register's
//! four elements are. A whole value that does not wrap is copied in one
//! block ([`load_value`], [`store_value`]), its last partial group
//! included, so that the sums never leave the registers (a 32-byte load of
//! sums just stored in smaller pieces waits for the stores to drain; that
//! and the word-by-word tail made up most of what a hit cost over rustls's
//! in-process cache, and a fifth of a put).
//!
//! Why assembly: the log is written by other processes while we read it, so
//! Rust may touch it only through atomics (docs/architecture.md, I5
//! ATOMIC-ONLY), and a loop of `AtomicU64` loads does not vectorise. To the
//! compiler an `asm!` block is a call to unknown code that may read and
//! write the memory it is given (the Reference gives it the semantics of an
//! FFI call): it assumes nothing about those bytes, so no Rust-level access
//! races with the other processes' stores. What the block must do for the table's protocol is
//! what every word load and store of the atomic path does, and the x86-64
//! memory model gives it:
//! - its loads happen before `get`'s later re-read of the shard tail (loads
//!   are not reordered with older loads; the `fence(Acquire)` after the
//!   copy keeps the compiler from moving the tail load up);
//! - its stores happen after `put`'s reservation (`fetch_add` on the tail,
//!   a locked instruction, then `fence(Release)`) and before its publishing
//!   CAS (stores are not reordered with older stores, nor with a later
//!   locked instruction).
//!
//! A 32-byte access is not promised to be atomic as a whole (nor is an
//! entry anyway): bytes read while another process writes them may be a
//! mix of old and new, as with word loads, and the checksum and the tail
//! check after the copy turn that into a miss.
//!
//! Why a vector path at all: it is what brings a cold 1 KiB hit level with
//! rustls's in-memory cache; the word loop with the same sums is about 15 %
//! slower there (docs/journal/perf-table-format-5.md, "Fletcher lanes, a
//! vector copy, and an index sized for the values").

use super::entry::ValueSum;
use crate::sync::{AtomicU64, Ordering};

/// Copy `run` (a whole number of 4-word groups of the log) into `dst`
/// (`8 * run.len()` bytes), adding each word to `sum`.
#[inline(always)]
pub(super) fn load(run: &[AtomicU64], dst: &mut [u8], sum: &mut ValueSum) {
    debug_assert!(run.len() % 4 == 0 && dst.len() == run.len() * 8);
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    if let (groups @ 1.., true) = (run.len().min(dst.len() / 8) / 4, avx2::available()) {
        // SAFETY: `run` holds at least `4 * groups` words (32 bytes each
        // group) readable for the borrow, and `dst` at least `32 * groups`
        // writable bytes that nothing else borrows; the two do not overlap
        // (`dst` is a `&mut` borrow, the log is only ever borrowed
        // shared). The CPU has AVX2 (checked just above).
        unsafe { avx2::copy(run.as_ptr().cast(), dst.as_mut_ptr(), groups, sum) };
        return;
    }
    load_words(run, dst, sum);
}

/// Copy a whole value, `dst.len()` bytes, out of `run` (its words, exactly
/// `dst.len().div_ceil(8)`, not wrapping), and return each checksum lane's
/// `a ^ b.rotate_left(32)` for the checksum started from `seed` (`lanes`
/// are `SUM_LANES`): the groups, then the last partial group, with the
/// sums in registers throughout. `None` where the CPU lacks AVX2 or the
/// value is shorter than one group (the caller takes the general path).
#[inline(always)]
pub(super) fn load_value(
    run: &[AtomicU64],
    dst: &mut [u8],
    seed: u64,
    lanes: &[u64; 4],
) -> Option<[u64; 4]> {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    if dst.len() >= 32 && run.len() == dst.len().div_ceil(8) && avx2::available() {
        // SAFETY: `run` holds `dst.len().div_ceil(8)` words, so at least
        // `dst.len()` readable bytes; `dst` is `dst.len()` writable bytes
        // that nothing else borrows, not overlapping the log; `dst.len()`
        // is at least 32; the CPU has AVX2 (checked just above).
        return Some(unsafe {
            avx2::copy_value(
                run.as_ptr().cast(),
                dst.as_mut_ptr(),
                dst.len(),
                seed,
                lanes,
            )
        });
    }
    let _ = (run, dst, seed, lanes);
    None
}

/// `load_value`'s other direction: store the value `src` into `run` (its
/// words, exactly `src.len().div_ceil(8)`, not wrapping), zero-padding the
/// last word, and return each checksum lane's `a ^ b.rotate_left(32)`.
/// `None` where the CPU lacks AVX2 or the value is shorter than one group.
#[inline(always)]
pub(super) fn store_value(
    run: &[AtomicU64],
    src: &[u8],
    seed: u64,
    lanes: &[u64; 4],
) -> Option<[u64; 4]> {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    if src.len() >= 32 && run.len() == src.len().div_ceil(8) && avx2::available() {
        // SAFETY: `src` is `src.len()` (at least 32) readable bytes; `run`
        // holds `src.len().div_ceil(8)` words of the log, written through
        // atomics or these blocks only, which a private `&[u8]` never
        // aliases; the CPU has AVX2 (checked just above).
        return Some(unsafe {
            avx2::store_value(
                src.as_ptr(),
                run.as_ptr() as *mut u8,
                src.len(),
                seed,
                lanes,
            )
        });
    }
    let _ = (run, src, seed, lanes);
    None
}

/// `load` one word at a time.
#[inline(always)]
fn load_words(run: &[AtomicU64], dst: &mut [u8], sum: &mut ValueSum) {
    for (q, r) in dst.chunks_exact_mut(32).zip(run.chunks_exact(4)) {
        for (lane, (chunk, word)) in q.chunks_exact_mut(8).zip(r).enumerate() {
            let w = word.load(Ordering::Relaxed);
            chunk.copy_from_slice(&w.to_le_bytes());
            sum.add(lane, w);
        }
    }
}

/// Copy `src` (a whole number of 32-byte groups) into `run` (`src.len() / 8`
/// words of the log), adding each word to `sum`.
#[inline]
pub(super) fn store(run: &[AtomicU64], src: &[u8], sum: &mut ValueSum) {
    debug_assert!(src.len() % 32 == 0 && src.len() == run.len() * 8);
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    if let (groups @ 1.., true) = (run.len().min(src.len() / 8) / 4, avx2::available()) {
        // SAFETY: `src` holds at least `32 * groups` readable bytes and
        // `run` at least `4 * groups` words of the log, mapped for the
        // borrow and written through atomics or this block only (a private
        // `&[u8]` never aliases the shared log). The CPU has AVX2.
        unsafe { avx2::copy(src.as_ptr(), run.as_ptr() as *mut u8, groups, sum) };
        return;
    }
    store_words(run, src, sum);
}

/// `store` one word at a time.
#[inline(always)]
fn store_words(run: &[AtomicU64], src: &[u8], sum: &mut ValueSum) {
    for (q, r) in src.chunks_exact(32).zip(run.chunks_exact(4)) {
        for (lane, (chunk, word)) in q.chunks_exact(8).zip(r).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let w = u64::from_le_bytes(b);
            word.store(w, Ordering::Relaxed);
            sum.add(lane, w);
        }
    }
}

/// The checksum steps of one group in register `$w` (clobbered), for
/// the `avx2` assembly: `lo = w & m`, `hi = w >> 32`; `u = a + lo`,
/// `a = u + hi`; `b += u + a` (the sums after each half).
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
#[rustfmt::skip] // one instruction per line
macro_rules! sum_group {
    ($w:literal) => {
        concat!(
            "vpand {lo}, ", $w, ", {m}\n",
            "vpsrlq ", $w, ", ", $w, ", 32\n",
            "vpaddq {u}, {a}, {lo}\n",
            "vpaddq {a}, {u}, ", $w, "\n",
            "vpaddq {u}, {u}, {a}\n",
            "vpaddq {b}, {b}, {u}",
        )
    };
}

/// The start of `avx2::copy_value` and `avx2::store_value`: the lanes'
/// sums from the seed (`a = seed ^ lanes[l]`, `b = 0`), `{m}` =
/// 0x00000000ffffffff in every element, then every whole group moved from
/// `{src}` to `{dst}` and summed. Leaves `{sg}` and `{dg}` at the groups'
/// ends (the partial group's start).
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
#[rustfmt::skip] // one instruction per line
macro_rules! value_groups {
    () => {
        concat!(
            "vmovq {a:x}, {seed}\n",
            "vpbroadcastq {a}, {a:x}\n",
            "vpxor {a}, {a}, ymmword ptr [{lanes}]\n",
            "vpxor {b}, {b}, {b}\n",
            "vpcmpeqd {m}, {m}, {m}\n",
            "vpsrlq {m}, {m}, 32\n",
            "mov {i}, {len}\n",
            "and {i}, -32\n",
            "lea {sg}, [{src} + {i}]\n",
            "lea {dg}, [{dst} + {i}]\n",
            "neg {i}\n",
            "2:\n",
            "vmovdqu {w}, ymmword ptr [{sg} + {i}]\n",
            "vmovdqu ymmword ptr [{dg} + {i}], {w}\n",
            sum_group!("{w}"), "\n",
            "add {i}, 32\n",
            "jnz 2b",
        )
    };
}

/// The partial group `{w}` summed into the lanes that `{v}` selects (all
/// ones); the other lanes keep their sums.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
#[rustfmt::skip] // one instruction per line
macro_rules! sum_masked_group {
    () => {
        concat!(
            "vmovdqa {pa}, {a}\n",
            "vmovdqa {pb}, {b}\n",
            sum_group!("{w}"), "\n",
            "vpblendvb {a}, {pa}, {a}, {v}\n",
            "vpblendvb {b}, {pb}, {b}, {v}",
        )
    };
}

/// The end of `avx2::copy_value` and `avx2::store_value`: each lane's
/// `a ^ b.rotate_left(32)` (`vpshufd 0xB1` swaps each word's halves) into
/// `{x0}`..`{x3}`, then every vector register that held value bytes or
/// sums zeroed and the upper halves cleaned: the compiler adds no
/// `vzeroupper` for registers used only inside `asm!`, and without it the
/// SSE code after the call stalls.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
#[rustfmt::skip] // one instruction per line
macro_rules! value_finish {
    () => {
        concat!(
            "vpshufd {b}, {b}, 0xB1\n",
            "vpxor {a}, {a}, {b}\n",
            "vmovq {x0}, {a:x}\n",
            "vpextrq {x1}, {a:x}, 1\n",
            "vextracti128 {v:x}, {a}, 1\n",
            "vmovq {x2}, {v:x}\n",
            "vpextrq {x3}, {v:x}, 1\n",
            "vpxor {a}, {a}, {a}\n",
            "vpxor {b}, {b}, {b}\n",
            "vpxor {w}, {w}, {w}\n",
            "vpxor {v}, {v}, {v}\n",
            "vpxor {lo}, {lo}, {lo}\n",
            "vpxor {u}, {u}, {u}\n",
            "vpxor {pa}, {pa}, {pa}\n",
            "vpxor {pb}, {pb}, {pb}\n",
            "vzeroupper",
        )
    };
}

#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
mod avx2 {
    use super::ValueSum;
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_storeu_si256};

    /// Does this CPU have AVX2? (std caches the answer: one load.)
    #[inline(always)]
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// Lane numbers, to turn a count of words into a lane mask.
    static LANE_INDEX: [u64; 4] = [0, 1, 2, 3];

    /// Copy `len` bytes from `src` to `dst` and return each checksum lane's
    /// `a ^ b.rotate_left(32)`, the sums started at `a = seed ^ lanes[l]`,
    /// `b = 0`, over the `len.div_ceil(8)` words at `src` (as
    /// [`ValueSum::add`] does, lane = word index mod 4).
    ///
    /// # Safety
    /// The CPU has AVX2, `len >= 32`, `src` is readable for
    /// `len.div_ceil(8) * 8` bytes and `dst` writable for `len` bytes, and
    /// the two ranges do not overlap.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn copy_value(
        src: *const u8,
        dst: *mut u8,
        len: usize,
        seed: u64,
        lanes: &[u64; 4],
    ) -> [u64; 4] {
        let (x0, x1, x2, x3): (u64, u64, u64, u64);
        // SAFETY: the block reads the `len & !31` bytes of whole groups at
        // `src` and writes them to `dst` (one unaligned 32-byte load and
        // store each, counting `i` up from `-(len & !31)` to 0 from the
        // groups' ends); then, if a partial group is left, it reads its
        // `t = (len % 32).div_ceil(8)` words (a masked load of lanes
        // `0..t`: the others are neither read nor faulted on) and copies
        // the last 32 bytes of the value, `src + len - 32 .. src + len` to
        // the same place in `dst` (inside both ranges as `len >= 32`;
        // overlapping bytes already written with the same values). Besides
        // that it reads `lanes` and `LANE_INDEX` (32 bytes each). `len >=
        // 32`, so at least one group runs. Vector registers that held
        // value bytes or sums are zeroed at the end (see `copy`); the
        // flags are clobbered.
        unsafe {
            std::arch::asm!(
                value_groups!(),
                // The partial group: its words' sums in lanes 0..t only.
                "mov {i}, {len}",
                "and {i}, 31",
                "jz 3f",
                "add {i}, 7",
                "shr {i}, 3",
                "vmovq {v:x}, {i}",
                "vpbroadcastq {v}, {v:x}",
                "vpcmpgtq {v}, {v}, ymmword ptr [{index}]",
                "vpmaskmovq {w}, {v}, ymmword ptr [{sg}]",
                sum_masked_group!(),
                "vmovdqu {w}, ymmword ptr [{src} + {len} - 32]",
                "vmovdqu ymmword ptr [{dst} + {len} - 32], {w}",
                "3:",
                value_finish!(),
                src = in(reg) src,
                dst = in(reg) dst,
                len = in(reg) len,
                seed = in(reg) seed,
                lanes = in(reg) lanes.as_ptr(),
                index = in(reg) LANE_INDEX.as_ptr(),
                i = out(reg) _,
                sg = out(reg) _,
                dg = out(reg) _,
                x0 = lateout(reg) x0,
                x1 = lateout(reg) x1,
                x2 = lateout(reg) x2,
                x3 = lateout(reg) x3,
                a = out(ymm_reg) _,
                b = out(ymm_reg) _,
                w = out(ymm_reg) _,
                v = out(ymm_reg) _,
                m = out(ymm_reg) _,
                lo = out(ymm_reg) _,
                u = out(ymm_reg) _,
                pa = out(ymm_reg) _,
                pb = out(ymm_reg) _,
                options(nostack),
            );
        }
        [x0, x1, x2, x3]
    }

    /// Store the `len` bytes at `src` as the `len.div_ceil(8)` words at
    /// `dst` (the last one zero-padded) and return each checksum lane's
    /// `a ^ b.rotate_left(32)`, as [`copy_value`] does for a load.
    ///
    /// # Safety
    /// The CPU has AVX2, `len >= 32`, `src` is readable for `len` bytes and
    /// `dst` writable for `len.div_ceil(8) * 8` bytes, and the two ranges do
    /// not overlap.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn store_value(
        src: *const u8,
        dst: *mut u8,
        len: usize,
        seed: u64,
        lanes: &[u64; 4],
    ) -> [u64; 4] {
        let (x0, x1, x2, x3): (u64, u64, u64, u64);
        // SAFETY: the block reads the `len & !31` bytes of whole groups at
        // `src` and stores them at `dst` (one unaligned 32-byte load and
        // store each, counting `i` up to 0 from the groups' ends). A partial
        // group left, of `r = len % 32` bytes: its whole words are read
        // with a masked load (lanes `0..r / 8`; no other byte is read or
        // faulted on), its last partial word, if any, from the 8 bytes that
        // end the value (`src + len - 8`, inside `src` as `len >= 32`)
        // shifted down so the bytes past the value are zero; the group's
        // `r.div_ceil(8)` words are stored with a masked store, inside the
        // `dst` range. Besides that it reads `lanes` and `LANE_INDEX`.
        // Registers that held value bytes or sums are zeroed at the end
        // and the upper halves cleaned (see `copy_value`); the flags are
        // clobbered.
        unsafe {
            std::arch::asm!(
                value_groups!(),
                // The partial group: `i` = its whole words, `t` = the bytes
                // of its partial word.
                "mov {i}, {len}",
                "and {i}, 31",
                "jz 3f",
                "mov {t}, {i}",
                "and {t}, 7",
                "shr {i}, 3",
                "vmovq {v:x}, {i}",
                "vpbroadcastq {v}, {v:x}",
                "vmovdqu {pa}, ymmword ptr [{index}]",
                // Lanes below the whole words: load them.
                "vpcmpgtq {pb}, {v}, {pa}",
                "vpmaskmovq {w}, {pb}, ymmword ptr [{sg}]",
                "test {t}, {t}",
                "jz 4f",
                // The partial word into lane `i`, its bytes past the value
                // shifted out: w = [src + len - 8] >> (64 - 8 * t).
                "mov {p}, qword ptr [{src} + {len} - 8]",
                "neg {t}",
                "lea rcx, [8 * {t} + 64]",
                "shr {p}, cl",
                "vmovq {u:x}, {p}",
                "vpbroadcastq {u}, {u:x}",
                "vpcmpeqq {pb}, {v}, {pa}",
                "vpblendvb {w}, {w}, {u}, {pb}",
                "xor {p}, {p}",
                // One word more to store and sum.
                "vpcmpeqd {pb}, {pb}, {pb}",
                "vpsubq {v}, {v}, {pb}",
                "4:",
                "vpcmpgtq {v}, {v}, {pa}",
                "vpmaskmovq ymmword ptr [{dg}], {v}, {w}",
                sum_masked_group!(),
                "3:",
                value_finish!(),
                src = in(reg) src,
                dst = in(reg) dst,
                len = in(reg) len,
                seed = in(reg) seed,
                lanes = in(reg) lanes.as_ptr(),
                index = in(reg) LANE_INDEX.as_ptr(),
                i = out(reg) _,
                t = out(reg) _,
                p = out(reg) _,
                sg = out(reg) _,
                dg = out(reg) _,
                out("rcx") _,
                x0 = lateout(reg) x0,
                x1 = lateout(reg) x1,
                x2 = lateout(reg) x2,
                x3 = lateout(reg) x3,
                a = out(ymm_reg) _,
                b = out(ymm_reg) _,
                w = out(ymm_reg) _,
                v = out(ymm_reg) _,
                m = out(ymm_reg) _,
                lo = out(ymm_reg) _,
                u = out(ymm_reg) _,
                pa = out(ymm_reg) _,
                pb = out(ymm_reg) _,
                options(nostack),
            );
        }
        [x0, x1, x2, x3]
    }

    /// Copy `groups` groups of 32 bytes from `src` to `dst`, adding each
    /// group's four little-endian words to lanes 0..=3 of `sum`, low half
    /// then high half, as [`ValueSum::add`] does.
    ///
    /// # Safety
    /// The CPU has AVX2, `groups > 0`, `src` is readable and `dst` writable
    /// for `32 * groups` bytes, and the two ranges do not overlap.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn copy(src: *const u8, dst: *mut u8, groups: usize, sum: &mut ValueSum) {
        // SAFETY: `sum.a` and `sum.b` are four `u64`s each (32 bytes),
        // private to this call; unaligned vector loads and stores are
        // allowed.
        let (mut a, mut b) = unsafe {
            (
                _mm256_loadu_si256(sum.a.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(sum.b.as_ptr().cast::<__m256i>()),
            )
        };
        let bytes = 32 * groups;
        // SAFETY: `src` and `dst` are valid for `bytes` bytes (the caller's
        // contract), so their ends are at most one past their ranges.
        let (src_end, dst_end) = unsafe { (src.add(bytes), dst.add(bytes)) };
        // SAFETY: the block reads the `bytes` bytes before `src_end` and
        // writes the `bytes` bytes before `dst_end` (the caller's ranges),
        // one unaligned 32-byte load and store per group, counting `i` up
        // from `-bytes` to 0, and touches no other memory. It takes an odd
        // group alone first, then two groups a turn; `groups > 0`, so
        // `i` starts below 0 and every path stops at 0. `w`, `v`, `m`,
        // `lo` and `u` are scratch registers, the ones that held value
        // bytes zeroed at the end; the flags are clobbered (no
        // `preserves_flags`).
        unsafe {
            std::arch::asm!(
                // {m} = 0x00000000ffffffff in every element.
                "vpcmpeqd {m}, {m}, {m}",
                "vpsrlq {m}, {m}, 32",
                // An odd number of groups: one alone first.
                "test {i}, 32",
                "jz 3f",
                "vmovdqu {w}, ymmword ptr [{src} + {i}]",
                "vmovdqu ymmword ptr [{dst} + {i}], {w}",
                sum_group!("{w}"),
                "add {i}, 32",
                "jz 4f",
                // Two groups a turn, summed in order.
                "3:",
                "vmovdqu {w}, ymmword ptr [{src} + {i}]",
                "vmovdqu {v}, ymmword ptr [{src} + {i} + 32]",
                "vmovdqu ymmword ptr [{dst} + {i}], {w}",
                "vmovdqu ymmword ptr [{dst} + {i} + 32], {v}",
                sum_group!("{w}"),
                sum_group!("{v}"),
                "add {i}, 64",
                "jnz 3b",
                "4:",
                // Leave no value bytes in the registers: whatever saves
                // vector state to memory later (a signal frame on the
                // stack, the dynamic linker's lazy binding) would copy
                // them there, where the caller's wiping cannot reach.
                "vpxor {w}, {w}, {w}",
                "vpxor {v}, {v}, {v}",
                "vpxor {lo}, {lo}, {lo}",
                src = in(reg) src_end,
                dst = in(reg) dst_end,
                i = inout(reg) (bytes as isize).wrapping_neg() => _,
                a = inout(ymm_reg) a,
                b = inout(ymm_reg) b,
                w = out(ymm_reg) _,
                v = out(ymm_reg) _,
                m = out(ymm_reg) _,
                lo = out(ymm_reg) _,
                u = out(ymm_reg) _,
                options(nostack),
            );
        }
        // SAFETY: as for the loads above.
        unsafe {
            _mm256_storeu_si256(sum.a.as_mut_ptr().cast::<__m256i>(), a);
            _mm256_storeu_si256(sum.b.as_mut_ptr().cast::<__m256i>(), b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> ValueSum {
        ValueSum {
            a: [1, 2, 3, u64::MAX],
            b: [5, 6, 7, 8],
        }
    }

    /// The word-by-word path, whatever the CPU: the reference both paths
    /// must agree with.
    fn reference(src: &[u8]) -> ValueSum {
        let mut sum = start();
        for (j, chunk) in src.chunks_exact(8).enumerate() {
            sum.add(j & 3, u64::from_le_bytes(chunk.try_into().unwrap()));
        }
        sum
    }

    #[test]
    fn both_directions_copy_and_sum_like_the_reference() {
        for groups in 0..=40 {
            let src: Vec<u8> = (0..groups * 32).map(|i| (i * 197 + 11) as u8).collect();
            let want = reference(&src);
            // `store`/`load` take the vector path where the CPU has AVX2;
            // `store_words`/`load_words` are the path of every other CPU.
            type Store = fn(&[AtomicU64], &[u8], &mut ValueSum);
            type Load = fn(&[AtomicU64], &mut [u8], &mut ValueSum);
            let paths: [(&str, Store, Load); 2] = [
                ("dispatching", store, load),
                ("word by word", store_words, load_words),
            ];
            for (path, store, load) in paths {
                let log: Vec<AtomicU64> = (0..groups * 4).map(|_| AtomicU64::new(0)).collect();
                let mut put = start();
                store(&log, &src, &mut put);
                let mut dst = vec![0u8; src.len()];
                let mut got = start();
                load(&log, &mut dst, &mut got);
                assert_eq!(dst, src, "{path}: {groups} groups");
                assert_eq!(put, want, "{path}: {groups} groups");
                assert_eq!(got, want, "{path}: {groups} groups");
            }
        }
    }

    #[test]
    fn a_whole_value_is_copied_and_summed_like_the_reference() {
        use super::super::entry::SUM_LANES;
        const GUARD: u8 = 0xA5;
        let seed = 0x0123_4567_89AB_CDEF;
        for len in 0..=300usize {
            let words = len.div_ceil(8);
            // The writer zero-pads the last word; the words after the
            // value (another entry's) must not reach the sums.
            let mut bytes: Vec<u8> = (0..words * 8 + 64).map(|i| (i * 151 + 3) as u8).collect();
            bytes[len..words * 8].fill(0);
            let log: Vec<AtomicU64> = bytes
                .chunks_exact(8)
                .map(|c| AtomicU64::new(u64::from_le_bytes(c.try_into().unwrap())))
                .collect();
            let mut want = ValueSum::from_seed(seed);
            for (j, w) in log[..words].iter().enumerate() {
                want.add(j & 3, w.load(Ordering::Relaxed));
            }
            let want_lanes = [0, 1, 2, 3].map(|l| want.a[l] ^ want.b[l].rotate_left(32));
            for dst_off in [0, 1, 7, 31] {
                let mut dst_all = vec![GUARD; len + 64];
                let dst = &mut dst_all[dst_off..dst_off + len];
                let got = load_value(&log[..words], dst, seed, &SUM_LANES);
                let at = format!("{len} bytes, dst offset {dst_off}");
                if len < 32 || !cfg!(all(target_arch = "x86_64", not(miri))) {
                    assert_eq!(got, None, "{at}");
                    continue;
                }
                if !std::arch::is_x86_feature_detected!("avx2") {
                    assert_eq!(got, None, "{at}");
                    continue;
                }
                assert_eq!(got, Some(want_lanes), "{at}");
                assert_eq!(&dst_all[dst_off..dst_off + len], &bytes[..len], "{at}");
                let outside = dst_all[..dst_off].iter().chain(&dst_all[dst_off + len..]);
                assert!(outside.copied().all(|b| b == GUARD), "{at}");
            }
            // A run of the wrong length is refused, not read past.
            if words > 0 {
                let mut dst = vec![0u8; len];
                assert_eq!(
                    load_value(&log[..words - 1], &mut dst, seed, &SUM_LANES),
                    None
                );
            }
        }
    }

    #[test]
    fn a_whole_value_is_stored_and_summed_like_the_reference() {
        use super::super::entry::SUM_LANES;
        const GUARD: u64 = 0xDEAD_BEEF_DEAD_BEEF;
        let seed = 0x0F1E_2D3C_4B5A_6978;
        let avx2 = cfg!(all(target_arch = "x86_64", not(miri)))
            && std::arch::is_x86_feature_detected!("avx2");
        for len in 0..=300usize {
            let words = len.div_ceil(8);
            for src_off in [0, 1, 7, 31] {
                let src_all: Vec<u8> = (0..len + 40).map(|i| (i * 173 + 29) as u8).collect();
                let src = &src_all[src_off..src_off + len];
                let mut padded = src.to_vec();
                padded.resize(words * 8, 0);
                let want_words: Vec<u64> = padded
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let mut want = ValueSum::from_seed(seed);
                for (j, &w) in want_words.iter().enumerate() {
                    want.add(j & 3, w);
                }
                let want_lanes = [0, 1, 2, 3].map(|l| want.a[l] ^ want.b[l].rotate_left(32));
                // The run sits one word into the log, between guard words.
                let log: Vec<AtomicU64> = (0..words + 6).map(|_| AtomicU64::new(GUARD)).collect();
                let got = store_value(&log[1..1 + words], src, seed, &SUM_LANES);
                let at = format!("{len} bytes, src offset {src_off}");
                if len < 32 || !avx2 {
                    assert_eq!(got, None, "{at}");
                    continue;
                }
                assert_eq!(got, Some(want_lanes), "{at}");
                let stored: Vec<u64> = log.iter().map(|w| w.load(Ordering::Relaxed)).collect();
                assert_eq!(&stored[1..1 + words], &want_words[..], "{at}");
                assert!(
                    stored[0] == GUARD && stored[1 + words..].iter().all(|&w| w == GUARD),
                    "{at}"
                );
            }
        }
    }

    #[test]
    fn unaligned_ranges_are_copied_exactly_and_nothing_around_them() {
        const GUARD: u64 = 0xDEAD_BEEF_DEAD_BEEF;
        for groups in (0..=17).chain([64, 255, 256, 2048]) {
            let src_all: Vec<u8> = (0..groups * 32 + 31).map(|i| (i * 131 + 7) as u8).collect();
            for (word_off, src_off, dst_off) in [(0, 0, 0), (1, 1, 7), (2, 7, 31), (3, 31, 32)] {
                let src = &src_all[src_off.min(src_all.len())..][..groups * 32];
                let want = reference(src);
                // The run sits `word_off` words into the log, between guard
                // words; the caller's buffer `dst_off` bytes into its own,
                // between guard bytes.
                let log: Vec<AtomicU64> =
                    (0..groups * 4 + 8).map(|_| AtomicU64::new(GUARD)).collect();
                let run = &log[word_off..word_off + groups * 4];
                let mut put = start();
                store(run, src, &mut put);
                let mut dst_all = vec![0xA5u8; groups * 32 + 64];
                let mut got = start();
                load(run, &mut dst_all[dst_off..dst_off + groups * 32], &mut got);
                let at = format!("{groups} groups, offsets {word_off}/{src_off}/{dst_off}");
                assert_eq!(&dst_all[dst_off..dst_off + groups * 32], src, "{at}");
                assert_eq!((put, got), (want, want), "{at}");
                let outside_log = log[..word_off].iter().chain(&log[word_off + groups * 4..]);
                assert!(
                    outside_log
                        .map(|w| w.load(Ordering::Relaxed))
                        .all(|w| w == GUARD),
                    "{at}"
                );
                let outside_dst = dst_all[..dst_off]
                    .iter()
                    .chain(&dst_all[dst_off + groups * 32..]);
                assert!(outside_dst.copied().all(|b| b == 0xA5), "{at}");
            }
        }
    }
}
