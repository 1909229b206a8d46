//! Delivering one event: an HTTP POST of its document, or a run of a command with the event
//! in its environment. Either succeeds or says why not; retrying is the caller's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use tokio::io::AsyncReadExt as _;

use crate::HookError;
use crate::config::{CommandConfig, HttpConfig};
use crate::event::HookEvent;

/// The most of a failed command's error output kept for the log.
const STDERR_KEPT: usize = 2048;

/// The `PATH` a command runs with when the server has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The request could not be sent or answered in time.
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The endpoint answered, but not with success.
    #[error("the endpoint answered {0}")]
    Status(reqwest::StatusCode),
    /// The command could not be started.
    #[error("command could not start: {0}")]
    Spawn(std::io::Error),
    /// The command ran longer than its timeout and was killed.
    #[error("command ran longer than {0:?} and was killed")]
    Timeout(Duration),
    /// The command ended without success.
    #[error("command exited with {status}: {stderr}")]
    Exit {
        /// How it ended.
        status: std::process::ExitStatus,
        /// The start of what it wrote to its error output.
        stderr: String,
    },
}

/// How a rule delivers.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// POST to an HTTP endpoint.
    Http(HttpDelivery),
    /// Run a command.
    Command(CommandDelivery),
}

impl Delivery {
    /// Delivers `event`, whose document is `document`, once.
    pub(crate) async fn deliver(
        &self,
        event: &HookEvent,
        document: &[u8],
    ) -> Result<(), DeliveryError> {
        match self {
            Delivery::Http(http) => http.post(event, document).await,
            Delivery::Command(command) => command.run(event, document).await,
        }
    }
}

/// POSTs to one endpoint.
#[derive(Debug)]
pub(crate) struct HttpDelivery {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The HMAC key, if the bodies are signed.
    secret: Option<Vec<u8>>,
}

impl HttpDelivery {
    /// The delivery `config` describes; relative secret files are under `base`.
    pub(crate) fn new(config: &HttpConfig, base: &Path) -> Result<HttpDelivery, HookError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|err| HookError::Config(format!("hook url {:?}: {err}", config.url)))?;
        let secret = match &config.secret_file {
            None => None,
            Some(file) => {
                let file = base.join(file);
                let mut key = std::fs::read(&file)
                    .map_err(|err| HookError::Io(format!("reading {}", file.display()), err))?;
                while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    key.pop();
                }
                if key.is_empty() {
                    return Err(HookError::Config(format!("{} is empty", file.display())));
                }
                Some(key)
            }
        };
        // Redirects are not followed: an endpoint that moved is a configuration to fix, and
        // a signed event should not travel to wherever an answer points.
        let mut client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(file) = &config.ca_file {
            client = client.tls_certs_only(authorities(&base.join(file))?);
        }
        let client =
            client.build().map_err(|err| HookError::Config(format!("HTTP client: {err}")))?;
        Ok(HttpDelivery { client, url, secret })
    }

    async fn post(&self, event: &HookEvent, document: &[u8]) -> Result<(), DeliveryError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Wharf-Event", event.event.as_str())
            .header("X-Wharf-Event-Id", event.id.as_str())
            .body(document.to_vec());
        if let Some(secret) = &self.secret {
            request = request.header("X-Wharf-Signature", signature(secret, document));
        }
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(DeliveryError::Status(status)) }
    }
}

/// The certificate authorities in the PEM file `file` (at least one).
fn authorities(file: &Path) -> Result<Vec<reqwest::Certificate>, HookError> {
    let pem = std::fs::read(file)
        .map_err(|err| HookError::Io(format!("reading {}", file.display()), err))?;
    let authorities = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|err| HookError::Config(format!("{}: {err}", file.display())))?;
    if authorities.is_empty() {
        return Err(HookError::Config(format!("{} holds no PEM certificate", file.display())));
    }
    Ok(authorities)
}

/// The `X-Wharf-Signature` of `document` under `secret`: `sha256=` and the HMAC-SHA256 in
/// lowercase hex.
pub fn signature(secret: &[u8], document: &[u8]) -> String {
    // An HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(document);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Runs one command per event.
#[derive(Debug)]
pub(crate) struct CommandDelivery {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    path: String,
}

impl CommandDelivery {
    /// The delivery `config` describes.
    pub(crate) fn new(config: &CommandConfig) -> CommandDelivery {
        CommandDelivery {
            program: config.program.clone(),
            args: config.args.clone(),
            timeout: config.timeout,
            path: std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()),
        }
    }

    /// Runs the program directly (no shell), in a clean environment holding `PATH` and the
    /// event, so a client's file name reaches it as the value of a variable and nothing else;
    /// killed at the timeout.
    async fn run(&self, event: &HookEvent, document: &[u8]) -> Result<(), DeliveryError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", &self.path)
            .envs(event.environment())
            .env("WHARF_EVENT_JSON", String::from_utf8_lossy(document).as_ref())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(DeliveryError::Spawn)?;
        let stderr = child.stderr.take();
        let finished = async {
            let (kept, status) = tokio::join!(keep_start_of(stderr), child.wait());
            (kept, status)
        };
        match tokio::time::timeout(self.timeout, finished).await {
            Err(_) => Err(DeliveryError::Timeout(self.timeout)),
            Ok((_, Err(err))) => Err(DeliveryError::Spawn(err)),
            Ok((_, Ok(status))) if status.success() => Ok(()),
            Ok((kept, Ok(status))) => Err(DeliveryError::Exit {
                status,
                stderr: String::from_utf8_lossy(&kept).trim().to_owned(),
            }),
        }
    }
}

/// Reads `pipe` to its end (so the writer never blocks on it), keeping its first bytes.
async fn keep_start_of(pipe: Option<tokio::process::ChildStderr>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut buffer = [0u8; 1024];
    while let Ok(read) = pipe.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let room = STDERR_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..read.min(room)]);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_body_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
