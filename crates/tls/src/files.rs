//! Files of certificates and keys: no silent overwrite, keys mode 0600.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::certs::CertFiles;
use crate::TlsError;

pub(crate) fn refuse_existing(files: &CertFiles, overwrite: bool) -> Result<(), TlsError> {
    if overwrite {
        return Ok(());
    }
    for path in [&files.cert, &files.key] {
        if path.exists() {
            return Err(TlsError::Exists { path: path.clone() });
        }
    }
    Ok(())
}

pub(crate) fn make_dir(dir: &Path) -> Result<(), TlsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })
}

pub(crate) fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes the key (0600) then the certificate (0644), each as a new file.
pub(crate) fn write_files(
    files: &CertFiles,
    cert_pem: &str,
    key_pem: &str,
    overwrite: bool,
) -> Result<(), TlsError> {
    for (path, text, mode) in [(&files.key, key_pem, 0o600), (&files.cert, cert_pem, 0o644)] {
        let result = (|| {
            if overwrite && path.exists() {
                std::fs::remove_file(path)?;
            }
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })();
        result.map_err(|source| TlsError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}
