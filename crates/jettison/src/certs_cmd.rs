//! `jettison certs`: a CA and host certificates for small deployments.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Subcommand;
use jettison_tls::certs::{self, IssueRequest};

/// `jettison certs ...`
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create the deployment's CA: DIR/ca.pem (copy to every host) and
    /// DIR/ca.key (keep it secret; it signs host certificates).
    Init {
        /// Directory for the CA (created if needed).
        #[arg(long)]
        dir: PathBuf,
        /// Organisation name in the CA's subject.
        #[arg(long, default_value = "jettison")]
        org: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a host certificate (client and server use) signed by the CA in
    /// DIR; prints a [tls] section to paste into the host's config.
    Issue {
        /// Directory of the CA (from `jettison certs init`).
        #[arg(long)]
        dir: PathBuf,
        /// The host's jettison name, e.g. desk-17 or consol-1: the name its
        /// peers list in allowed_peers and connect to.
        #[arg(long)]
        host: String,
        /// More DNS names for the certificate (repeatable).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// IP addresses for the certificate (repeatable; informational,
        /// jettison checks names).
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Where to write <host>.pem and <host>.key (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Replace an existing certificate and key of this host.
        #[arg(long)]
        force: bool,
    },
    /// Revoke host certificates: adds them to the CA's certificate
    /// revocation list DIR/ca.crl (created, or extended), signed with the
    /// CA's key. Copy it to every host (the path in each [tls] `crl`) and
    /// reload the daemons (`systemctl reload jettison-agent`/`-server`).
    Revoke {
        /// Directory of the CA (with ca.key).
        #[arg(long)]
        dir: PathBuf,
        /// Revoke every certificate issued to this host (repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Revoke the certificate with this serial number, in hex as
        /// `openssl x509 -serial` prints it (repeatable).
        #[arg(long = "serial", value_name = "HEX")]
        serials: Vec<String>,
        /// Where the CRL is (default: DIR/ca.crl).
        #[arg(long)]
        crl: Option<PathBuf>,
    },
}

/// Runs a `certs` subcommand.
pub fn run(cmd: &CertsCommand) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::Init { dir, org, days } => {
            let ca = certs::ca_files(dir);
            if ca.cert.exists() || ca.key.exists() {
                bail!(
                    "a CA already exists in {} (ca.pem / ca.key); refusing to overwrite it: \
                     host certificates signed by it would stop working",
                    dir.display()
                );
            }
            let ca = certs::create_ca(dir, org, *days).context("creating the CA")?;
            println!(
                "CA certificate: {}  (copy to every host)",
                absolute(&ca.cert).display()
            );
            println!(
                "CA key:         {}  (mode 0600; keep it secret, off the hosts if you can)",
                absolute(&ca.key).display()
            );
            println!(
                "next: jettison certs issue --dir {} --host NAME",
                dir.display()
            );
            Ok(())
        }
        CertsCommand::Issue {
            dir,
            host,
            names,
            ips,
            out,
            days,
            force,
        } => {
            certs::check_host_name(host)?;
            let ca = certs::ca_files(dir);
            if !ca.cert.is_file() || !ca.key.is_file() {
                bail!(
                    "no CA in {} (ca.pem and ca.key); create one with `jettison certs init --dir {}`",
                    dir.display(),
                    dir.display()
                );
            }
            anyhow::ensure!(*days > 0, "--days must be at least 1");
            let out_dir = out.as_deref().unwrap_or(dir);
            let existing = certs::host_files(out_dir, host);
            if !force && (existing.cert.exists() || existing.key.exists()) {
                bail!(
                    "{} or {} already exists; pass --force to replace them",
                    existing.cert.display(),
                    existing.key.display()
                );
            }
            let now = SystemTime::now();
            let files = certs::issue_request(
                dir,
                &IssueRequest {
                    host,
                    extra_names: names,
                    ips,
                    out_dir,
                    not_before: now - Duration::from_secs(300),
                    not_after: now + Duration::from_secs(u64::from(*days) * 86_400),
                    overwrite: *force,
                },
            )
            .with_context(|| format!("issuing a certificate for {host}"))?;
            let files = certs::CertFiles {
                cert: absolute(&files.cert),
                key: absolute(&files.key),
            };
            println!("certificate: {}", files.cert.display());
            println!("key:         {}  (mode 0600)", files.key.display());
            println!();
            println!("# for {host}'s config (adjust the paths if you copy the files elsewhere):");
            print!("{}", certs::tls_snippet(&absolute(&ca.cert), &files));
            Ok(())
        }
        CertsCommand::Revoke {
            dir,
            hosts,
            serials,
            crl,
        } => revoke(dir, hosts, serials, crl.as_deref()),
    }
}

fn revoke(
    dir: &Path,
    hosts: &[String],
    serials: &[String],
    crl: Option<&Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !hosts.is_empty() || !serials.is_empty(),
        "name what to revoke: --host NAME or --serial HEX"
    );
    let ca = certs::ca_files(dir);
    if !ca.cert.is_file() || !ca.key.is_file() {
        bail!(
            "no CA in {} (ca.pem and ca.key): revoking needs the CA's key",
            dir.display()
        );
    }
    let path = crl
        .map(Path::to_owned)
        .unwrap_or_else(|| certs::crl_path(dir));
    let r = certs::revoke(dir, &path, hosts, serials, SystemTime::now())
        .context("building the revocation list")?;
    jettison_daemon::durable::write_atomic(&path, r.crl_pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let who = |c: &certs::RevokedCert| match &c.host {
        Some(h) => format!("{} ({h})", c.serial),
        None => c.serial.clone(),
    };
    for c in &r.added {
        println!("revoked:         {}", who(c));
    }
    for c in &r.already {
        println!("already revoked: {}", who(c));
    }
    println!(
        "CRL: {}  (number {}, {} revoked in all)",
        absolute(&path).display(),
        r.crl_number,
        r.total
    );
    println!(
        "next: copy it to every host (the path in [tls] crl, e.g. /etc/jettison/tls/ca.crl) \
         and reload the daemons: systemctl reload jettison-agent / jettison-server"
    );
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}
