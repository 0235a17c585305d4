//! The command lines of jettison's three programs (clap), in one place so
//! that the binaries and the manual-page and completion generator
//! (`jettison-manuals`, not shipped) read the same definitions.

mod daemons;
mod operator;

pub use daemons::{report_check, AgentArgs, ServerArgs, EXIT_INVALID_CONFIG};
pub use operator::{wants_json, Command, Format, OperatorArgs};

/// Each program's clap command, by executable name, for the generator.
pub fn commands() -> Vec<clap::Command> {
    use clap::CommandFactory;
    vec![
        OperatorArgs::command(),
        AgentArgs::command(),
        ServerArgs::command(),
    ]
}
