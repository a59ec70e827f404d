//! The CLI as an operator meets it: bad flags and impossible values exit 2
//! with a message naming what to fix; good ones work; a missing segment is
//! an error (1), not a usage error.

use std::process::Command;

fn scsp(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scsp"))
        .args(args)
        .output()
        .expect("run scsp");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg");
    let seg = seg.to_str().unwrap();
    for (args, names) in [
        (vec!["create", seg, "--size", "12XB"], "--size"),
        (vec!["create", seg, "--size", "1KiB"], "size"),
        (vec!["create", seg, "--mode", "0999"], "--mode"),
        (
            vec!["create", seg, "--group", "no-such-group-scsp"],
            "--group",
        ),
        (vec!["bench", "--values", "0"], "--values"),
        (vec!["bench", "--dir", "/nonexistent-scsp"], "--dir"),
        (vec!["stats"], "PATH"),
        (
            vec![
                "serve",
                "--cert",
                "c.pem",
                "--key",
                "k.pem",
                "--baseline-redis",
                "127.0.0.1:6379",
            ],
            "--tickets off",
        ),
    ] {
        let (code, text) = scsp(&args);
        assert_eq!(code, 2, "scsp {args:?}: {text}");
        assert!(
            text.contains(names),
            "scsp {args:?} should name {names}: {text}"
        );
    }
    assert!(
        !std::path::Path::new(seg).exists(),
        "a refused create left a file"
    );
}

#[test]
fn create_stats_verify_work_and_a_missing_segment_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg");
    let seg = seg.to_str().unwrap();
    let (code, text) = scsp(&["create", seg, "--size", "4MiB"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = scsp(&["stats", seg]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("pages "), "{text}");
    let (code, text) = scsp(&["verify", seg]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("clean"), "{text}");
    let missing = dir.path().join("missing");
    let (code, text) = scsp(&["stats", missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
}
