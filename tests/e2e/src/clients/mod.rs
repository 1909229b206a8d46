//! One Rust client per protocol behind one switch, so a test written once runs on every
//! protocol the server serves; and the real command-line clients ([`real`]).

pub mod ftp;
pub mod real;
pub mod sftp;
pub mod tftp;

use std::fmt;

use crate::server::Wharf;

/// A protocol Wharf serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// FTP, plain.
    Ftp,
    /// FTP over TLS: the Rust clients use explicit FTPS (`AUTH TLS` on the FTP listener),
    /// the real ones also the implicit listener.
    Ftps,
    /// SFTP over SSH.
    Sftp,
    /// TFTP: no login (the source network decides the identity), no listing.
    Tftp,
}

impl Protocol {
    /// Every protocol, in matrix order.
    pub const ALL: [Protocol; 4] = [Protocol::Ftp, Protocol::Ftps, Protocol::Sftp, Protocol::Tftp];

    /// The protocol's name as the server's listeners are named.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ftp => "FTP",
            Protocol::Ftps => "FTPS",
            Protocol::Sftp => "SFTP",
            Protocol::Tftp => "TFTP",
        }
    }

    /// Whether the protocol can list a directory (TFTP cannot).
    pub fn can_list(self) -> bool {
        self != Protocol::Tftp
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a server refused an operation, in the protocol's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An FTP reply (4xx or 5xx, or an unexpected code).
    Ftp {
        /// The reply code.
        code: u16,
        /// The reply's text (all lines).
        text: String,
    },
    /// An SFTP status.
    Sftp {
        /// The status code (`SSH_FX_*`).
        status: u32,
        /// The status message.
        message: String,
    },
    /// A TFTP ERROR packet.
    Tftp {
        /// The error code.
        code: u16,
        /// The message.
        message: String,
    },
    /// No answer in the protocol: the connection failed or timed out.
    Failed(String),
}

impl Refusal {
    /// Everything the server said, to check that no forbidden content leaked into it.
    pub fn text(&self) -> &str {
        match self {
            Refusal::Ftp { text, .. } => text,
            Refusal::Sftp { message, .. } => message,
            Refusal::Tftp { message, .. } => message,
            Refusal::Failed(why) => why,
        }
    }
}

/// One directory entry as a protocol lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name (no path).
    pub name: String,
    /// The size, for files.
    pub size: Option<u64>,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// A logged-in client of one protocol.
pub enum Session {
    /// FTP through suppaftp.
    Ftp(ftp::Suppa),
    /// FTPS (explicit: `AUTH TLS`, `PROT P`) through suppaftp.
    Ftps(ftp::Suppa<suppaftp::tokio::AsyncRustlsStream>),
    /// SFTP through russh + russh-sftp.
    Sftp(sftp::SftpClient),
    /// TFTP through this crate's client.
    Tftp(tftp::TftpClient),
}

impl Session {
    /// Logs `user` in over `protocol`. For TFTP, `user` is the TFTP identity
    /// ([`crate::server::DEVICES`] or [`crate::server::LAB`]), chosen by the source address.
    pub async fn open(wharf: &Wharf, protocol: Protocol, user: &str) -> Session {
        match protocol {
            Protocol::Ftp => Session::Ftp(ftp::Suppa::login(wharf.ftp, user).await),
            Protocol::Ftps => Session::Ftps(ftp::Suppa::login_tls(wharf, user).await),
            Protocol::Sftp => Session::Sftp(sftp::SftpClient::login_key(wharf, user).await),
            Protocol::Tftp => {
                Session::Tftp(tftp::TftpClient::new(wharf.tftp, Wharf::tftp_source(user)))
            }
        }
    }

    /// Uploads `data` to `path` as a whole file.
    pub async fn upload(&mut self, path: &str, data: &[u8]) -> Result<(), Refusal> {
        match self {
            Session::Ftp(ftp) => ftp.upload(path, data).await,
            Session::Ftps(ftps) => ftps.upload(path, data).await,
            Session::Sftp(sftp) => sftp.upload(path, data).await,
            Session::Tftp(tftp) => tftp.upload(path, data).await,
        }
    }

    /// Downloads `path`.
    pub async fn download(&mut self, path: &str) -> Result<Vec<u8>, Refusal> {
        match self {
            Session::Ftp(ftp) => ftp.download(path).await,
            Session::Ftps(ftps) => ftps.download(path).await,
            Session::Sftp(sftp) => sftp.download(path).await,
            Session::Tftp(tftp) => tftp.download(path).await.map(|received| received.data),
        }
    }

    /// Lists `dir`; `None` for protocols that cannot list.
    pub async fn list(&mut self, dir: &str) -> Option<Result<Vec<Entry>, Refusal>> {
        match self {
            Session::Ftp(ftp) => Some(ftp.list(dir).await),
            Session::Ftps(ftps) => Some(ftps.list(dir).await),
            Session::Sftp(sftp) => Some(sftp.list(dir).await),
            Session::Tftp(_) => None,
        }
    }

    /// The TFTP client, to change its options (block size, window).
    pub fn tftp(&mut self) -> Option<&mut tftp::TftpClient> {
        match self {
            Session::Tftp(tftp) => Some(tftp),
            _ => None,
        }
    }

    /// Logs out and closes the connection.
    pub async fn close(self) {
        match self {
            Session::Ftp(ftp) => ftp.quit().await,
            Session::Ftps(ftps) => ftps.quit().await,
            Session::Sftp(sftp) => sftp.close().await,
            Session::Tftp(_) => {}
        }
    }
}

/// Sessions opened on first use and kept, one per protocol and user.
pub struct Sessions<'w> {
    wharf: &'w Wharf,
    open: std::collections::BTreeMap<(Protocol, String), Session>,
}

impl<'w> Sessions<'w> {
    /// No session yet.
    pub fn new(wharf: &'w Wharf) -> Sessions<'w> {
        Sessions { wharf, open: std::collections::BTreeMap::new() }
    }

    /// The session of `user` over `protocol`, logged in on first use.
    pub async fn get(&mut self, protocol: Protocol, user: &str) -> &mut Session {
        let key = (protocol, user.to_owned());
        if let std::collections::btree_map::Entry::Vacant(slot) = self.open.entry(key.clone()) {
            slot.insert(Session::open(self.wharf, protocol, user).await);
        }
        self.open.get_mut(&key).expect("session just opened")
    }

    /// Logs every session out.
    pub async fn close(self) {
        for (_, session) in self.open {
            session.close().await;
        }
    }
}
