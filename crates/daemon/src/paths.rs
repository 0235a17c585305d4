//! Checks of the paths a daemon's configuration names, done without
//! acting (start-up checks and `--check-config`), and the list of problems
//! those checks give.

use std::path::{Path, PathBuf};

/// The problems of a daemon's configuration found by its start-up checks,
/// each a line for the operator.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct Problems {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// The executable `program` names: a path (with a `/`) to an executable
/// file, or a name found on `PATH`.
pub fn find_program(program: &Path) -> Result<PathBuf, String> {
    which::which(program).map_err(|e| format!("{}: {e}", program.display()))
}

/// Whether `dir` is a directory, or could be made one: it does not exist
/// and its nearest existing ancestor is a directory. Nothing is created.
pub fn dir_can_be(dir: &Path) -> Result<(), String> {
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) if at == dir => return Err(format!("{}: not a directory", dir.display())),
            Ok(_) => {
                return Err(format!(
                    "{}: cannot be made, {} is not a directory",
                    dir.display(),
                    at.display()
                ))
            }
            // Missing, or under something that is not a directory (said
            // when that ancestor is reached).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                    _ => return Ok(()),
                }
            }
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
}

/// Whether `dir` exists and is a directory.
pub fn existing_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{}: not a directory", dir.display())),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_path_or_by_path() {
        assert!(find_program(Path::new("sh")).is_ok());
        assert!(find_program(Path::new("/bin/sh")).is_ok());
        let e = find_program(Path::new("jettison-no-such-program")).unwrap_err();
        assert!(e.contains("jettison-no-such-program"), "{e}");
        let e = find_program(Path::new("/nonexistent/qemu")).unwrap_err();
        assert!(e.contains("/nonexistent/qemu"), "{e}");
    }

    #[test]
    fn directories_exist_or_can_be_made_but_not_under_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(dir_can_be(tmp.path()).is_ok());
        assert!(dir_can_be(&tmp.path().join("a/b/c")).is_ok());
        let e = dir_can_be(&file).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        let e = dir_can_be(&file.join("sub")).unwrap_err();
        assert!(e.contains("cannot be made"), "{e}");
        assert!(existing_dir(tmp.path()).is_ok());
        assert!(existing_dir(&tmp.path().join("none")).is_err());
        assert!(!tmp.path().join("a").exists(), "nothing is created");
    }
}
