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

/// The serial of a host certificate file, as the CRL lists it.
fn serial(path: &std::path::Path) -> String {
    jettison_tls::certs::file_serial(path).unwrap()
}

#[test]
fn certs_revoke_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();

    let o = jettison(&["certs", "revoke", "--dir", d, "--host", "desk-17"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("revoking needs the CA's key"),
        "{:?}",
        text(&o)
    );

    assert!(jettison(&["certs", "init", "--dir", d]).status.success());
    for host in ["consol-1", "desk-17", "desk-18"] {
        let o = jettison(&["certs", "issue", "--dir", d, "--host", host]);
        assert!(o.status.success(), "{:?}", text(&o));
        assert!(text(&o).0.contains("# crl = "), "{:?}", text(&o));
    }

    let o = jettison(&["certs", "revoke", "--dir", d]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("--host NAME or --serial HEX"),
        "{:?}",
        text(&o)
    );
    let o = jettison(&["certs", "revoke", "--dir", d, "--host", "desk-404"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("no certificate issued to \"desk-404\""),
        "{:?}",
        text(&o)
    );
    assert!(!dir.join("ca.crl").exists());

    let s17 = serial(&dir.join("desk-17.pem"));
    let o = jettison(&["certs", "revoke", "--dir", d, "--host", "desk-17"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let (out, _) = text(&o);
    assert!(
        out.contains(&format!("revoked:         {s17} (desk-17)")),
        "{out}"
    );
    assert!(out.contains("number 1, 1 revoked in all"), "{out}");
    assert!(out.contains("systemctl reload"), "{out}");

    // By serial (colon-separated, upper case), with desk-17 again.
    let s18 = serial(&dir.join("desk-18.pem"));
    let typed = s18
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let o = jettison(&[
        "certs", "revoke", "--dir", d, "--serial", &typed, "--host", "desk-17",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let (out, _) = text(&o);
    assert!(
        out.contains(&format!("revoked:         {s18} (desk-18)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("already revoked: {s17} (desk-17)")),
        "{out}"
    );
    assert!(out.contains("number 2, 2 revoked in all"), "{out}");

    // The daemons' side reads it: the CRL is the CA's and lists both.
    let settings = jettison_tls::TlsSettings {
        crl: Some(dir.join("ca.crl")),
        ..jettison_tls::TlsSettings::new(
            dir.join("ca.pem"),
            dir.join("consol-1.pem"),
            dir.join("consol-1.key"),
            vec!["desk-17".into(), "desk-18".into()],
        )
    };
    let ctx = jettison_tls::TlsContext::load(&settings).unwrap();
    let mut got = ctx.revoked_serials().unwrap();
    got.sort();
    let mut want = vec![s17, s18];
    want.sort();
    assert_eq!(got, want);

    // A bad serial is refused and the CRL is left as it was.
    let before = std::fs::read(dir.join("ca.crl")).unwrap();
    let o = jettison(&["certs", "revoke", "--dir", d, "--serial", "zz"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("hexadecimal"), "{:?}", text(&o));
    assert_eq!(std::fs::read(dir.join("ca.crl")).unwrap(), before);
}
