//! jettison's programs as a library: the command lines of the agent, the
//! server and the operator's command (`cli`, also read by the manual-page
//! generator), the operator's exit codes (`exit`) and commands.

pub mod certs_cmd;
pub mod cli;
pub mod exit;
pub mod operator;
pub mod power_view;
pub mod simulate_cmd;
mod simulate_plot;

/// Prints a failure as the operator asked: a line on stderr, or the JSON
/// error object on stdout.
pub fn report(format: cli::Format, err: &anyhow::Error) {
    let failure = exit::classify(err);
    match format {
        cli::Format::Text => eprintln!("jettison: {err:#}"),
        cli::Format::Json => println!("{}", exit::json(failure, &format!("{err:#}"))),
    }
}
