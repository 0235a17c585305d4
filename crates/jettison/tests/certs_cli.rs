//! `jettison certs init` / `issue` as an operator runs them.

use std::process::{Command, Output};

fn jettison(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jettison"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn certs_init_and_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let dir_s = dir.to_str().unwrap();

    let o = jettison(&["certs", "issue", "--dir", dir_s, "--host", "desk-17"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("no CA in"), "{:?}", text(&o));

    let o = jettison(&["certs", "init", "--dir", dir_s, "--org", "Lab"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = jettison(&["certs", "init", "--dir", dir_s]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("a CA already exists"), "{:?}", text(&o));

    let o = jettison(&["certs", "issue", "--dir", dir_s, "--host", "Desk_17"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("invalid host name \"Desk_17\""),
        "{:?}",
        text(&o)
    );

    let issue = [
        "certs",
        "issue",
        "--dir",
        dir_s,
        "--host",
        "consol-1",
        "--ip",
        "127.0.0.1",
    ];
    let o = jettison(&issue);
    assert!(o.status.success(), "{:?}", text(&o));
    let (out, _) = text(&o);
    assert!(out.contains("[tls]\n"), "{out}");
    assert!(out.contains("allowed_peers = []"), "{out}");
    assert!(
        out.contains(&format!(
            "cert = \"{}\"",
            dir.join("consol-1.pem").display()
        )),
        "{out}"
    );

    let o = jettison(&issue);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("pass --force"), "{:?}", text(&o));
    let mut forced = issue.to_vec();
    forced.push("--force");
    assert!(jettison(&forced).status.success());

    let ctx = jettison_tls::TlsContext::load(&jettison_tls::TlsSettings::new(
        dir.join("ca.pem"),
        dir.join("consol-1.pem"),
        dir.join("consol-1.key"),
        vec!["desk-17".into()],
    ))
    .unwrap();
    assert_eq!(ctx.host_name(), "consol-1");
}
