//! Surviving a segment file truncated under its mappings.
//!
//! A mapped page past the end of its file raises SIGBUS on access. Anyone
//! who may write the segment file (its owner, root) can truncate it, and
//! every process using it would die at its next lookup. A process that
//! opts in with [`Segment::guard_against_truncation`] instead gets a SIGBUS
//! handler that, for a fault inside a guarded mapping, maps private zero
//! pages over the whole mapping and lets the faulting access run again.
//! From then on every lookup misses (a zero word is no entry) and every
//! store lands in memory nobody else sees; [`Segment::truncated`] says so,
//! and the process reopens the segment, or goes on without it, when it
//! next looks. A SIGBUS anywhere else gets the action it had before.
//!
//! Sound for the shared-memory model the crate already has: the mapping
//! stays mapped at the same address, and its words only change value, as
//! if another process had written them (they are reached only through
//! atomics). The remapping is one `mmap(2)` system call, which Linux runs
//! from a signal handler like any other.

use super::Segment;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Guarded mappings at once in one process.
const SLOTS: usize = 32;

struct Guarded {
    start: AtomicUsize,
    len: AtomicUsize,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Guarded = Guarded {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};
static GUARDED: [Guarded; SLOTS] = [FREE; SLOTS];
/// Serialises installs (never taken by the handler).
static INSTALL: Mutex<()> = Mutex::new(());
/// The SIGBUS action before ours, which faults that are not ours are
/// handed to.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
/// The address of the last fault handed on, and how many times in a row it
/// came back: an action that hands it back to us (it saved ours as its
/// previous, or puts ours back and returns) would bounce it forever.
static LAST_FOREIGN: AtomicUsize = AtomicUsize::new(0);
static FOREIGN_REPEATS: AtomicUsize = AtomicUsize::new(0);
/// Times one fault address may come back before the default action ends it
/// (also for a handler that recovers from it and touches it again).
const MAX_REPEATS: usize = 3;

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for g in &GUARDED {
        let start = g.start.load(Ordering::Acquire);
        let len = g.len.load(Ordering::Relaxed);
        if start != 0 && (start..start + len).contains(&addr) {
            // SAFETY: [start, start + len) is a mapping this process made
            // and still holds (it is unregistered before it is unmapped);
            // MAP_FIXED replaces its pages in place with private zero pages,
            // the only effect the rest of the process can see.
            let p = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                g.truncated.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not a guarded mapping (or it could not be replaced): the action before
    // ours handles it, and ours stays installed (a handler that recovers,
    // with siglongjmp say, keeps the guard).
    let repeats = if LAST_FOREIGN.swap(addr, Ordering::AcqRel) == addr {
        FOREIGN_REPEATS.fetch_add(1, Ordering::AcqRel) + 1
    } else {
        FOREIGN_REPEATS.store(1, Ordering::Release);
        1
    };
    // SAFETY: PREVIOUS was filled by sigaction before this handler was
    // installed. `install` writes it again only while this handler is not
    // the action; a handler of the process that calls this one directly at
    // that moment (a fault in another thread while a guard is being set
    // up, which servers do at a process's start) is the one way to read it
    // during the write.
    let previous = unsafe { (*std::ptr::addr_of!(PREVIOUS)).assume_init_ref() };
    let handler = previous.sa_sigaction;
    if repeats > MAX_REPEATS || handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // The default action: the access faults again and ends the process,
        // as it would have without us.
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid action;
        // sigaction is async-signal-safe.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
        }
        return;
    }
    // SAFETY: `handler` is the function the process installed for SIGBUS
    // (neither SIG_DFL nor SIG_IGN), of the signature its flags declare; it
    // is called as the kernel would have called it, with this signal's
    // arguments.
    unsafe {
        if previous.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(handler);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
            f(sig);
        }
    }
}

/// Make `on_sigbus` the SIGBUS action, keeping the action it replaces for
/// faults that are not ours. Again whenever another action took its place
/// since (a server that sets up its own crash handlers after opening the
/// segment: Apache httpd does, before its children start).
fn install() -> std::io::Result<()> {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: sigaction reads and writes the structs given; a zeroed
    // sigaction is a valid value to fill or to pass.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if current.sa_sigaction == on_sigbus as *const () as usize {
            return Ok(());
        }
        // `on_sigbus` is not the action, so no fault reaches it now:
        // PREVIOUS, which only it reads, may be written.
        (*std::ptr::addr_of_mut!(PREVIOUS)).write(current);
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Segment {
    /// Survive the segment file being truncated under this mapping: from
    /// then on the mapping reads as empty and [`Segment::truncated`] is true,
    /// instead of the process dying of SIGBUS. Installs a process-wide
    /// SIGBUS handler (once); use it in servers that own their signal
    /// handling. A heap segment needs nothing.
    pub fn guard_against_truncation(&self) -> std::io::Result<()> {
        let (start, len) = self.mapped_range();
        if start == 0 {
            return Ok(());
        }
        install()?;
        if self.guard_slot().is_some() {
            return Ok(());
        }
        for g in &GUARDED {
            if g.start.load(Ordering::Relaxed) == 0 {
                g.len.store(len, Ordering::Relaxed);
                g.truncated.store(false, Ordering::Relaxed);
                // Release: the handler that sees `start` sees `len` too.
                if g.start
                    .compare_exchange(0, start, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(std::io::Error::other(format!(
            "more than {SLOTS} segments guarded in one process"
        )))
    }

    /// Whether the file was truncated under this (guarded) mapping, which
    /// now reads as empty: reopen the segment, or go on without it.
    pub fn truncated(&self) -> bool {
        self.guard_slot()
            .is_some_and(|g| g.truncated.load(Ordering::Acquire))
    }

    fn guard_slot(&self) -> Option<&'static Guarded> {
        let (start, _) = self.mapped_range();
        GUARDED
            .iter()
            .find(|g| start != 0 && g.start.load(Ordering::Relaxed) == start)
    }

    /// Stop guarding this mapping (before it is unmapped).
    pub(super) fn unguard(&self) {
        if let Some(g) = self.guard_slot() {
            g.start.store(0, Ordering::Release);
        }
    }
}
