//! `wharf check`: validate a configuration and say what it would serve, without serving.

use std::fmt::Write as _;

use anyhow::Context as _;
use wharf_access::UserDb;

use crate::config::LoadedConfig;
use crate::descriptors::{DescriptorPlan, OpenFileLimit};

/// Checks everything that can be checked without binding ports; returns the summary.
pub fn check(loaded: &LoadedConfig) -> anyhow::Result<String> {
    let config = &loaded.config;
    // With a database the users are there; `wharf users` lists them (check stays offline).
    let users = match &config.database {
        Some(_) => UserDb::default(),
        None => config.access.load_users(&config.data_dir)?,
    };
    check_protocol_sections(loaded, &users)?;
    let mut out = String::new();
    let _ = writeln!(out, "{} is valid.", loaded.source);
    // `wharf serve` raises its soft limit to the hard one, so the hard limit is what it gets.
    let plan = DescriptorPlan::of(config, &users);
    if let Some(warning) = plan.shortfall(OpenFileLimit::current().hard) {
        let _ = writeln!(out, "  warning: {warning}");
    }
    let _ = writeln!(out, "  data directory: {}", config.data_dir.display());
    let _ = writeln!(out, "  storage root:   {}", config.storage.root.display());
    // Where each bucket is and where its keys come from; never the keys.
    for (at, bucket) in &config.storage.buckets {
        let keys = match &bucket.credentials_file {
            Some(file) => format!("keys from {}", file.display()),
            None => "keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_owned(),
        };
        let _ = writeln!(
            out,
            "  share{at} -> bucket {} prefix `{}` at {} ({keys})",
            bucket.bucket, bucket.prefix, bucket.endpoint
        );
    }
    if !config.proxy_protocol.trusted.is_empty() {
        let nets: Vec<String> =
            config.proxy_protocol.trusted.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  PROXY headers from load balancers: {}", nets.join(", "));
        for warning in identity_to_generate(config) {
            let _ = writeln!(out, "  warning: {warning}");
        }
    }
    if let Some(admin) = &config.admin {
        let tokens = crate::admin::tokens::TokensFile::load(&admin.tokens_file)
            .context("admin.tokens_file")?;
        let _ = writeln!(
            out,
            "  admin API:      http://{} ({} tokens in {})",
            admin.listen,
            tokens.tokens.len(),
            admin.tokens_file.display()
        );
    }
    if let Some(external) = &config.external_auth {
        let _ = writeln!(
            out,
            "  external authentication: {} (names not in the users file)",
            external.shown_url()
        );
    }
    if let Some(hooks) = &config.hooks {
        let rules: Vec<&str> = hooks.rules.iter().map(|r| r.name.as_str()).collect();
        let _ = writeln!(
            out,
            "  event hooks:    {} (spool {})",
            if rules.is_empty() { "no rule".to_owned() } else { rules.join(", ") },
            hooks.spool_dir.display()
        );
    }
    if let Some(database) = &config.database {
        let at = database.check().context("database")?;
        let _ = writeln!(
            out,
            "  users:          in the shared database {at} (`wharf users` lists them)"
        );
    }
    if config.database.is_none() {
        let mut names: Vec<_> = users.iter().map(|u| u.name.clone()).collect();
        names.sort();
        let _ = writeln!(out, "  users ({}):     {}", names.len(), names.join(", "));
        for user in {
            let mut sorted: Vec<_> = users.iter().collect();
            sorted.sort_by(|a, b| a.name.cmp(&b.name));
            sorted
        } {
            let mounts: Vec<String> =
                user.mounts.iter().map(|(at, target)| format!("{at} -> share{target}")).collect();
            let protocols: Vec<String> =
                user.protocols.iter().map(|p| format!("{p:?}").to_lowercase()).collect();
            let _ = writeln!(
                out,
                "    {}: {} [{}]{}",
                user.name,
                mounts.join(", "),
                protocols.join(","),
                if user.disabled { " (disabled)" } else { "" }
            );
        }
    }
    Ok(out)
}

/// What the front-ends would refuse at start, short of binding: FTPS settings that contradict
/// each other or PEM files that do not load, TFTP values out of range, remap rules that do
/// not compile, TFTP rules naming no usable identity. A self-signed certificate still to be
/// generated is not generated here.
fn check_protocol_sections(loaded: &LoadedConfig, users: &UserDb) -> anyhow::Result<()> {
    let config = &loaded.config;
    if let Some(ftps) = &config.ftps {
        ftps.check().context("ftps")?;
    }
    if let Some(tftp) = &config.tftp {
        wharf_tftp::check_config(tftp, users).context("tftp")?;
    }
    Ok(())
}

/// The server identities a node behind a load balancer would generate for itself at start
/// (host keys, the self-signed FTPS certificate): each node would then show clients an
/// identity of its own, which changes with the node they land on (docs/OPERATIONS.md,
/// "A cluster").
fn identity_to_generate(config: &crate::config::WharfConfig) -> Vec<String> {
    let mut missing = Vec::new();
    if let Some(sftp) = config.sftp.as_ref().filter(|sftp| !sftp.listen.is_empty()) {
        for key_type in &sftp.host_key_types {
            // Relative to the data directory, as the SFTP front-end resolves it.
            let path = config.data_dir.join(&sftp.host_key_dir).join(key_type.file_name());
            if !path.exists() {
                missing.push(format!(
                    "{} does not exist: this node would generate its own SSH host key; \
                     give every node behind the load balancer the same key",
                    path.display()
                ));
            }
        }
    }
    if let Some(ftps) = &config.ftps
        && let wharf_ftps::CertificateSource::SelfSigned { dir } =
            wharf_ftps::CertificateSource::from_config(ftps)
    {
        let path =
            config.data_dir.join(dir).join(wharf_ftps::certificates::GENERATED_CERTIFICATE_FILE);
        if !path.exists() {
            missing.push(format!(
                "{} does not exist: this node would generate its own FTPS certificate; \
                 give every node behind the load balancer the same certificate",
                path.display()
            ));
        }
    }
    missing
}
