//! The version handshake and the OpenSSH extensions clients use.
//!
//! Advertised in `SSH_FXP_VERSION` (name and version, as OpenSSH's server advertises them):
//! `posix-rename@openssh.com`, `statvfs@openssh.com`, `fstatvfs@openssh.com`,
//! `fsync@openssh.com`, `limits@openssh.com`, `expand-path@openssh.com`.
//! `hardlink@openssh.com` is answered (refused) but not advertised; anything else is
//! `SSH_FX_OP_UNSUPPORTED`.

use std::collections::HashMap;

use bytes::Bytes;
use russh_sftp::extensions::{
    EXPAND_PATH, FSYNC, HARDLINK, LIMITS, LimitsExtension, STATVFS, Statvfs,
};
use russh_sftp::protocol::{ExtendedReply, Packet, StatusCode, VERSION, Version};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wharf_access::Permissions;
use wharf_vfs::VPath;

use super::codec::{MAX_PACKET_LEN, encode, ok};
use super::handles::OpenHandle;
use super::ops::{Operations, Refusal, single_name};
use super::read_ahead::MAX_READ_LEN;

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const FSTATVFS: &str = "fstatvfs@openssh.com";

/// Extensions announced to clients, with the versions OpenSSH announces.
const ADVERTISED: &[(&str, &str)] = &[
    (POSIX_RENAME, "1"),
    (STATVFS, "2"),
    (FSTATVFS, "2"),
    (FSYNC, "1"),
    (LIMITS, "1"),
    (EXPAND_PATH, "1"),
];

/// Largest write payload announced: a packet minus room for its header fields.
const MAX_WRITE_LEN: usize = MAX_PACKET_LEN - 1024;

/// `statvfs` flags (`SSH_FXE_STATVFS_ST_RDONLY`, `SSH_FXE_STATVFS_ST_NOSUID`).
const ST_RDONLY: u64 = 0x1;
const ST_NOSUID: u64 = 0x2;

/// The `SSH_FXP_VERSION` reply: version 3 whatever the client asked for (clients that speak
/// later versions fall back to it), with the extensions.
pub(crate) fn version() -> Bytes {
    let extensions: HashMap<String, String> = ADVERTISED
        .iter()
        .map(|(name, version)| ((*name).to_owned(), (*version).to_owned()))
        .collect();
    encode(Packet::Version(Version { version: VERSION, extensions }))
}

#[derive(Deserialize)]
struct OnePath {
    path: String,
}

#[derive(Deserialize)]
struct TwoPaths {
    from: String,
    to: String,
}

#[derive(Deserialize)]
struct OneHandle {
    handle: String,
}

fn arguments<T: DeserializeOwned>(data: Vec<u8>) -> Result<T, Refusal> {
    russh_sftp::de::from_bytes(&mut Bytes::from(data)).map_err(|err| {
        Refusal::Status(StatusCode::BadMessage, format!("malformed extension request: {err}"))
    })
}

fn extended_reply(id: u32, data: Result<Bytes, impl std::fmt::Display>) -> Result<Bytes, Refusal> {
    match data {
        Ok(data) => Ok(encode(Packet::ExtendedReply(ExtendedReply { id, data: data.to_vec() }))),
        Err(err) => Err(Refusal::Status(StatusCode::Failure, err.to_string())),
    }
}

impl Operations {
    /// Carries out an `SSH_FXP_EXTENDED` request.
    pub(super) async fn extended(
        &mut self,
        id: u32,
        request: &str,
        data: Vec<u8>,
    ) -> Result<Bytes, Refusal> {
        match request {
            POSIX_RENAME => {
                let TwoPaths { from, to } = arguments(data)?;
                self.session.rename(&self.resolve(&from)?, &self.resolve(&to)?).await?;
                Ok(ok(id))
            }
            STATVFS => {
                let OnePath { path } = arguments(data)?;
                self.statvfs(id, &self.resolve(&path)?).await
            }
            FSTATVFS => {
                let OneHandle { handle } = arguments(data)?;
                let path = match self.handles.get_mut(handle.as_bytes()) {
                    Some(OpenHandle::Dir(dir)) => dir.path.clone(),
                    // A file lives where its directory does (and a file being uploaded
                    // whole does not exist under its name yet).
                    Some(file) => file.path().parent().unwrap_or_else(VPath::root),
                    None => {
                        return Err(Refusal::bad_handle());
                    }
                };
                self.statvfs(id, &path).await
            }
            FSYNC => {
                let OneHandle { handle } = arguments(data)?;
                match self.handles.get_mut(handle.as_bytes()) {
                    Some(OpenHandle::Write(write)) => write.upload.sync().await?,
                    Some(_) => {}
                    None => {
                        return Err(Refusal::bad_handle());
                    }
                }
                Ok(ok(id))
            }
            LIMITS => extended_reply(
                id,
                russh_sftp::ser::to_bytes(&LimitsExtension {
                    max_packet_len: MAX_PACKET_LEN as u64,
                    max_read_len: u64::from(MAX_READ_LEN),
                    max_write_len: MAX_WRITE_LEN as u64,
                    max_open_handles: self.handles.max() as u64,
                }),
            ),
            EXPAND_PATH => {
                let OnePath { path } = arguments(data)?;
                let expanded = self.expand_home(&path)?;
                Ok(single_name(id, self.resolve(&expanded)?.as_str().to_owned()))
            }
            HARDLINK => Err(Refusal::Status(
                StatusCode::OpUnsupported,
                "hard links are not supported on this server".to_owned(),
            )),
            other => Err(Refusal::Status(
                StatusCode::OpUnsupported,
                format!("unsupported extension `{other}`"),
            )),
        }
    }

    /// `~` and `~/...` (and `~name` for the user's own name) stand for the user's root.
    fn expand_home(&self, path: &str) -> Result<String, Refusal> {
        let Some(rest) = path.strip_prefix('~') else { return Ok(path.to_owned()) };
        let (name, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() || name == self.session.user_name() {
            Ok(format!("/{rest}"))
        } else {
            Err(Refusal::Status(StatusCode::NoSuchFile, format!("no home directory for `{name}`")))
        }
    }

    /// Free and total space where `path` lives, read-only when the user may not upload there.
    async fn statvfs(&mut self, id: u32, path: &VPath) -> Result<Bytes, Refusal> {
        let space = self.session.space(path).await?;
        let block = space.block_size.max(1);
        let mut flags = ST_NOSUID;
        if !self.session.permissions(path).contains(Permissions::UPLOAD) {
            flags |= ST_RDONLY;
        }
        let reply = Statvfs {
            block_size: block,
            fragment_size: block,
            blocks: space.total_bytes / block,
            blocks_free: space.free_bytes / block,
            blocks_avail: space.free_bytes / block,
            inodes: space.total_files,
            inodes_free: space.free_files,
            inodes_avail: space.free_files,
            fs_id: 0,
            flags,
            name_max: space.max_name_len,
        };
        extended_reply(id, russh_sftp::ser::to_bytes(&reply))
    }
}

#[cfg(test)]
mod tests {
    use russh_sftp::protocol::Packet;

    use super::*;

    #[test]
    fn version_advertises_the_extensions() {
        let mut body = version().slice(4..);
        let Ok(Packet::Version(version)) = Packet::try_from(&mut body) else {
            panic!("not a version packet")
        };
        assert_eq!(version.version, 3);
        for (name, ext_version) in ADVERTISED {
            assert_eq!(version.extensions.get(*name).map(String::as_str), Some(*ext_version));
        }
        assert!(!version.extensions.contains_key(HARDLINK), "hard links are refused");
    }

    #[test]
    fn two_path_arguments_decode() {
        let mut data = Vec::new();
        for text in ["/a", "/b c"] {
            data.extend_from_slice(&(text.len() as u32).to_be_bytes());
            data.extend_from_slice(text.as_bytes());
        }
        let TwoPaths { from, to } = arguments(data).expect("decodes");
        assert_eq!((from.as_str(), to.as_str()), ("/a", "/b c"));
        assert!(arguments::<TwoPaths>(vec![0, 0, 0, 9, b'x']).is_err(), "truncated");
    }
}
