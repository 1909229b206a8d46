//! `wharf hash-password`: turn a password into the argon2id string the users file stores.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use wharf_access::{Password, hash_password};

/// Reads the password (a hidden prompt on a terminal, else the first line of stdin) and
/// returns its argon2id PHC string.
pub fn run() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    hash_password(&Password::new(password)).map_err(|err| anyhow::anyhow!("hashing: {err}"))
}
