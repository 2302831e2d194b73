//! `mezhved dashboard hash-password`: a password hash for `[[dashboard.users]]`
//! (docs/dashboard.md). The password is read from standard input (its first line), so it
//! never appears in the process list or the shell history.

use mezhved_http::dashboard::auth;
use std::io::{BufRead, Write};

#[derive(Debug, clap::Subcommand)]
pub enum DashboardCommand {
    /// Read a password from standard input and print its `password_hash` for the
    /// configuration (PBKDF2-HMAC-SHA256, random salt).
    HashPassword {
        /// PBKDF2 iterations (at least 210000).
        #[arg(long, default_value_t = auth::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

pub fn dashboard(c: DashboardCommand, out: &mut dyn Write) -> Result<(), String> {
    match c {
        DashboardCommand::HashPassword { iterations } => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("standard input: {e}"))?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err("give the password on standard input".into());
            }
            let hash = auth::hash_password(password, iterations).map_err(|e| e.to_string())?;
            writeln!(out, "{hash}").map_err(|e| e.to_string())
        }
    }
}
