//! The `mezhved` command. Thin on purpose: it parses arguments and hands over to the
//! library, whose [`mezhved::cli::run`] returns the process exit code.

#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = mezhved::cli::Cli::parse();
    // Not locked for the whole run: `serve` logs to stderr from worker threads, which
    // would wait forever on a lock held here.
    ExitCode::from(mezhved::cli::run(
        cli,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ))
}
