//! The operator's command. Exit codes: `jettison::exit`.

use std::process::ExitCode;

use clap::Parser;
use jettison::cli::OperatorArgs;
use jettison::exit::{self, Failure};

#[tokio::main]
async fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    let args = match OperatorArgs::try_parse_from(&raw) {
        Ok(a) => a,
        Err(e) if e.use_stderr() && jettison::cli::wants_json(&raw) => {
            println!("{}", exit::json(Failure::Usage, e.to_string().trim_end()));
            return ExitCode::from(Failure::Usage.code());
        }
        // Help and version exit 0; usage errors exit 2 (Failure::Usage).
        Err(e) => e.exit(),
    };
    match jettison::operator::run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            jettison::report(args.format, &e);
            ExitCode::from(exit::classify(&e).code())
        }
    }
}
