//! Real `scsp bridge` processes on loopback: replication, recovery, status,
//! and hostile or broken peers.

mod support;

mod cluster;
mod security;
mod sets;
