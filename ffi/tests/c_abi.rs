//! The C ABI as C sees it: libscsp built and installed with
//! `scripts/install.sh` into a temporary PREFIX, C programs compiled with gcc
//! against the installed header and library (both `.so` and `.a`).
//!
//! Skips (printing why) only when gcc, nm, pkg-config or the OpenSSL
//! headers are missing; `SCSP_REQUIRE_C_TESTS=1` turns that into a failure.

mod common;

use common::{compile, installed, missing_tools, run, run_ok, Link};
use scsp::{Cache, Config};
use std::collections::BTreeSet;
use std::process::Command;

fn small() -> Config {
    Config {
        size: 1 << 20,
        shards: 2,
        max_value: 1024,
        ..Config::default()
    }
}

/// Function names declared in a C header: identifiers `scsp_*` followed by
/// `(`, outside comments and preprocessor lines.
fn declared_functions(header: &str) -> BTreeSet<String> {
    let mut code = String::new();
    let mut rest = header;
    while let Some(i) = rest.find("/*") {
        code.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    code.push_str(rest);
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut found = BTreeSet::new();
    let mut i = 0;
    while let Some(off) = code[i..].find("scsp_") {
        let start = i + off;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let next = code[end..].trim_start();
        if boundary && next.starts_with('(') {
            found.insert(code[start..end].to_string());
        }
        i = end;
    }
    found
}

#[test]
fn header_declares_exactly_the_exported_symbols() {
    if let Some(why) = missing_tools(false) {
        eprintln!("skipping: {why}");
        return;
    }
    let inst = installed();
    let nm = run_ok(
        Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(inst.lib().join("libscsp.so")),
    );
    let mut exported = BTreeSet::new();
    for line in nm.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, kind, name] = f[..] {
            if kind == "T" {
                assert!(
                    name.starts_with("scsp_"),
                    "libscsp.so exports {name}, which is not part of the ABI"
                );
                exported.insert(name.to_string());
            }
        }
    }
    let header = std::fs::read_to_string(inst.include().join("scsp.h")).unwrap();
    let declared = declared_functions(&header);
    let missing: Vec<_> = exported.difference(&declared).collect();
    let phantom: Vec<_> = declared.difference(&exported).collect();
    assert!(
        missing.is_empty() && phantom.is_empty(),
        "scsp.h and libscsp.so disagree.\n exported but not declared: {missing:?}\n declared but not exported: {phantom:?}"
    );
    assert!(exported.len() >= 13, "too few symbols: {exported:?}");
    // The parser itself must see through comments and macros.
    assert_eq!(
        declared_functions("/* scsp_x(1) */ #define scsp_m(a) a\nint scsp_f (void);"),
        BTreeSet::from(["scsp_f".to_string()])
    );
}

#[test]
fn installed_library_has_soname_symlinks_and_pkg_config() {
    if let Some(why) = missing_tools(false) {
        eprintln!("skipping: {why}");
        return;
    }
    let inst = installed();
    let lib = inst.lib();
    assert_eq!(
        std::fs::read_link(lib.join("libscsp.so")).unwrap(),
        std::path::Path::new("libscsp.so.1")
    );
    assert!(lib.join("libscsp.so.1").exists() && lib.join("libscsp.a").exists());
    assert!(inst.include().join("scsp_openssl.h").exists());
    let libs = inst.pkg_config(&["--libs", "scsp"]);
    assert!(libs.contains(&"-lscsp".to_string()), "{libs:?}");
    let cflags = inst.pkg_config(&["--cflags", "scsp"]);
    assert_eq!(cflags, vec![format!("-I{}", inst.include().display())]);
}

/// The C unit test against one link mode: every documented code, threads,
/// fork, and values crossing between Rust and C in one segment.
fn c_unit_test(link: Link) {
    if let Some(why) = missing_tools(false) {
        eprintln!("skipping: {why}");
        return;
    }
    let inst = installed();
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(
        inst,
        &[common::repo().join("ffi/tests/c/abi_test.c")],
        &dir.path().join("abi_test"),
        link,
        false,
    );
    if let Link::Static = link {
        let dynamic = run_ok(Command::new("readelf").arg("-d").arg(&exe));
        assert!(
            !dynamic.contains("libscsp"),
            "static build needs libscsp.so:\n{dynamic}"
        );
    }
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let shared = scratch.join("shared");
    {
        let cache = Cache::create(&shared, &small()).unwrap();
        assert_eq!(cache.put(b"rust-key", b"from-rust", 300), scsp::Stored::Ok);
    }
    let before = scsp::clock::now_secs();
    let out = run(Command::new(&exe).arg(&scratch));
    let after = scsp::clock::now_secs();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "abi_test ({link:?}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    let cache = std::sync::Arc::new(Cache::open(&shared).unwrap());
    assert_eq!(cache.get_vec(b"c-key").as_deref(), Some(&b"from-c"[..]));
    // scsp_put clamps a TTL over SCSP_MAX_TTL_SECS to it.
    let max = u64::from(scsp::MAX_TTL_SECS);
    for key in ["c-ttl-max", "c-ttl-7d+1", "c-ttl-7d"] {
        let expiry = expiry_of(&cache, key.as_bytes(), b"v", before + max..=after + max);
        assert!(
            expiry.is_some(),
            "{key}: put between {before} and {after}, but its expiry is not 7 days later"
        );
    }
    let ring = scsp::keyring::KeyRing::new(cache.clone(), Default::default()).unwrap();
    let rust_name = ring.current().expect("a current ticket key").name;
    assert_eq!(
        cache.get_vec(b"c-ticket-key-name").as_deref(),
        Some(&rust_name[..]),
        "C and Rust see different ticket keys"
    );
}

/// The expiry (unix seconds) of `key`'s live entry holding `value`, if it
/// is one of `window`.
fn expiry_of(
    cache: &std::sync::Arc<Cache>,
    key: &[u8],
    value: &[u8],
    window: std::ops::RangeInclusive<u64>,
) -> Option<u64> {
    let replica = scsp::replication::Replica::new(cache.clone());
    let mut scratch = Vec::new();
    let origin = cache.host_id();
    window
        .into_iter()
        .find(|&e| replica.holds(key, value, e, origin, &mut scratch))
}

#[test]
fn a_c_program_uses_a_sets_segment_as_any_other() {
    if let Some(why) = missing_tools(false) {
        eprintln!("skipping: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(
        installed(),
        &[common::repo().join("ffi/tests/c/sets_test.c")],
        &dir.path().join("sets_test"),
        Link::Shared,
        false,
    );
    let seg = dir.path().join("sets");
    let cfg = Config {
        layout: scsp::Layout::Sets,
        size: 1 << 20,
        max_value: 176,
        ..Config::default()
    };
    let cache = Cache::create(&seg, &cfg).unwrap();
    assert_eq!(cache.put(b"rust-key", b"from-rust", 300), scsp::Stored::Ok);
    let out = run_ok(Command::new(&exe).arg(&seg));
    assert!(out.contains("checks passed"), "{out}");
    assert_eq!(cache.get_vec(b"c-key").as_deref(), Some(&b"from-c"[..]));
}

#[test]
fn c_unit_test_passes_with_the_shared_library() {
    c_unit_test(Link::Shared);
}

#[test]
fn c_unit_test_passes_with_the_static_library() {
    c_unit_test(Link::Static);
}

/// The README / docs/c-api.md example is a complete program that compiles
/// and links against the installed library.
#[test]
fn docs_example_compiles() {
    if let Some(why) = missing_tools(true) {
        eprintln!("skipping: {why}");
        return;
    }
    let doc = std::fs::read_to_string(common::repo().join("docs/c-api.md")).unwrap();
    let start = doc.find("```c\n").expect("docs/c-api.md has a ```c block") + 5;
    let code = &doc[start..start + doc[start..].find("```").unwrap()];
    assert!(
        code.lines().count() <= 20,
        "the README example must stay within 20 lines"
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("example.c");
    std::fs::write(&src, code).unwrap();
    let exe = compile(
        installed(),
        &[src],
        &dir.path().join("example"),
        Link::Shared,
        true,
    );
    assert!(exe.exists());
}

/// Both headers are usable from C++ (extern "C", initialiser macros).
/// Skipped when g++ is not installed (it is optional).
#[test]
fn headers_compile_as_cpp() {
    if missing_tools(true).is_some() || Command::new("g++").arg("--version").output().is_err() {
        eprintln!("skipping: g++ or the C toolchain is missing");
        return;
    }
    let inst = installed();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("headers.cpp");
    std::fs::write(
        &src,
        "#include <scsp_openssl.h>\n\
         int main() {\n\
           scsp_options o = SCSP_OPTIONS_INIT; struct scsp_stats s = SCSP_STATS_INIT;\n\
           scsp_cache *c = nullptr;\n\
           int rc = scsp_open(\"\", &o, &c);\n\
           return (rc == SCSP_E_INVAL && scsp_stats(c, &s) == SCSP_E_INVAL) ? 0 : 1;\n\
         }\n",
    )
    .unwrap();
    let exe = dir.path().join("headers");
    let mut cmd = Command::new("g++");
    cmd.args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
        .arg(&src)
        .arg("-o")
        .arg(&exe);
    cmd.args(inst.pkg_config(&["--cflags", "--libs", "scsp-openssl"]));
    cmd.arg(format!("-Wl,-rpath,{}", inst.lib().display()));
    run_ok(&mut cmd);
    run_ok(&mut Command::new(&exe));
}
