//! Shared helpers of the C ABI tests: the installed library, gcc, child
//! processes that are always reaped, and a deadline on every external
//! command (a hang guard, not a timing assertion).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// How long any external command may run before we call it hung.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the C tests cannot run here, if they cannot. Set
/// `SCSP_REQUIRE_C_TESTS=1` (CI does) to make a missing tool a failure.
pub fn missing_tools(needs_openssl: bool) -> Option<String> {
    let mut why = Vec::new();
    for tool in ["gcc", "nm", "pkg-config"] {
        if Command::new(tool).arg("--version").output().is_err() {
            why.push(format!("{tool} not found"));
        }
    }
    if needs_openssl {
        if Command::new("openssl").arg("version").output().is_err() {
            why.push("openssl (command) not found".into());
        }
        let probe = Command::new("gcc")
            .args(["-E", "-x", "c", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(b"#include <openssl/ssl.h>\n")?;
                c.wait()
            });
        if !probe.map(|s| s.success()).unwrap_or(false) {
            why.push("OpenSSL headers not found (install libssl-dev)".into());
        }
    }
    if why.is_empty() {
        return None;
    }
    let why = why.join(", ");
    if std::env::var_os("SCSP_REQUIRE_C_TESTS").is_some_and(|v| v == "1") {
        panic!("C tests required (SCSP_REQUIRE_C_TESTS=1) but {why}");
    }
    Some(why)
}

/// Run a command to completion within the hang guard; panic if it hangs.
pub fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, not yet reaped
            // (the waiting thread reaps it after this).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{what} hung for {HANG_GUARD:?}");
        }
    }
}

/// Run and require success; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// libscsp built and installed under a private PREFIX by
/// `scripts/install.sh`, once per test binary.
pub struct Installed {
    pub prefix: PathBuf,
}

impl Installed {
    pub fn lib(&self) -> PathBuf {
        self.prefix.join("lib")
    }
    pub fn include(&self) -> PathBuf {
        self.prefix.join("include")
    }
    pub fn pkg_config(&self, args: &[&str]) -> Vec<String> {
        let out = run_ok(
            Command::new("pkg-config")
                .env("PKG_CONFIG_PATH", self.lib().join("pkgconfig"))
                .args(args),
        );
        out.split_whitespace().map(String::from).collect()
    }
}

extern "C" fn remove_install_dirs() {
    for slot in [&INSTALLED, &INSTALLED_RELEASE] {
        if let Some(Ok(i)) = slot.get() {
            let _ = std::fs::remove_dir_all(&i.prefix);
        }
    }
}

static INSTALLED: OnceLock<Result<Installed, String>> = OnceLock::new();
static INSTALLED_RELEASE: OnceLock<Result<Installed, String>> = OnceLock::new();

/// Build (with this test's own profile, into its own target dir) and
/// install libscsp.
pub fn installed() -> &'static Installed {
    install(&INSTALLED, None)
}

/// libscsp as it ships: the release build, for properties only optimised
/// code has (an unoptimised build keeps every temporary on the stack, so
/// what a copy leaves there is not what a server would leave).
pub fn installed_release() -> &'static Installed {
    install(&INSTALLED_RELEASE, Some("release"))
}

fn install(
    slot: &'static OnceLock<Result<Installed, String>>,
    profile: Option<&str>,
) -> &'static Installed {
    let r = slot.get_or_init(|| {
        // <target>/<profile>/deps/c_abi-<hash>
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let profile_dir = exe.parent().and_then(Path::parent).ok_or("exe path")?;
        let target = profile_dir.parent().ok_or("target dir")?;
        let profile = match profile {
            Some(p) => std::ffi::OsStr::new(p),
            None => profile_dir.file_name().ok_or("profile")?,
        };
        let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "c-abi-prefix-{}-{}",
            profile.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&prefix);
        run_ok(
            Command::new("bash")
                .arg(repo().join("scripts/install.sh"))
                .env("PREFIX", &prefix)
                .env("PROFILE", profile)
                .env("CARGO_TARGET_DIR", target)
                .env("CARGO", env!("CARGO")),
        );
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        // SAFETY: registers a plain extern "C" fn to run at exit(), once; it
        // only removes directories this process created.
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(remove_install_dirs);
        });
        Ok(Installed { prefix })
    });
    match r {
        Ok(i) => i,
        Err(e) => panic!("installing libscsp failed: {e}"),
    }
}

/// How a C program is linked to libscsp.
#[derive(Clone, Copy, Debug)]
pub enum Link {
    /// libscsp.so through pkg-config, with an rpath to the install dir.
    Shared,
    /// libscsp.a, plus the system libraries a Rust staticlib needs.
    Static,
}

/// Compile C sources against the installed header and library.
pub fn compile(
    inst: &Installed,
    sources: &[PathBuf],
    out: &Path,
    link: Link,
    openssl: bool,
) -> PathBuf {
    let mut cmd = Command::new("gcc");
    cmd.args([
        "-std=c11",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
    ]);
    cmd.args(sources).arg("-o").arg(out);
    match link {
        Link::Shared => {
            let pkg = if openssl { "scsp-openssl" } else { "scsp" };
            cmd.args(inst.pkg_config(&["--cflags", "--libs", pkg]));
            // An RPATH, not a RUNPATH: `cargo test` puts its own target
            // dirs (which hold a libscsp.so too) in LD_LIBRARY_PATH, which
            // a RUNPATH yields to; the programs must run against the
            // library installed here.
            cmd.arg(format!("-Wl,-rpath,{}", inst.lib().display()));
            cmd.arg("-Wl,--disable-new-dtags");
        }
        Link::Static => {
            cmd.arg(format!("-I{}", inst.include().display()));
            cmd.arg(inst.lib().join("libscsp.a"));
            if openssl {
                cmd.args(["-lssl", "-lcrypto"]);
            }
            cmd.args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"]);
        }
    }
    cmd.arg("-lpthread");
    run_ok(&mut cmd);
    out.to_path_buf()
}

/// A child process that is always stopped (SIGTERM, so a prefork master
/// stops its workers; SIGKILL after 5 s) and reaped, even when a test fails.
pub struct Reaped {
    pub child: childguard::Guard,
    pub stdout_lines: mpsc::Receiver<String>,
}

impl Reaped {
    pub fn spawn(cmd: &mut Command) -> Reaped {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Reaped {
            child: childguard::Guard::spawned(child).grace(Duration::from_secs(5)),
            stdout_lines: rx,
        }
    }

    /// The next line of stdout; panics if the process ends or hangs first.
    pub fn line(&self) -> String {
        self.stdout_lines
            .recv_timeout(HANG_GUARD)
            .expect("child ended (or hung) before printing the expected line")
    }
}
