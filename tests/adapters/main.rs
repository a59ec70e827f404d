//! What sits on the table: the shared ticket-key ring and the rustls
//! adapter, with real handshakes between processes.

mod support;

mod keyring;
mod rustls_negative;
mod rustls_resume;
