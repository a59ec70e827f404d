//! The loopback network cache baseline: a real `redis-server`, started on
//! 127.0.0.1 for the measurement and stopped after it, and a minimal RESP2
//! client for the three commands a session cache needs: `SET key value EX
//! ttl`, `GET key`, and `GETDEL key` (atomic, so it has `take`'s semantics).
//!
//! It is the best case for any network session cache, which is what a pool
//! uses when it cannot share memory: one round trip per operation over
//! loopback, no TLS, no connection pool, no client-side allocation per reply.
//! A cache on another host adds the LAN round trip on top.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary looked up on `PATH`.
pub const REDIS_SERVER: &str = "redis-server";

/// A `redis-server` child process listening on a free loopback port; killed
/// (by its pid) and reaped on drop.
pub struct RedisServer {
    child: childguard::Guard,
    addr: SocketAddr,
}

impl RedisServer {
    /// Start a private, non-persistent server and wait until it answers.
    /// `ErrorKind::NotFound` means `redis-server` is not installed.
    pub fn start() -> io::Result<RedisServer> {
        let mut last = None;
        // A free port is picked by binding port 0 and letting go of it;
        // another process may grab it in between, so retry a few times.
        for _ in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let mut cmd = Command::new(REDIS_SERVER);
            // Dies with the thread that started it, even if this process is
            // killed outright (the demo's and the benches' throwaway server).
            // SAFETY: the closure runs in the forked child before exec and
            // only calls prctl, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let child = cmd
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                // Memory only: no snapshots, no append-only file.
                .args(["--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--loglevel", "warning"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut server = RedisServer {
                child: childguard::Guard::spawned(child),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// Poll with PING for up to 5 s; fail early if the server exited.
    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(code) = self.child.try_wait() {
                return Err(io::Error::other(format!(
                    "redis-server on {} exited at start (code {code})",
                    self.addr
                )));
            }
            if let Ok(mut c) = self.connect() {
                if c.ping().is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server on {} did not answer within 5 s", self.addr),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (the demo counts its CPU time as the server's).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// A new connection to this server.
    pub fn connect(&self) -> io::Result<RedisClient> {
        RedisClient::connect(self.addr)
    }
}

/// One connection speaking RESP2. Every command waits for its reply (no
/// pipelining), as a TLS server's session callback would.
pub struct RedisClient {
    conn: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

/// A reply is at most this long; the baselines store at most 8 KiB values.
const MAX_REPLY: usize = 1 << 20;

impl RedisClient {
    /// Connect, with Nagle off: each command is one small write.
    pub fn connect(addr: SocketAddr) -> io::Result<RedisClient> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(RedisClient {
            conn: BufReader::with_capacity(64 << 10, s),
            out: Vec::with_capacity(16 << 10),
            line: Vec::with_capacity(64),
        })
    }

    /// `PING`, answered `+PONG`.
    pub fn ping(&mut self) -> io::Result<()> {
        self.send(&[b"PING"])?;
        self.simple(b"PONG")
    }

    /// `SET key value EX ttl_secs`, answered `+OK`.
    pub fn set(&mut self, key: &[u8], value: &[u8], ttl_secs: u32) -> io::Result<()> {
        let ttl = ttl_secs.max(1).to_string();
        self.send(&[b"SET", key, value, b"EX", ttl.as_bytes()])?;
        self.simple(b"OK")
    }

    /// `GET key` into `buf`: the value's length, or `None` if absent.
    pub fn get(&mut self, key: &[u8], buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.send(&[b"GET", key])?;
        self.bulk(buf)
    }

    /// `GETDEL key` into `buf`: of concurrent callers, one gets the value.
    pub fn getdel(&mut self, key: &[u8], buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.send(&[b"GETDEL", key])?;
        self.bulk(buf)
    }

    /// `GET key` into a new `Vec`.
    pub fn get_vec(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.send(&[b"GET", key])?;
        self.bulk_vec()
    }

    /// `GETDEL key` into a new `Vec`.
    pub fn getdel_vec(&mut self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.send(&[b"GETDEL", key])?;
        self.bulk_vec()
    }

    /// Write one command as a RESP array of bulk strings.
    fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.out.clear();
        write!(self.out, "*{}\r\n", args.len())?;
        for a in args {
            write!(self.out, "${}\r\n", a.len())?;
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&self.out)
    }

    /// Read one `\r\n`-terminated reply line (without the terminator).
    fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        let n = (&mut self.conn)
            .take(MAX_REPLY as u64)
            .read_until(b'\n', &mut self.line)?;
        match self.line.strip_suffix(b"\r\n") {
            Some(l) => Ok(l),
            None if n == 0 => Err(io::ErrorKind::UnexpectedEof.into()),
            None => Err(bad_reply(&self.line)),
        }
    }

    /// Expect the simple string `+want`.
    fn simple(&mut self, want: &[u8]) -> io::Result<()> {
        let line = self.read_line()?;
        match line.split_first() {
            Some((b'+', s)) if s == want => Ok(()),
            _ => Err(bad_reply(line)),
        }
    }

    /// A bulk string into `buf`, or `None` for the null bulk string.
    fn bulk(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(len) = self.bulk_len()? else {
            return Ok(None);
        };
        if len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "redis reply of {len} bytes does not fit a {} byte buffer",
                    buf.len()
                ),
            ));
        }
        self.bulk_body(&mut buf[..len])?;
        Ok(Some(len))
    }

    /// A bulk string into a new `Vec`.
    fn bulk_vec(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(len) = self.bulk_len()? else {
            return Ok(None);
        };
        let mut v = vec![0u8; len];
        self.bulk_body(&mut v)?;
        Ok(Some(v))
    }

    /// A bulk string's header: its length (at most `MAX_REPLY`), or `None`
    /// for the null bulk string.
    fn bulk_len(&mut self) -> io::Result<Option<usize>> {
        let line = self.read_line()?;
        if line == b"$-1" {
            return Ok(None);
        }
        match line.split_first() {
            Some((b'$', n)) => std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n <= MAX_REPLY)
                .map(Some)
                .ok_or_else(|| bad_reply(line)),
            _ => Err(bad_reply(line)),
        }
    }

    /// A bulk string's body (exactly `dst.len()` bytes) and its `\r\n`.
    fn bulk_body(&mut self, dst: &mut [u8]) -> io::Result<()> {
        self.conn.read_exact(dst)?;
        let mut crlf = [0u8; 2];
        self.conn.read_exact(&mut crlf)?;
        if crlf != *b"\r\n" {
            return Err(bad_reply(&crlf));
        }
        Ok(())
    }
}

/// rustls sessions kept in a redis server: the network-cache baseline that
/// `scsp serve --baseline-redis` and the demo's set-up (d) compare scsp
/// against. `take` is `GETDEL`, so a single-use ticket resumes once.
///
/// A baseline, not a backend: the link to redis is plain TCP (sessions are
/// secrets; use it on loopback only), there is one connection per process,
/// and a failed round trip is a miss (the connection is re-made on the next
/// call).
pub struct RedisSessionStore {
    addr: SocketAddr,
    /// Keeps the sessions of different server configurations apart.
    prefix: Vec<u8>,
    ttl: u32,
    conn: std::sync::Mutex<Option<RedisClient>>,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RedisSessionStore {
    /// A store in the redis server at `addr`, for sessions of the server
    /// configuration named `context_id`; connects now, so a wrong address
    /// fails at start.
    pub fn connect(addr: SocketAddr, context_id: &[u8], ttl_secs: u32) -> io::Result<Self> {
        let client = RedisClient::connect(addr)?;
        let mut prefix = b"scsp-baseline:".to_vec();
        prefix.extend_from_slice(&(context_id.len() as u32).to_be_bytes());
        prefix.extend_from_slice(context_id);
        Ok(RedisSessionStore {
            addr,
            prefix,
            ttl: ttl_secs.max(1),
            conn: std::sync::Mutex::new(Some(client)),
        })
    }

    /// Run `op` on the connection (made again if the last call failed); an
    /// error drops the connection, whose reply stream may be out of step.
    fn with<T>(
        &self,
        key: &[u8],
        op: impl FnOnce(&mut RedisClient, &[u8]) -> io::Result<T>,
    ) -> Option<T> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(key);
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if conn.is_none() {
            *conn = RedisClient::connect(self.addr).ok();
        }
        let result = op(conn.as_mut()?, &k);
        if result.is_err() {
            *conn = None;
        }
        result.ok()
    }
}

impl rustls::server::StoresServerSessions for RedisSessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.with(&key, |c, k| c.set(k, &value, self.ttl)).is_some()
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.with(key, |c, k| c.get_vec(k)).flatten()
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.with(key, |c, k| c.getdel_vec(k)).flatten()
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// An unexpected reply, quoted (a server error is `-ERR ...`).
fn bad_reply(line: &[u8]) -> io::Error {
    let shown = String::from_utf8_lossy(&line[..line.len().min(120)]);
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from redis: {shown:?}"),
    )
}
