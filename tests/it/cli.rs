//! The binary's command line and configuration errors.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrokv"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_config_file_is_reported_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "resp:\n  max_clientz: 4\n").unwrap();
    let (ok, stderr) = run(&["--config", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("unknown field `max_clientz`"), "{stderr}");

    let (ok, stderr) = run(&["--config", "/no/such/file.yaml"]);
    assert!(!ok);
    assert!(stderr.contains("/no/such/file.yaml"), "{stderr}");
}

#[test]
fn multi_node_config_needs_a_node_name() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.yaml");
    let (ok, stderr) = run(&["--config", example]);
    assert!(!ok);
    assert!(stderr.contains("--node"), "{stderr}");
    let (ok, stderr) = run(&["--config", example, "--node", "n9"]);
    assert!(!ok);
    assert!(stderr.contains("n9") && stderr.contains("n1"), "{stderr}");
}

#[test]
fn a_busy_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = crate::harness::ServerProcess::start(dir.path());
    let (ok, stderr) = run(&[
        "--port",
        "0",
        "--peer-port",
        "0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("cannot open the database"), "{stderr}");
}
