//! The servers users would otherwise run, started on loopback over the bench's share.

pub mod sshd;
pub mod tftpd;
pub mod unftp;
pub mod vsftpd;

use crate::cli::Protocol;
use crate::credentials::Credentials;
use crate::endpoint::{Endpoints, Unavailable};
use crate::scratch::Scratch;

/// The running peers; dropping it stops them.
pub struct Peers {
    _vsftpd: Option<vsftpd::Vsftpd>,
    _vsftpd_tls: Option<vsftpd::Vsftpd>,
    _sshd: Option<sshd::Sshd>,
    _tftpd: Option<tftpd::Tftpd>,
    _unftp: Option<unftp::UnftpServer>,
    _unftp_tls: Option<unftp::UnftpServer>,
    /// How clients reach each protocol on the peer of [`crate::endpoint::Side::Peer`].
    pub endpoints: Endpoints,
    /// How clients reach unFTP (FTP and FTPS only).
    pub unftp_endpoints: Endpoints,
}

/// Starts the peers of each protocol in `protocols`.
pub fn start(
    scratch: &Scratch,
    credentials: &Credentials,
    unftp: &unftp::Unftp,
    protocols: &[Protocol],
    label: &str,
) -> anyhow::Result<Peers> {
    let dir = |name: &str| scratch.server_dir(&format!("{label}-{name}"));
    // vsftpd (anonymous chroot, privilege separation) and tftpd-hpa (chroot, setuid) need
    // root; sshd lets the bench's own account in, which is the one it uses anyway.
    let root = rustix::process::geteuid().is_root();
    let mut peers = Peers {
        _vsftpd: None,
        _vsftpd_tls: None,
        _sshd: None,
        _tftpd: None,
        _unftp: None,
        _unftp_tls: None,
        endpoints: Endpoints::none(Unavailable::NotServed("not selected".to_owned())),
        unftp_endpoints: Endpoints::none(Unavailable::NotServed(
            "unFTP serves FTP and FTPS only".to_owned(),
        )),
    };
    for protocol in protocols {
        if !root && *protocol != Protocol::Sftp {
            *peers.endpoints.get_mut(*protocol) = Err(Unavailable::Broken(format!(
                "the {} peer needs root to start",
                protocol.name()
            )));
            continue;
        }
        let started = match protocol {
            Protocol::Ftp => {
                vsftpd::Vsftpd::start(&scratch.share, &dir("vsftpd")?, None).map(|server| {
                    let endpoint = server.endpoint.clone();
                    peers._vsftpd = Some(server);
                    endpoint
                })
            }
            Protocol::Ftps => {
                vsftpd::Vsftpd::start(&scratch.share, &dir("vsftpd-tls")?, Some(credentials)).map(
                    |server| {
                        let endpoint = server.endpoint.clone();
                        peers._vsftpd_tls = Some(server);
                        endpoint
                    },
                )
            }
            Protocol::Sftp => {
                sshd::Sshd::start(&scratch.share, &dir("sshd")?, credentials).map(|server| {
                    let endpoint = server.endpoint.clone();
                    peers._sshd = Some(server);
                    endpoint
                })
            }
            Protocol::Tftp => tftpd::Tftpd::start(&scratch.share, &dir("tftpd")?).map(|server| {
                let endpoint = server.endpoint.clone();
                peers._tftpd = Some(server);
                endpoint
            }),
        };
        *peers.endpoints.get_mut(*protocol) =
            started.map_err(|err| Unavailable::Broken(format!("{err:#}")));
    }
    for protocol in protocols.iter().filter(|p| matches!(p, Protocol::Ftp | Protocol::Ftps)) {
        let tls = (*protocol == Protocol::Ftps).then_some(credentials);
        let name = if tls.is_some() { "unftp-tls" } else { "unftp" };
        let started = unftp.binary().and_then(|binary| {
            dir(name)
                .and_then(|dir| {
                    unftp::UnftpServer::start(binary, &scratch.share, &dir, credentials, tls)
                })
                .map_err(|err| Unavailable::Broken(format!("{err:#}")))
        });
        *peers.unftp_endpoints.get_mut(*protocol) = started.map(|server| {
            let endpoint = server.endpoint.clone();
            match tls {
                Some(_) => peers._unftp_tls = Some(server),
                None => peers._unftp = Some(server),
            }
            endpoint
        });
    }
    Ok(peers)
}
