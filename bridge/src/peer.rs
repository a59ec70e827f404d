//! One connection to one peer: TLS handshake, HELLO exchange, then a loop
//! that sends the local feed, applies the peer's entries, acknowledges,
//! and sends heartbeats. Dialling with capped exponential backoff.
//!
//! Each connection has its own thread and its own [`LocalFeed`], so a slow
//! or dead peer only costs its own thread: local workers never wait on the
//! bridge (it only reads the log), and other peers never wait on this one.

use super::journal::LocalFeed;
use super::status::Field;
use super::tls::{names_cluster, names_host, peer_server_name};
use super::wire::{self, CloseReason, EntriesBuilder, Frame, FrameReader, WireEntry};
use super::Shared;
use scsp::clock::now_secs;
use scsp::table::FLAG_TOMBSTONE;
use scsp::Stored;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time allowed for TCP connect, TLS handshake and HELLO exchange, together.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest single wait while connecting, so a stopping bridge notices soon.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// How often the ticket-key ring is checked for changes to send.
const KEYS_CHECK: Duration = Duration::from_millis(20);
/// Longest wait of an idle connection: the peer's frames and the watcher's
/// wake-ups (`super::wake`) end it earlier.
const IDLE_WAIT: Duration = KEYS_CHECK;
/// Batches sent and not yet acknowledged before the sender pauses.
const MAX_IN_FLIGHT: usize = 32;
/// Applied batches acknowledged together (one cumulative ACK), so a steady
/// stream of small batches does not wake the sender once per batch.
const ACK_EVERY: u64 = 8;
/// Longest an applied batch waits for its ACK.
const ACK_DELAY: Duration = Duration::from_millis(2);
/// First reconnection delay.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Entries of a received batch whose index buckets are fetched ahead.
const PREFETCH_AHEAD: usize = 8;
/// Expiry further ahead than this (seconds) is refused: the longest TTL a
/// session may have (the TLS ticket lifetime limit, 7 days), plus a few
/// minutes of clock difference between hosts.
const MAX_EXPIRY_AHEAD: u64 = scsp::MAX_TTL_SECS as u64 + 300;

/// Why a connection ended or could not be set up. Logged, never sent: a
/// refusal goes to the peer as a CLOSE reason only.
#[derive(Debug)]
enum LinkError {
    /// The peer broke the protocol: answered with CLOSE Malformed and
    /// counted as a refusal.
    Malformed(String),
    /// We refused the peer in the HELLO exchange (CLOSE already sent).
    Refused(String),
    /// A socket call failed.
    Io(&'static str, std::io::Error),
    /// TLS failed (handshake or record).
    Tls(String),
    /// A step did not finish in time.
    Timeout(String),
    /// The peer closed the connection (with its CLOSE reason, if it sent one).
    Closed(Option<CloseReason>),
    /// A newer connection to the same peer took over.
    Replaced,
    /// The bridge is stopping.
    Stopping,
    /// An established session ended (how, if not by stopping).
    Disconnected(Option<Box<LinkError>>),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Malformed(why) => write!(f, "malformed frame: {why}"),
            LinkError::Refused(why) => write!(f, "refused: {why}"),
            LinkError::Io(what, e) => write!(f, "{what}: {e}"),
            LinkError::Tls(e) => f.write_str(e),
            LinkError::Timeout(what) => f.write_str(what),
            LinkError::Closed(Some(r)) => write!(f, "peer closed: {r:?}"),
            LinkError::Closed(None) => f.write_str("peer closed the connection"),
            LinkError::Replaced => f.write_str("replaced by a newer connection"),
            LinkError::Stopping => f.write_str("stopping"),
            LinkError::Disconnected(None) => f.write_str("disconnected"),
            LinkError::Disconnected(Some(e)) => write!(f, "disconnected: {e}"),
        }
    }
}

impl From<wire::WireError> for LinkError {
    fn from(e: wire::WireError) -> Self {
        LinkError::Malformed(e.0.to_string())
    }
}

/// A TLS connection and the frames arriving on it.
struct Link {
    conn: rustls::Connection,
    sock: TcpStream,
    frames: FrameReader,
    read_wait: Duration,
    write_wait: Duration,
}

/// Wait up to `d` for `events` on `fd` (or for `also` to become readable),
/// with a high-resolution timer (socket timeouts, SO_RCVTIMEO, are rounded
/// up to scheduler ticks of 4-10 ms, which would dominate replication
/// latency).
fn wait_fd(
    fd: RawFd,
    events: libc::c_short,
    also: Option<RawFd>,
    d: Duration,
) -> std::io::Result<bool> {
    let poll = |fd| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let mut p = [
        poll(fd),
        libc::pollfd {
            events: libc::POLLIN,
            ..poll(also.unwrap_or(-1))
        },
    ];
    let n = if also.is_some() { 2 } else { 1 };
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `p` and `ts` are valid for the duration of the call, nfds (at
    // most 2) is within `p`, and a null sigmask means "unchanged".
    let r = unsafe { libc::ppoll(p.as_mut_ptr(), n, &ts, std::ptr::null()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(r > 0)
}

impl Link {
    fn new(conn: rustls::Connection, sock: TcpStream) -> Result<Link, LinkError> {
        sock.set_nodelay(true)
            .map_err(|e| LinkError::Io("setsockopt", e))?;
        // Every wait goes through `wait_fd`, with a deadline of our own.
        sock.set_nonblocking(true)
            .map_err(|e| LinkError::Io("setsockopt", e))?;
        Ok(Link {
            conn,
            sock,
            frames: FrameReader::new(),
            read_wait: STOP_CHECK,
            write_wait: HANDSHAKE_TIMEOUT,
        })
    }

    /// Complete the TLS handshake by `deadline`. Driven record by record on
    /// the non-blocking socket: a peer trickling a byte at a time gets no
    /// more time than a silent one (rustls's blocking `complete_io` would
    /// wait as long as bytes keep coming, holding a handshake place and,
    /// when dialling, the bridge's shutdown).
    fn handshake(&mut self, deadline: Instant, sh: &Shared) -> Result<(), LinkError> {
        use std::os::fd::AsRawFd;
        while self.conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkError::Timeout("TLS handshake timed out".into()));
            }
            if sh.stopping() {
                return Err(LinkError::Stopping);
            }
            if self.conn.wants_write() {
                self.write_wait = left;
                self.flush()?;
                continue;
            }
            let ready = wait_fd(
                self.sock.as_raw_fd(),
                libc::POLLIN,
                None,
                left.min(STOP_CHECK),
            )
            .map_err(|e| LinkError::Io("poll", e))?;
            if !ready {
                continue;
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => return Err(LinkError::Closed(None)),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    continue
                }
                Err(e) => return Err(LinkError::Io("TLS handshake failed", e)),
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush(); // deliver the alert
                return Err(LinkError::Tls(format!("TLS handshake failed: {e}")));
            }
        }
        // Frames are flushed one by one; no need for rustls to cap buffering.
        self.conn.set_buffer_limit(None);
        Ok(())
    }

    fn set_write_wait(&mut self, d: Duration) {
        self.write_wait = d;
    }

    fn set_read_wait(&mut self, d: Duration) {
        self.read_wait = d;
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.conn
            .writer()
            .write_all(bytes)
            .map_err(|e| LinkError::Io("send", e))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<(), LinkError> {
        use std::os::fd::AsRawFd;
        let deadline = Instant::now() + self.write_wait;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(LinkError::Timeout(format!(
                            "send: peer not reading for {:?}",
                            self.write_wait
                        )));
                    }
                    wait_fd(self.sock.as_raw_fd(), libc::POLLOUT, None, left)
                        .map_err(|e| LinkError::Io("poll", e))?;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Io("send", e)),
            }
        }
        Ok(())
    }

    /// Take in whatever arrives within the read wait (cut short when
    /// `also` becomes readable). `Ok(false)`: the peer closed the
    /// connection.
    fn pump(&mut self, also: Option<RawFd>) -> Result<bool, LinkError> {
        // Plaintext may already sit decrypted in rustls (it arrived with the
        // handshake's last flight): take it before waiting on the socket.
        let (got, open) = self.drain()?;
        if got > 0 || !open {
            return Ok(open);
        }
        if !self.conn.is_handshaking() {
            use std::os::fd::AsRawFd;
            let ready = wait_fd(self.sock.as_raw_fd(), libc::POLLIN, also, self.read_wait)
                .map_err(|e| LinkError::Io("poll", e))?;
            if !ready {
                return Ok(true);
            }
        }
        match self.conn.read_tls(&mut self.sock) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(true)
            }
            Err(e) => return Err(LinkError::Io("receive", e)),
        }
        Ok(self.drain()?.1)
    }

    /// Process received TLS records and move their plaintext to the frame
    /// reader. Returns (bytes moved, connection still open).
    fn drain(&mut self) -> Result<(usize, bool), LinkError> {
        let st = match self.conn.process_new_packets() {
            Ok(st) => st,
            Err(e) => {
                let _ = self.flush(); // deliver the alert
                return Err(LinkError::Tls(format!("TLS error: {e}")));
            }
        };
        let n = st.plaintext_bytes_to_read();
        if n > 0 {
            let mut buf = vec![0u8; n];
            self.conn
                .reader()
                .read_exact(&mut buf)
                .map_err(|e| LinkError::Io("receive", e))?;
            self.frames.push(&buf);
        }
        Ok((n, !st.peer_has_closed()))
    }

    /// Wait until `deadline` for the peer's HELLO frame (or whatever frame
    /// comes first). A frame that does not decode is `Malformed`, which
    /// `hello_or_refuse` answers with CLOSE Malformed.
    fn wait_hello(&mut self, deadline: Instant, sh: &Shared) -> Result<Frame, LinkError> {
        loop {
            if let Some(f) = self.frames.next_frame()? {
                return Ok(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkError::Timeout("no HELLO in time".into()));
            }
            if sh.stopping() {
                return Err(LinkError::Stopping);
            }
            self.read_wait = left.min(STOP_CHECK);
            if !self.pump(None)? {
                return Err(LinkError::Closed(None));
            }
        }
    }

    /// The peer's HELLO, checked: its id, or `Refused` after sending the
    /// refusal (CLOSE with the reason).
    fn hello_or_refuse(&mut self, deadline: Instant, sh: &Shared) -> Result<u32, LinkError> {
        let checked = match self.wait_hello(deadline, sh) {
            Ok(f) => check_hello(sh, f),
            Err(LinkError::Malformed(why)) => Err((CloseReason::Malformed, why)),
            Err(e) => return Err(e),
        };
        checked.map_err(|(reason, why)| {
            self.refuse(reason);
            LinkError::Refused(why)
        })
    }

    /// Does the peer's (verified) certificate name our cluster? Its HELLO
    /// must claim the same, but only the certificate is proof.
    fn certified_for(&self, cluster: &str) -> bool {
        self.conn
            .peer_certificates()
            .and_then(|c| c.first())
            .is_some_and(|c| names_cluster(c, cluster))
    }

    fn refuse(&mut self, reason: CloseReason) {
        let _ = self.send(&wire::close(reason));
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

fn check_hello(sh: &Shared, f: Frame) -> Result<u32, (CloseReason, String)> {
    match f {
        Frame::Hello {
            version,
            host_id,
            cluster,
        } => {
            if version != wire::VERSION {
                return Err((
                    CloseReason::Version,
                    format!("protocol version {version}, we speak {}", wire::VERSION),
                ));
            }
            if cluster != sh.cfg.cluster {
                return Err((
                    CloseReason::Cluster,
                    format!(
                        "cluster name {cluster:?} is not ours ({:?})",
                        sh.cfg.cluster
                    ),
                ));
            }
            Ok(host_id)
        }
        Frame::Close { reason } => Err((reason, format!("peer closed: {reason:?}"))),
        _ => Err((CloseReason::Malformed, "first frame is not HELLO".into())),
    }
}

/// Dial peer `idx` forever (until the bridge stops), with capped backoff.
pub(crate) fn dial_loop(sh: Arc<Shared>, idx: usize) {
    super::wake::precise_timers();
    let peer = sh.cfg.peers[idx].clone();
    let mut backoff = MIN_BACKOFF;
    let mut repeats = Repeats::default();
    while !sh.stopping() {
        let mut established = None;
        let res = (|| {
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            let sock = connect(peer.addr, deadline, &sh)?;
            let conn =
                rustls::ClientConnection::new(sh.tls.client.clone(), peer_server_name(peer.id))
                    .map_err(|e| LinkError::Tls(format!("TLS: {e}")))?;
            let mut link = Link::new(conn.into(), sock)?;
            link.handshake(deadline, &sh)?;
            if !link.certified_for(&sh.cfg.cluster) {
                link.refuse(CloseReason::Cluster);
                sh.status.add(idx, Field::Refused, 1);
                return Err(LinkError::Refused(format!(
                    "the certificate of the peer at {} does not name cluster {:?}",
                    peer.addr, sh.cfg.cluster
                )));
            }
            link.send(&wire::hello(sh.cfg.host_id, &sh.cfg.cluster))?;
            match link.hello_or_refuse(deadline, &sh) {
                Ok(id) if id == peer.id => {}
                Ok(id) => {
                    link.refuse(CloseReason::Identity);
                    sh.status.add(idx, Field::Refused, 1);
                    return Err(LinkError::Refused(format!(
                        "peer at {} says it is host {id}",
                        peer.addr
                    )));
                }
                Err(e @ LinkError::Refused(_)) => {
                    sh.status.add(idx, Field::Refused, 1);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            established = Some(Instant::now());
            run_session(&sh, idx, link)
        })();
        if let Err(e) = res {
            if established.is_some() {
                repeats.reset();
            }
            repeats.log(&sh, peer.id, e.to_string());
        }
        // Only a connection that worked for a while resets the backoff; a
        // peer that times out every attempt keeps backing off.
        if established.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            backoff = MIN_BACKOFF;
        }
        sh.sleep(backoff);
        backoff = (backoff * 2).min(sh.cfg.max_backoff);
    }
}

/// The same failure again and again (a peer down, retried every backoff)
/// is logged once, then once a minute with how often it recurred.
#[derive(Default)]
struct Repeats {
    last: Option<String>,
    since: Option<Instant>,
    count: u64,
}

impl Repeats {
    const EVERY: Duration = Duration::from_secs(60);

    fn log(&mut self, sh: &Shared, peer: u32, e: String) {
        let same = self.last.as_deref() == Some(e.as_str());
        if same && self.since.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.count += 1;
            return;
        }
        if same && self.count > 0 {
            sh.log(&format!("peer {peer}: {e} ({} more times)", self.count));
        } else {
            sh.log(&format!("peer {peer}: {e}"));
        }
        self.last = Some(e);
        self.since = Some(Instant::now());
        self.count = 0;
    }

    /// A connection worked: its next failure is news.
    fn reset(&mut self) {
        *self = Repeats::default();
    }
}

/// Connect to `addr` by `deadline`, giving up as soon as the bridge stops:
/// a blocking connect to an address that does not answer would hold up
/// SIGTERM for the whole timeout.
fn connect(
    addr: std::net::SocketAddr,
    deadline: Instant,
    sh: &Shared,
) -> Result<TcpStream, LinkError> {
    use nix::errno::Errno;
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let failed = |e: Errno| LinkError::Io("connect", std::io::Error::from(e));
    let fd = socket::socket(family, SockType::Stream, flags, None).map_err(failed)?;
    // From our listen address, when it names one: the peer then knows the
    // connection for one of its configured peers' and admits it ahead of
    // strangers (super::admission).
    let own = sh.cfg.listen.ip();
    if !own.is_unspecified() && own.is_ipv4() == addr.is_ipv4() {
        let from = std::net::SocketAddr::new(own, 0);
        socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(from)).map_err(failed)?;
    }
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(failed(e)),
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LinkError::Timeout(format!(
                "connect {addr}: no answer within {HANDSHAKE_TIMEOUT:?}"
            )));
        }
        if sh.stopping() {
            return Err(LinkError::Stopping);
        }
        let ready = wait_fd(fd.as_raw_fd(), libc::POLLOUT, None, left.min(STOP_CHECK))
            .map_err(|e| LinkError::Io("poll", e))?;
        if ready {
            break;
        }
    }
    match socket::getsockopt(&fd, sockopt::SocketError) {
        Ok(0) => Ok(TcpStream::from(fd)),
        Ok(e) => Err(failed(Errno::from_raw(e))),
        Err(e) => Err(failed(e)),
    }
}

/// Serve one accepted connection: handshake, identify, run.
pub(crate) fn accepted(sh: Arc<Shared>, sock: TcpStream, place: super::admission::Place) {
    super::wake::precise_timers();
    let from = sock
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut who = format!("connection from {from}");
    // The configured peer the client certificate names (client certificates
    // are required): refusals are counted against it, not against whatever
    // id the HELLO claims.
    let mut certified = None;
    let mut refused = false;
    let mut handshaken = false;
    let res = (|| {
        let deadline = Instant::now() + place.deadline();
        let conn = rustls::ServerConnection::new(sh.tls.server.clone())
            .map_err(|e| LinkError::Tls(format!("TLS: {e}")))?;
        let mut link = Link::new(conn.into(), sock)?;
        link.handshake(deadline, &sh)?;
        handshaken = true;
        certified = link
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| sh.cfg.peers.iter().position(|p| names_host(c, p.id)));
        if !link.certified_for(&sh.cfg.cluster) {
            link.refuse(CloseReason::Cluster);
            refused = true;
            return Err(LinkError::Refused(format!(
                "its certificate does not name cluster {:?}",
                sh.cfg.cluster
            )));
        }
        let id = match link.hello_or_refuse(deadline, &sh) {
            Ok(id) => id,
            Err(e) => {
                refused = matches!(e, LinkError::Refused(_));
                return Err(e);
            }
        };
        let Some(idx) = certified.filter(|&i| sh.cfg.peers[i].id == id && id < sh.cfg.host_id)
        else {
            link.refuse(CloseReason::Identity);
            refused = true;
            return Err(LinkError::Refused(format!(
                "claims host {id}, which is not a configured lower-id peer or not named by its \
                 certificate"
            )));
        };
        who = format!("peer {id}");
        link.send(&wire::hello(sh.cfg.host_id, &sh.cfg.cluster))?;
        place.release();
        run_session(&sh, idx, link)
    })();
    drop(place);
    if let (true, Some(i)) = (refused, certified) {
        sh.status.add(i, Field::Refused, 1);
    }
    match res {
        // Unproven, whatever its address (one of a peer's is no proof):
        // within the limit of what anyone who reaches the port can cause.
        Err(e) if !handshaken => sh.log_unproven(format!("{who}: {e}")),
        Err(e) => sh.log(&format!("{who}: {e}")),
        Ok(()) => {}
    }
}

/// Batches sent and awaiting acknowledgement.
struct InFlight {
    batches: VecDeque<(u64, Instant, u64)>,
    entries: u64,
}

/// The replication loop of one verified connection.
fn run_session(sh: &Shared, idx: usize, mut link: Link) -> Result<(), LinkError> {
    let peer_id = sh.cfg.peers[idx].id;
    let generation = sh.generation[idx].fetch_add(1, Ordering::AcqRel) + 1;
    if sh.connected_once[idx].swap(true, Ordering::Relaxed) {
        sh.status.add(idx, Field::Reconnects, 1);
    }
    sh.status.add(idx, Field::Connects, 1);
    sh.status.set(idx, Field::Connected, 1);
    sh.status
        .set(idx, Field::LastSeenMs, scsp::clock::now_millis());
    sh.log(&format!("peer {peer_id}: connected"));
    let dead_after = (sh.cfg.heartbeat * 5).max(Duration::from_secs(1));
    link.set_write_wait(dead_after);
    let res = session_loop(sh, idx, generation, dead_after, &mut link);
    if sh.generation[idx].load(Ordering::Acquire) == generation {
        sh.status.set(idx, Field::Connected, 0);
        sh.status.set(idx, Field::LagEntries, 0);
        sh.status.set(idx, Field::LagMicros, 0);
    }
    match &res {
        Err(LinkError::Malformed(_)) => {
            link.refuse(CloseReason::Malformed);
            sh.status.add(idx, Field::Refused, 1);
        }
        _ if sh.stopping() => link.refuse(CloseReason::Shutdown),
        _ => {}
    }
    Err(LinkError::Disconnected(res.err().map(Box::new)))
}

fn session_loop(
    sh: &Shared,
    idx: usize,
    generation: u64,
    dead_after: Duration,
    link: &mut Link,
) -> Result<(), LinkError> {
    let saved = sh.saved_positions(idx);
    let mut feed = LocalFeed::new(&sh.replica, saved.as_deref());
    if let Some(saved) = saved {
        sh.status.add(
            idx,
            Field::LostWords,
            LocalFeed::lost_since(&sh.replica, &saved),
        );
    }
    let res = replicate(sh, idx, generation, dead_after, link, &mut feed);
    sh.save_positions(idx, feed.positions());
    res
}

fn replicate(
    sh: &Shared,
    idx: usize,
    generation: u64,
    dead_after: Duration,
    link: &mut Link,
    feed: &mut LocalFeed,
) -> Result<(), LinkError> {
    let peer_id = sh.cfg.peers[idx].id;
    let mut inflight = InFlight {
        batches: VecDeque::new(),
        entries: 0,
    };
    let mut seq = 0u64;
    // The next batch the peer must send (PROTOCOL.md §3: from 1, by one).
    let mut expected_seq = 1u64;
    // The lag last reported: an acknowledged batch's round trip, or the age
    // of the oldest batch still unacknowledged if that is longer.
    let mut shown_lag = 0u64;
    let mut last_rx = Instant::now();
    let mut last_tx = Instant::now();
    let mut last_activity = Instant::now();
    let mut last_keys_check = Instant::now() - KEYS_CHECK;
    // None until the first KEYS of this connection, which is sent even
    // empty: the peer drops the keys of this origin that it leaves out.
    let mut sent_key_names: Option<Vec<[u8; 16]>> = None;
    // Applied batches not acknowledged yet: how many, and since when.
    let mut unacked = (0u64, Instant::now());
    let mut b = EntriesBuilder::new(1);
    loop {
        if sh.stopping() {
            return Ok(());
        }
        if sh.generation[idx].load(Ordering::Acquire) != generation {
            return Err(LinkError::Replaced);
        }
        // Send: one batch per turn, while the peer keeps up; else only
        // keep up with the record.
        let sending = inflight.batches.len() < MAX_IN_FLIGHT;
        let p = if sending {
            b.restart(seq + 1);
            feed.fill(&sh.replica, &mut b)
        } else {
            feed.collect(&sh.replica)
        };
        sh.status.add(idx, Field::LostWords, p.lost_words);
        sh.status.add(idx, Field::SkippedWords, p.skipped_words);
        sh.status.set(idx, Field::BacklogWords, p.backlog_words);
        if sending && !b.is_empty() {
            seq += 1;
            let n = b.len() as u64;
            link.send(b.frame())?;
            inflight.batches.push_back((seq, Instant::now(), n));
            inflight.entries += n;
            sh.status.add(idx, Field::Sent, n);
            sh.status.set(idx, Field::LagEntries, inflight.entries);
            last_tx = Instant::now();
            last_activity = last_tx;
        }
        // A peer that stops acknowledging shows a growing lag, not its last
        // good one.
        if let Some(&(_, at, _)) = inflight.batches.front() {
            let age = at.elapsed().as_micros() as u64;
            if age > shown_lag {
                shown_lag = age;
                sh.status.set(idx, Field::LagMicros, age);
            }
        }
        // Ticket keys: on connecting, and whenever this host's own usable
        // keys change (a rotation), send them all; each host speaks only
        // for itself. No ring yet (no server here used ticket keys) means no
        // keys of this origin: sent as an empty set.
        if last_keys_check.elapsed() >= KEYS_CHECK {
            last_keys_check = Instant::now();
            let keys = sh.keyring().map(|r| r.export_own()).unwrap_or_default();
            let names: Vec<[u8; 16]> = keys.iter().map(|k| k.name).collect();
            if sent_key_names.as_ref() != Some(&names) {
                link.send(&wire::keys(&keys))?;
                sent_key_names = Some(names);
                last_tx = Instant::now();
            }
        }
        if last_tx.elapsed() >= sh.cfg.heartbeat {
            link.send(&wire::heartbeat(scsp::clock::now_millis()))?;
            last_tx = Instant::now();
        }
        // Receive. A hot connection (it sent or received entries within
        // `wake::HOT`) comes back every `watch_interval` to look at the logs
        // itself: the first put after a pause then costs one thread wake-up
        // less. A cold one, with nothing left to send, waits for the peer or
        // for the watcher's wake-up when the logs grow.
        let waker = &sh.wakers[idx];
        let idle = last_activity.elapsed() >= super::wake::HOT && {
            waker.arm();
            feed.caught_up(&sh.replica)
        };
        link.set_read_wait(if idle {
            IDLE_WAIT
        } else {
            sh.cfg.watch_interval
        });
        let before = link.frames.buffered();
        let open = link.pump(idle.then(|| waker.fd()));
        waker.disarm();
        let open = open?;
        if link.frames.buffered() != before {
            last_rx = Instant::now();
        }
        while let Some(f) = link.frames.next_frame()? {
            last_rx = Instant::now();
            sh.status
                .set(idx, Field::LastSeenMs, scsp::clock::now_millis());
            match f {
                Frame::Entries { seq: s, entries } => {
                    if s != expected_seq {
                        return Err(LinkError::Malformed(format!(
                            "batch {s}, expected batch {expected_seq}"
                        )));
                    }
                    expected_seq += 1;
                    apply(sh, idx, peer_id, &entries);
                    if unacked.0 == 0 {
                        unacked.1 = Instant::now();
                    }
                    unacked.0 += 1;
                    last_activity = Instant::now();
                }
                Frame::Ack { seq: s } => {
                    // Batches are numbered from 1: no ACK names batch 0.
                    if s == 0 || s > seq {
                        return Err(LinkError::Malformed("ACK for a batch never sent".into()));
                    }
                    while inflight.batches.front().is_some_and(|b| b.0 <= s) {
                        let (_, at, n) = inflight.batches.pop_front().expect("front exists");
                        inflight.entries -= n;
                        shown_lag = at.elapsed().as_micros() as u64;
                        sh.status.set(idx, Field::LagMicros, shown_lag);
                    }
                    sh.status.set(idx, Field::LagEntries, inflight.entries);
                }
                Frame::Heartbeat { .. } => {}
                Frame::Keys { keys } => {
                    sh.import_keys(idx, generation, keys);
                    last_activity = Instant::now();
                }
                Frame::Close { reason } => return Err(LinkError::Closed(Some(reason))),
                Frame::Hello { .. } => {
                    return Err(LinkError::Malformed("HELLO after the handshake".into()))
                }
            }
        }
        if unacked.0 >= ACK_EVERY || (unacked.0 > 0 && unacked.1.elapsed() >= ACK_DELAY) {
            link.send(&wire::ack(expected_seq - 1))?;
            unacked.0 = 0;
        }
        // Only now: frames that came with the end of the connection (a last
        // batch, the peer's CLOSE) are handled above first.
        if !open {
            return Err(LinkError::Closed(None));
        }
        if last_rx.elapsed() > dead_after {
            return Err(LinkError::Timeout(format!(
                "nothing heard for {dead_after:?}"
            )));
        }
    }
}

/// Apply a peer's batch to the local segment, keeping origin and expiry.
/// Each entry is judged alone: one the peer may not send (another origin,
/// an expiry beyond the longest TTL) is refused and counted, one over the
/// peer's budget is dropped and counted, and the rest of the batch is
/// applied. The batch is acknowledged either way, so nothing refused is
/// ever sent again.
fn apply(sh: &Shared, idx: usize, peer_id: u32, entries: &[WireEntry]) {
    let now = now_secs();
    let replica = &sh.replica;
    let appended = replica.appended_words();
    let capacity = replica.capacity_words();
    let mut budget = sh.budgets[idx].lock().unwrap_or_else(|e| e.into_inner());
    let mut batch = budget.start(appended, capacity);
    // Every (re)connection replays the sender's window: what is already
    // here is not stored again, so a replay does not evict live entries.
    let (mut applied, mut dropped, mut unchanged, mut rejected, mut over) = (0, 0, 0, 0, 0);
    let mut scratch = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(ahead) = entries.get(i + PREFETCH_AHEAD) {
            replica.prefetch_bucket(&ahead.key);
        }
        if e.origin != peer_id || e.expiry > now + MAX_EXPIRY_AHEAD {
            rejected += 1;
            continue;
        }
        let tombstone = e.flags & wire::WIRE_TOMBSTONE != 0;
        if !tombstone && e.expiry < now {
            dropped += 1;
            continue;
        }
        if !tombstone && replica.holds(&e.key, &e.value, e.expiry, e.origin, &mut scratch) {
            unchanged += 1;
            continue;
        }
        let size = replica.stored_bytes(e.key.len(), e.value.len());
        if !budget.admit(&mut batch, size) {
            over += 1;
            continue;
        }
        if tombstone {
            // Who may remove what: docs/PROTOCOL.md, "Removals".
            if replica.unlink_key(&e.key) {
                let _ = replica.put_entry(&e.key, &[], e.expiry, e.origin, FLAG_TOMBSTONE);
                applied += 1;
            } else {
                budget.refund(&mut batch, size);
                unchanged += 1;
            }
        } else {
            match replica.put_entry(&e.key, &e.value, e.expiry, e.origin, 0) {
                Stored::Ok => applied += 1,
                Stored::TooLarge | Stored::BadKey => {
                    budget.refund(&mut batch, size);
                    dropped += 1;
                }
            }
        }
    }
    let share = budget.finish(batch);
    drop(budget);
    sh.status.add(idx, Field::Received, applied);
    sh.status.add(idx, Field::Dropped, dropped);
    sh.status.add(idx, Field::Unchanged, unchanged);
    sh.status.add(idx, Field::Rejected, rejected);
    sh.status.add(idx, Field::OverBudget, over);
    sh.status.set(idx, Field::LogShare, share);
}
