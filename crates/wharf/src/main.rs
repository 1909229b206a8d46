//! `wharf`: serve, check a configuration, hash a password, list bans, manage the users of the
//! shared database.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use wharf::cli::{Cli, Command, TokenAction, UsersAction};
use wharf::observe::Observers;
use wharf::observe::log_file::LogFile;
use wharf::observe::metrics::Metrics;
use wharf::{LoadedConfig, Server, check, hash_password, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, log_format } => serve(config, log_format),
        Command::Check { config } => LoadedConfig::load(config.as_deref())
            .map_err(anyhow::Error::from)
            .and_then(|loaded| check::check(&loaded))
            .map(|summary| print!("{summary}")),
        Command::HashPassword => hash_password::run().map(|hash| println!("{hash}")),
        Command::Bans { config } => print_bans(config.as_deref()),
        Command::Users { config, action } => manage_users(config.as_deref(), action),
        Command::Token { config, action } => manage_tokens(config.as_deref(), action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wharf: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    config: Option<std::path::PathBuf>,
    log_format: Option<wharf::config::LogFormat>,
) -> anyhow::Result<()> {
    let loaded = LoadedConfig::load(config.as_deref())?;
    let format = log_format.unwrap_or(loaded.config.log.format);
    let log = &loaded.config.log;
    let open = |path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<LogFile>> {
        path.as_deref()
            .map(|p| LogFile::open(p).with_context(|| format!("opening log file {}", p.display())))
            .transpose()
    };
    let metrics = std::sync::Arc::new(Metrics::default());
    let observers =
        Observers::new(open(&log.audit_file)?, open(&log.transfer_log)?, metrics.clone());
    logging::init(format, log.level.as_deref(), observers)?;
    wharf::allocator::configure();
    let open_files = wharf::descriptors::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // A write past the process's file-size limit raises SIGXFSZ, whose default action kills
        // the server. Catching it turns it into a failed write (EFBIG), which the upload
        // reports as "no space" and cleans up after.
        let _file_size_limit = tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw()),
        )
        .context("installing the SIGXFSZ handler")?;
        let server = Server::start_limited(loaded, metrics, open_files.soft).await?;
        print!("{}", server.banner());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        server.run_until_signal().await
    })
}

fn manage_users(
    config: Option<&std::path::Path>,
    action: Option<UsersAction>,
) -> anyhow::Result<()> {
    let loaded = LoadedConfig::load(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        match action.unwrap_or(UsersAction::List) {
            UsersAction::List => wharf::users::list(&loaded).await,
            UsersAction::Import { file } => wharf::users::import(&loaded, &file).await,
        }
    })?;
    println!("{}", summary.trim_end());
    Ok(())
}

fn manage_tokens(config: Option<&std::path::Path>, action: TokenAction) -> anyhow::Result<()> {
    use wharf::admin::tokens::TokensFile;
    let loaded = LoadedConfig::load(config)?;
    let admin = loaded
        .config
        .admin
        .as_ref()
        .context("the configuration has no `admin` section (the API is off)")?;
    let file = &admin.tokens_file;
    match action {
        TokenAction::Create { name, scope } => {
            let token = TokensFile::create(file, &name, scope)?;
            println!("{token}");
            eprintln!(
                "Token {name:?} ({scope:?}) added to {}; it is shown only now. A running server \
                 takes it at its next reload (SIGHUP or POST /api/v1/reload).",
                file.display()
            );
        }
        TokenAction::List => {
            let tokens = TokensFile::load(file)?;
            if tokens.tokens.is_empty() {
                println!("No token ({}).", file.display());
            }
            for token in tokens.tokens {
                println!("{}\t{:?}\t{}", token.name, token.scope, token.created);
            }
        }
    }
    Ok(())
}

fn print_bans(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let loaded = LoadedConfig::load(config)?;
    let file = loaded.bans_file();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let bans: Vec<_> = wharf_access::Defender::load_saved(&file)?
        .into_iter()
        .filter(|ban| ban.until_unix > now)
        .collect();
    if bans.is_empty() {
        println!("No address is banned ({}).", file.display());
    }
    for ban in bans {
        println!(
            "{:<40} banned for {:>6} s more (score {})",
            ban.address,
            ban.until_unix - now,
            ban.score
        );
    }
    Ok(())
}
