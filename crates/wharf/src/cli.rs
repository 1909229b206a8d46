//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// Wharf: one storage tree served over FTP, FTPS, SFTP and TFTP.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the configured protocols (the embedded default without --config).
    Serve {
        /// The configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Log format; overrides the configuration's `log.format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Validate a configuration and print what it would serve; non-zero exit on error.
    Check {
        /// The configuration file (the embedded default without it).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Read a password (prompt, or stdin) and print its argon2id hash for the users file.
    HashPassword,
    /// Print the addresses the defender has banned (as last saved by the server, every 30 s).
    Bans {
        /// The configuration file (the embedded default without it).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// The users of the shared database (the configuration's `database` section).
    Users {
        /// The configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// What to do (list them without one).
        #[command(subcommand)]
        action: Option<UsersAction>,
    },
    /// The admin API's tokens (the configuration's `admin.tokens_file`).
    Token {
        /// The configuration file.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
}

/// What `wharf token` does.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token, print it once, keep only its hash (a running server takes it at its
    /// next reload).
    Create {
        /// Who or what will hold it (named in the audit log).
        #[arg(long)]
        name: String,
        /// What it may do.
        #[arg(long, value_enum, default_value = "read")]
        scope: crate::admin::tokens::Scope,
    },
    /// List the tokens (names, scopes, dates; never the tokens).
    List,
}

/// What `wharf users` does.
#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// List the users.
    List,
    /// Add or replace the users of a users file (`users: [...]`, as `access.users_file`),
    /// all of them or none; users not in the file stay. Every node applies it at once.
    Import {
        /// The users file.
        file: PathBuf,
    },
}
