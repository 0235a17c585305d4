//! Writes the manual pages and shell completions of jettison's three
//! programs from their clap definitions (`jettison::cli`), for the
//! packages (`cargo xtask package`). Not shipped.
//!
//! `jettison-manuals OUT` writes `OUT/man/<page>.<section>` (the daemons
//! in section 8, the operator's command and each of its subcommands in
//! section 1) and `OUT/completions/{bash,zsh,fish}/<file>` under the file
//! names each shell looks for.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_complete::Shell;

/// The section of a program's manual pages: daemons run by the system are
/// administration commands (8), the operator's command is a user command (1).
fn section(program: &str) -> &'static str {
    if program == "jettison" {
        "1"
    } else {
        "8"
    }
}

/// Writes `cmd`'s page and, recursively, one per visible subcommand
/// (`jettison-migrate.1`, ...).
fn pages(cmd: clap::Command, section: &str, dir: &Path) -> anyhow::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        pages(sub, section, dir)?;
    }
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(cmd)
        .section(section)
        .source(format!("jettison {version}"))
        .manual("jettison");
    let path = man.generate_to(dir)?;
    println!("{}", path.display());
    Ok(())
}

/// Where each shell looks for a program's completion, in the package's
/// tree.
fn completion_file(shell: Shell, program: &str) -> PathBuf {
    match shell {
        Shell::Bash => PathBuf::from(format!("bash/{program}")),
        Shell::Zsh => PathBuf::from(format!("zsh/_{program}")),
        Shell::Fish => PathBuf::from(format!("fish/{program}.fish")),
        other => PathBuf::from(format!("{other}/{program}")),
    }
}

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .context("usage: jettison-manuals OUT_DIR")?,
    );
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    for cmd in jettison::cli::commands() {
        let program = cmd.get_name().to_string();
        pages(cmd.clone(), section(&program), &man)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let path = out
                .join("completions")
                .join(completion_file(shell, &program));
            std::fs::create_dir_all(path.parent().expect("a directory"))?;
            let mut file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            clap_complete::generate(shell, &mut cmd.clone(), &program, &mut file);
            println!("{}", path.display());
        }
    }
    Ok(())
}
