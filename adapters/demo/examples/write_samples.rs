//! Writes the demo request and response samples (`mezhved_demo::samples`) to a directory.
//!
//! ```sh
//! cargo run -p mezhved-demo --example write_samples -- DIR [--seed N] [--count N]
//! ```
//!
//! Defaults: seed 1, 12 samples of each kind and direction. Prints the number of files.

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: write_samples DIR [--seed N] [--count N]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut dir: Option<PathBuf> = None;
    let mut seed: u64 = 1;
    let mut count: usize = 12;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" | "--count" => {
                let Some(value) = args.next() else {
                    return usage();
                };
                let ok = if arg == "--seed" {
                    value.parse().map(|v| seed = v).is_ok()
                } else {
                    value.parse().map(|v| count = v).is_ok()
                };
                if !ok {
                    eprintln!("write_samples: {arg} needs a number, got {value:?}");
                    return usage();
                }
            }
            "-h" | "--help" => {
                println!("usage: write_samples DIR [--seed N] [--count N]");
                return ExitCode::SUCCESS;
            }
            _ if dir.is_none() && !arg.starts_with('-') => dir = Some(PathBuf::from(arg)),
            _ => return usage(),
        }
    }
    let Some(dir) = dir else {
        return usage();
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("write_samples: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let samples = mezhved_demo::samples(seed, count);
    for (name, xml) in &samples {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, xml) {
            eprintln!("write_samples: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!("{} samples written to {}", samples.len(), dir.display());
    ExitCode::SUCCESS
}
