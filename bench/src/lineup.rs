//! Both sides of the comparison running at once over the same share: the peers and Wharf,
//! each protocol checked with one small transfer before anything is measured, so a server
//! that cannot serve is reported once instead of timing out in every row.

use std::time::Duration;

use crate::cli::Protocol;
use crate::clients::{Transfer, curl_transfer, run_curl, sftp, tftp_hpa};
use crate::credentials::Credentials;
use crate::dataset::verify;
use crate::endpoint::{Endpoint, Endpoints, Side, Unavailable};
use crate::peers::unftp::Unftp;
use crate::peers::{self, Peers};
use crate::process::run_ok;
use crate::scratch::{Scratch, discard};
use crate::wharf_server::{self, WharfServer, WharfSetup};

/// The cipher of the probe and of rows that do not name one.
pub const DEFAULT_CIPHER: &str = "chacha20-poly1305@openssh.com";

/// Running servers; dropping it stops them all.
pub struct Lineup {
    _peers: Peers,
    wharf: Option<WharfServer>,
    peer_endpoints: Endpoints,
    unftp_endpoints: Endpoints,
    wharf_endpoints: Endpoints,
}

impl Lineup {
    /// Starts the peers (unFTP from `unftp`, when found) and Wharf for `protocols` (fresh
    /// processes, fresh ports) and probes each. `label` names their configuration
    /// directories.
    pub fn start(
        scratch: &Scratch,
        credentials: &Credentials,
        wharf: &WharfSetup,
        unftp: &Unftp,
        protocols: &[Protocol],
        label: &str,
    ) -> anyhow::Result<Lineup> {
        let peers = peers::start(scratch, credentials, unftp, protocols, label)?;
        let mut peer_endpoints = peers.endpoints.clone();
        let mut unftp_endpoints = peers.unftp_endpoints.clone();
        let dir = scratch.server_dir(&format!("{label}-wharf"))?;
        let (server, mut wharf_endpoints) =
            match wharf_server::start(wharf, &dir, &scratch.share, credentials, protocols) {
                Ok(started) => started,
                Err(err) => {
                    let reason = Unavailable::Broken(format!("{err:#}"));
                    (None, Endpoints::none(reason))
                }
            };
        for protocol in protocols {
            for (side, endpoints) in [
                (Side::Peer, &mut peer_endpoints),
                (Side::Unftp, &mut unftp_endpoints),
                (Side::Wharf, &mut wharf_endpoints),
            ] {
                let slot = endpoints.get_mut(*protocol);
                if let Ok(endpoint) = slot
                    && let Err(err) = probe(scratch, *protocol, side, endpoint)
                {
                    *slot = Err(Unavailable::Broken(format!("first transfer failed: {err:#}")));
                }
            }
        }
        Ok(Lineup {
            _peers: peers,
            wharf: server,
            peer_endpoints,
            unftp_endpoints,
            wharf_endpoints,
        })
    }

    /// One side's endpoints.
    pub fn endpoints(&self, side: Side) -> &Endpoints {
        match side {
            Side::Peer => &self.peer_endpoints,
            Side::Unftp => &self.unftp_endpoints,
            Side::Wharf => &self.wharf_endpoints,
        }
    }

    /// Why Wharf cannot be measured any more, when it has stopped.
    pub fn wharf_diagnosis(&self) -> Option<String> {
        self.wharf.as_ref().and_then(WharfServer::diagnosis)
    }

    /// Wharf's listeners as its banner named them (for the record).
    pub fn wharf_listeners(&self) -> Vec<String> {
        self.wharf
            .iter()
            .flat_map(|w| &w.listeners)
            .map(|l| format!("{} {}", l.protocol, l.addr))
            .collect()
    }
}

/// Downloads the first small file with the protocol's client and checks it.
fn probe(
    scratch: &Scratch,
    protocol: Protocol,
    side: Side,
    endpoint: &Endpoint,
) -> anyhow::Result<()> {
    let (name, print) = scratch
        .small
        .files
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the data set has no small file to probe with"))?;
    let remote = format!("{}/{name}", scratch.small.name);
    let local = scratch.download_path(&format!("probe-{}-{}", side.name(), protocol.name()));
    let transfer = Transfer::Get { remote: remote.clone(), local: local.clone() };
    let limit = Duration::from_secs(30);
    let label = format!("{} probe of {}", protocol.name(), side.name());
    match protocol {
        Protocol::Ftp | Protocol::Ftps => {
            run_curl(&mut curl_transfer(protocol, endpoint, &transfer)?, &label, limit)?
        }
        Protocol::Sftp => {
            let batch = local.with_extension("batch");
            let commands = [format!("get {remote} {}", crate::clients::sftp_quote(&local))];
            let mut command = sftp(endpoint, DEFAULT_CIPHER, &batch, &commands)?;
            let finished = run_ok(&mut command, &label, limit);
            let _ = std::fs::remove_file(batch);
            finished?
        }
        Protocol::Tftp => run_ok(&mut tftp_hpa(endpoint, &transfer), &label, limit)?,
    };
    let checked = verify(&local, print);
    discard(&local);
    checked
}
