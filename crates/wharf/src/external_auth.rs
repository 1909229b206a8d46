//! External authentication over HTTP: the `external_auth` section and the [`Directory`] that
//! POSTs each question to the configured endpoint.
//!
//! The rules (who is asked, the cache, what happens when the service is down) live in
//! `wharf-access` (`external_auth.rs`); this module only speaks the wire format
//! (docs/OPERATIONS.md, "External authentication"):
//!
//! - request: `POST <url>` with `{"user", "protocol", "address", "password"?, "public_key"?}`;
//! - `200` with a users-file entry as JSON: accepted; `401`, `403`, `404`: refused; anything
//!   else, a body over [`MAX_ANSWER`] or one that is not a definition: unavailable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use wharf_access::{
    Directory, DirectoryAnswer, DirectoryCredential, DirectoryReply, DirectoryRequest,
    ExternalAuth, ExternalAuthSettings, UserConfig,
};

/// The largest answer read: a user definition is a few hundred bytes; the bound keeps a
/// hostile or broken endpoint from making the server hold more.
pub const MAX_ANSWER: usize = 64 * 1024;

/// The `external_auth` section: where names the users file does not know are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalAuthConfig {
    /// The endpoint (`http://` or `https://`) each login is POSTed to.
    pub url: String,
    /// How long one login may wait for the answer (a place among `max_in_flight` included).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long an accepted answer is used again for the same name, address and credential.
    #[serde(default = "default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// How long after `cache_ttl` such an answer may still be used while the endpoint is down;
    /// `0s` (the default): never.
    #[serde(default, with = "humantime_serde")]
    pub serve_stale_for: Duration,
    /// Requests to the endpoint at once; further logins wait within `timeout`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Mounts (the home included) an answer may define; each is an open folder per session.
    #[serde(default = "default_max_mounts")]
    pub max_mounts: usize,
    /// A file holding a token sent as `Authorization: Bearer <token>` (relative to
    /// `data_dir`); none when absent.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

fn default_timeout() -> Duration {
    ExternalAuthSettings::default().timeout
}

fn default_cache_ttl() -> Duration {
    ExternalAuthSettings::default().cache_ttl
}

fn default_max_in_flight() -> usize {
    ExternalAuthSettings::default().max_in_flight
}

fn default_max_mounts() -> usize {
    ExternalAuthSettings::default().max_mounts
}

impl ExternalAuthConfig {
    /// Checks what serde cannot: the URL and the budgets.
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url).map_err(|err| format!("url: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url: `{}` is neither http nor https", url.scheme()));
        }
        if self.timeout.is_zero() {
            return Err("timeout: must be more than 0s".to_owned());
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight: must be at least 1".to_owned());
        }
        if self.max_mounts == 0 {
            return Err("max_mounts: must be at least 1 (the home)".to_owned());
        }
        Ok(())
    }

    /// The endpoint as shown in the banner and `wharf check`: without a password it may carry.
    pub fn shown_url(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "(invalid url)".to_owned(),
        }
    }

    /// The settings of `wharf-access`'s lookup.
    pub fn settings(&self) -> ExternalAuthSettings {
        ExternalAuthSettings {
            timeout: self.timeout,
            cache_ttl: self.cache_ttl,
            serve_stale_for: self.serve_stale_for,
            max_in_flight: self.max_in_flight,
            max_mounts: self.max_mounts,
            ..ExternalAuthSettings::default()
        }
    }

    /// The lookup this section describes, asking over HTTP.
    pub fn start(&self) -> anyhow::Result<ExternalAuth> {
        let directory = HttpDirectory::new(self)?;
        Ok(ExternalAuth::new(Arc::new(directory), self.settings()))
    }
}

/// What is POSTed.
#[derive(Debug, Serialize)]
struct Question<'a> {
    user: &'a str,
    protocol: &'static str,
    address: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
}

/// Asks an HTTP endpoint.
#[derive(Debug)]
pub struct HttpDirectory {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The bearer token, if any.
    token: Option<String>,
}

impl HttpDirectory {
    /// The endpoint of `config`.
    pub fn new(config: &ExternalAuthConfig) -> anyhow::Result<HttpDirectory> {
        let url = reqwest::Url::parse(&config.url).context("external_auth.url")?;
        let token = match &config.token_file {
            None => None,
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let token = text.trim().to_owned();
                anyhow::ensure!(!token.is_empty(), "{} is empty", file.display());
                Some(token)
            }
        };
        // The lookup bounds the whole ask; the client's own timeout is the same, so that a
        // request cut by either never lingers. Redirects are not followed: a password should
        // not travel to wherever an answer points.
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("external_auth: HTTP client")?;
        Ok(HttpDirectory { client, url, token })
    }
}

impl Directory for HttpDirectory {
    fn ask(&self, request: DirectoryRequest) -> DirectoryReply {
        let (password, key) = match &request.credential {
            DirectoryCredential::Password(password) => (Some(password), None),
            DirectoryCredential::PublicKey(key) => (None, Some(key)),
            DirectoryCredential::PublicKeyAndPassword { key, password } => {
                (Some(password), Some(key))
            }
        };
        let public_key = match key.map(|key| key.to_openssh()).transpose() {
            Ok(key) => key,
            Err(err) => {
                let reason = format!("the key cannot be written as OpenSSH: {err}");
                return Box::pin(async move { DirectoryAnswer::Unavailable(reason) });
            }
        };
        let question = Question {
            user: &request.user,
            protocol: request.protocol.as_str(),
            address: request.address,
            // Passwords arrive as text (FTP's line, SSH's string), so this loses nothing.
            password: password.map(|p| String::from_utf8_lossy(p.expose()).into_owned()),
            public_key,
        };
        let body = match serde_json::to_vec(&question) {
            Ok(body) => body,
            Err(err) => {
                let reason = format!("the question cannot be written as JSON: {err}");
                return Box::pin(async move { DirectoryAnswer::Unavailable(reason) });
            }
        };
        let mut post = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &self.token {
            post = post.bearer_auth(token);
        }
        Box::pin(async move {
            match post.send().await {
                Ok(response) => answer_of(response).await,
                Err(err) => DirectoryAnswer::Unavailable(format!("request failed: {err}")),
            }
        })
    }
}

/// What `response` says.
async fn answer_of(response: reqwest::Response) -> DirectoryAnswer {
    let status = response.status();
    match status.as_u16() {
        200 => {}
        401 | 403 | 404 => return DirectoryAnswer::Refused,
        _ => return DirectoryAnswer::Unavailable(format!("status {status}")),
    }
    let body = match read_bounded(response).await {
        Ok(body) => body,
        Err(reason) => return DirectoryAnswer::Unavailable(reason),
    };
    match serde_json::from_slice::<UserConfig>(&body) {
        Ok(definition) => DirectoryAnswer::Accepted(Box::new(definition)),
        Err(err) => DirectoryAnswer::Unavailable(format!("malformed answer: {err}")),
    }
}

/// The body of `response`, refused past [`MAX_ANSWER`] without reading further.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_large = || format!("answer larger than {MAX_ANSWER} bytes");
    if response.content_length().is_some_and(|length| length > MAX_ANSWER as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => return Err(format!("reading the answer: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ExternalAuthConfig, String> {
        let config: ExternalAuthConfig = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn defaults_and_refusals() {
        let config = parse("url: http://127.0.0.1:8080/auth").expect("valid");
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.cache_ttl, Duration::from_secs(30));
        assert_eq!(config.serve_stale_for, Duration::ZERO);
        assert_eq!(config.max_in_flight, 16);
        for (yaml, expected) in [
            ("url: ftp://x/", "neither http nor https"),
            ("url: 'not a url'", "url"),
            ("{url: 'http://x/', timeout: 0s}", "timeout"),
            ("{url: 'http://x/', max_in_flight: 0}", "max_in_flight"),
            ("{url: 'http://x/', cache: 1s}", "unknown field"),
        ] {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }
}
