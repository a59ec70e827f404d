//! The session table on real segments: the API, an oracle, many processes,
//! killed writers, damage, and the no-system-call promise.

mod common;

mod basics;
mod corruption;
mod crash;
mod hardening;
mod multiprocess;
mod no_syscalls;
mod oracle;
