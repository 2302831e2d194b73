//! The `mezhved` command. Thin on purpose: it parses arguments and hands over to the
//! library, whose [`mezhved::cli::run`] returns the process exit code.

#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = mezhved::cli::Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    ExitCode::from(mezhved::cli::run(
        cli,
        &mut stdout.lock(),
        &mut stderr.lock(),
    ))
}
