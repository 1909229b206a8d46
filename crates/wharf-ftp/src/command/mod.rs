//! The FTP command parser: one control line (line ending and Telnet bytes already removed by
//! the codec) becomes a [`Command`], with no I/O. Everything a client sends passes through
//! [`parse`], which is unit-tested and property-tested on its own.
//!
//! The parser checks grammar only. Whether a grammatical command is supported in the current
//! state (`TYPE E`, `MODE B`, `PROT S`, `AUTH` without TLS) is the session's decision.

mod args;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::SystemTime;

pub use args::{
    AuthMechanism, ByteRange, EpsvArg, FileStructure, FormControl, NetworkProtocol, PasswordArg,
    PathArg, ProtectionLevel, RangArg, TransferType, TransmissionMode, parse_timestamp,
};

use crate::hash::HashAlgorithm;
use crate::listing::MlstFact;
use crate::reply::Reply;
use args::{ExtendedAddressError, PositionError};

/// Longest user name accepted by `USER`, in bytes.
pub const MAX_USER_LEN: usize = 256;

/// One command of the control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`.
    User(String),
    /// `PASS password` (possibly empty).
    Pass(PasswordArg),
    /// `ACCT info`.
    Acct,
    /// `QUIT`.
    Quit,
    /// `REIN`: log out and start over on the same connection.
    Rein,
    /// `NOOP`.
    Noop,
    /// `SYST`.
    Syst,
    /// `STAT` (server status) or `STAT path` (a listing over the control connection).
    Stat(Option<PathArg>),
    /// `HELP [topic]`.
    Help(Option<String>),
    /// `FEAT` (RFC 2389).
    Feat,
    /// `OPTS ...` (RFC 2389).
    Opts(OptsArg),
    /// `PWD` / `XPWD`.
    Pwd,
    /// `CWD path` / `XCWD path`.
    Cwd(PathArg),
    /// `CDUP` / `XCUP`.
    Cdup,
    /// `MKD path` / `XMKD path`.
    Mkd(PathArg),
    /// `RMD path` / `XRMD path`.
    Rmd(PathArg),
    /// `DELE path`.
    Dele(PathArg),
    /// `RNFR path`.
    Rnfr(PathArg),
    /// `RNTO path`.
    Rnto(PathArg),
    /// `SIZE path` (RFC 3659).
    Size(PathArg),
    /// `MDTM path` (RFC 3659).
    Mdtm(PathArg),
    /// `MFMT time path`: set the modification time.
    Mfmt {
        /// The new modification time.
        modified: SystemTime,
        /// The file.
        path: PathArg,
    },
    /// `TYPE ...`.
    Type(TransferType),
    /// `MODE ...`.
    Mode(TransmissionMode),
    /// `STRU ...`.
    Stru(FileStructure),
    /// `ALLO ...` (space is never reserved ahead).
    Allo,
    /// `REST offset`: where the next `RETR` or `STOR` starts (at most
    /// `wharf_vfs::offset::MAX_OFFSET`, checked by the parser).
    Rest(u64),
    /// `RANG start end` (draft-bryan-ftp-range): the byte range of the next `RETR` or `HASH`.
    Rang(RangArg),
    /// `RETR path`.
    Retr(PathArg),
    /// `STOR path`.
    Stor(PathArg),
    /// `STOU [name]`: store under a unique name the server chooses.
    Stou(Option<PathArg>),
    /// `APPE path`.
    Appe(PathArg),
    /// `LIST [path]`.
    List(Option<PathArg>),
    /// `NLST [path]`.
    Nlst(Option<PathArg>),
    /// `MLSD [path]` (RFC 3659).
    Mlsd(Option<PathArg>),
    /// `MLST [path]` (RFC 3659).
    Mlst(Option<PathArg>),
    /// `ABOR`.
    Abor,
    /// `PASV`.
    Pasv,
    /// `EPSV [1|2|ALL]` (RFC 2428).
    Epsv(EpsvArg),
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port(SocketAddrV4),
    /// `EPRT |proto|address|port|` (RFC 2428).
    Eprt(SocketAddr),
    /// `SITE ...`.
    Site(SiteCommand),
    /// `HASH path` (draft-bryan-ftp-hash).
    Hash(PathArg),
    /// `AUTH mechanism` (RFC 4217).
    Auth(AuthMechanism),
    /// `PBSZ size` (RFC 4217).
    Pbsz(u64),
    /// `PROT level` (RFC 4217).
    Prot(ProtectionLevel),
    /// `CCC`: clear the control connection (RFC 4217), refused by policy.
    Ccc,
}

/// The argument of `OPTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptsArg {
    /// `OPTS UTF8 ON|OFF`.
    Utf8(bool),
    /// `OPTS MLST fact;fact;...`: the facts `MLSD`/`MLST` show (unknown facts are ignored,
    /// as RFC 3659 asks).
    Mlst(Vec<MlstFact>),
    /// `OPTS HASH [algorithm]`: query or choose the `HASH` algorithm.
    Hash(Option<HashAlgorithm>),
}

/// The `SITE` commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteCommand {
    /// `SITE CHMOD mode path`.
    Chmod {
        /// Permission bits (`0o7777` at most).
        mode: u32,
        /// The file or directory.
        path: PathArg,
    },
    /// `SITE HELP`.
    Help,
}

/// Why a line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line was empty.
    #[error("empty command line")]
    Empty,
    /// The verb is not a command of this server.
    #[error("unknown command `{0}`")]
    Unknown(String),
    /// The command needs an argument.
    #[error("{verb} needs an argument")]
    MissingArgument {
        /// The command.
        verb: &'static str,
    },
    /// The command takes no argument.
    #[error("{verb} takes no argument")]
    UnexpectedArgument {
        /// The command.
        verb: &'static str,
    },
    /// The argument is malformed.
    #[error("{verb}: {reason}")]
    InvalidArgument {
        /// The command.
        verb: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `EPRT`/`EPSV` named an address family other than IPv4 (1) and IPv6 (2).
    #[error("{verb}: network protocol not supported")]
    UnsupportedNetworkProtocol {
        /// The command.
        verb: &'static str,
    },
    /// `SITE` with a sub-command this server does not have.
    #[error("unknown SITE command `{0}`")]
    UnknownSiteCommand(String),
    /// `REST` or `RANG` named a byte past the largest file position (`wharf_vfs::offset`).
    #[error("{verb}: offset {offset} is beyond the largest file position")]
    InvalidOffset {
        /// The command.
        verb: &'static str,
        /// The offending position (`u64::MAX` for digits past 64 bits).
        offset: u64,
    },
}

impl ParseError {
    /// The reply that answers this error.
    pub fn reply(&self) -> Reply {
        match self {
            ParseError::Empty => Reply::new(500, "Empty command line."),
            ParseError::Unknown(verb) => Reply::new(500, format!("Unknown command {verb}.")),
            // SITE itself is known: what it does not understand is its argument.
            ParseError::UnknownSiteCommand(verb) => {
                Reply::new(501, format!("Unknown SITE command {verb}."))
            }
            ParseError::UnsupportedNetworkProtocol { .. } => {
                Reply::new(522, "Network protocol not supported, use (1,2).")
            }
            ParseError::MissingArgument { .. }
            | ParseError::UnexpectedArgument { .. }
            | ParseError::InvalidArgument { .. } => Reply::new(501, format!("{self}.")),
            // The storage error table's row, as every front-end answers an invalid offset.
            ParseError::InvalidOffset { offset, .. } => {
                crate::errors::reply_for_error(&wharf_vfs::Error::InvalidOffset(*offset))
            }
        }
    }
}

impl Command {
    /// Whether the command may only be used after login. Those that may come first touch no
    /// path: logging in, TLS negotiation, and informational commands.
    pub fn needs_login(&self) -> bool {
        !matches!(
            self,
            Command::User(_)
                | Command::Pass(_)
                | Command::Acct
                | Command::Quit
                | Command::Rein
                | Command::Noop
                | Command::Syst
                | Command::Stat(None)
                | Command::Help(_)
                | Command::Feat
                | Command::Opts(_)
                | Command::Abor
                | Command::Auth(_)
                | Command::Pbsz(_)
                | Command::Prot(_)
                | Command::Ccc
        )
    }

    /// The command's verb, for logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct => "ACCT",
            Command::Quit => "QUIT",
            Command::Rein => "REIN",
            Command::Noop => "NOOP",
            Command::Syst => "SYST",
            Command::Stat(_) => "STAT",
            Command::Help(_) => "HELP",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Dele(_) => "DELE",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mfmt { .. } => "MFMT",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Allo => "ALLO",
            Command::Rest(_) => "REST",
            Command::Rang(_) => "RANG",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Stou(_) => "STOU",
            Command::Appe(_) => "APPE",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Abor => "ABOR",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Site(_) => "SITE",
            Command::Hash(_) => "HASH",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
        }
    }
}

/// The verbs the parser knows, aliases included, as `HELP` lists them.
pub const VERBS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT",
    "HASH", "HELP", "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS",
    "PASS", "PASV", "PBSZ", "PORT", "PROT", "PWD", "QUIT", "RANG", "REIN", "REST", "RETR", "RMD",
    "RNFR", "RNTO", "SITE", "SIZE", "STAT", "STOR", "STOU", "STRU", "SYST", "TYPE", "USER", "XCUP",
    "XCWD", "XMKD", "XPWD", "XRMD",
];

/// The argument of one line, as the parser sees it.
struct Arg<'a> {
    verb: &'static str,
    raw: Option<&'a [u8]>,
}

impl<'a> Arg<'a> {
    /// The argument exactly as sent (paths keep their spaces); required.
    fn required(&self) -> Result<&'a [u8], ParseError> {
        match self.raw {
            Some(raw) if !args::trim(raw).is_empty() => Ok(raw),
            _ => Err(ParseError::MissingArgument { verb: self.verb }),
        }
    }

    /// The argument exactly as sent, if there is one.
    fn optional(&self) -> Option<&'a [u8]> {
        self.raw.filter(|raw| !args::trim(raw).is_empty())
    }

    fn path(&self) -> Result<PathArg, ParseError> {
        self.required().map(PathArg::new)
    }

    fn optional_path(&self) -> Option<PathArg> {
        self.optional().map(PathArg::new)
    }

    /// No argument (whitespace tolerated).
    fn none(&self, command: Command) -> Result<Command, ParseError> {
        match self.optional() {
            None => Ok(command),
            Some(_) => Err(ParseError::UnexpectedArgument { verb: self.verb }),
        }
    }

    fn invalid(&self, reason: &'static str) -> ParseError {
        ParseError::InvalidArgument { verb: self.verb, reason }
    }

    /// A required argument parsed by `parse`, or `reason` when it does not parse.
    fn parsed<T>(
        &self,
        parse: impl FnOnce(&[u8]) -> Option<T>,
        reason: &'static str,
    ) -> Result<T, ParseError> {
        parse(self.required()?).ok_or_else(|| self.invalid(reason))
    }

    /// A required byte position or range, parsed by `parse`; `reason` says what is expected.
    fn position<T>(
        &self,
        parse: impl FnOnce(&[u8]) -> Result<T, PositionError>,
        reason: &'static str,
    ) -> Result<T, ParseError> {
        parse(self.required()?).map_err(|err| match err {
            PositionError::Malformed => self.invalid(reason),
            PositionError::Backwards => self.invalid("the range ends before it starts"),
            PositionError::TooLarge(offset) => {
                ParseError::InvalidOffset { verb: self.verb, offset }
            }
        })
    }

    fn extended_address_error(&self, err: ExtendedAddressError) -> ParseError {
        match err {
            ExtendedAddressError::Malformed => self.invalid("malformed address"),
            ExtendedAddressError::UnsupportedProtocol => {
                ParseError::UnsupportedNetworkProtocol { verb: self.verb }
            }
        }
    }
}

/// Parses one command line (without its line ending).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let (verb, raw) = match line.iter().position(|&b| b == b' ') {
        Some(space) => (&line[..space], Some(&line[space + 1..])),
        None => (line, None),
    };
    if args::trim(line).is_empty() {
        return Err(ParseError::Empty);
    }
    if !(3..=4).contains(&verb.len()) || !verb.iter().all(u8::is_ascii_alphabetic) {
        return Err(ParseError::Unknown(printable(verb)));
    }
    let upper = verb.to_ascii_uppercase();
    let Some(&verb) = VERBS.iter().find(|known| known.as_bytes() == upper.as_slice()) else {
        return Err(ParseError::Unknown(printable(verb)));
    };
    let arg = Arg { verb, raw };
    match verb {
        "USER" => user(&arg),
        "PASS" => password(&arg),
        "ACCT" => arg.required().map(|_| Command::Acct),
        "QUIT" => arg.none(Command::Quit),
        "REIN" => arg.none(Command::Rein),
        "NOOP" => arg.none(Command::Noop),
        "SYST" => arg.none(Command::Syst),
        "FEAT" => arg.none(Command::Feat),
        "PWD" | "XPWD" => arg.none(Command::Pwd),
        "CDUP" | "XCUP" => arg.none(Command::Cdup),
        "ABOR" => arg.none(Command::Abor),
        "PASV" => arg.none(Command::Pasv),
        "CCC" => arg.none(Command::Ccc),
        "STAT" => Ok(Command::Stat(args::listing_target(arg.raw).map(PathArg::new))),
        "HELP" => Ok(Command::Help(arg.optional().and_then(args::text).map(str::to_owned))),
        "OPTS" => opts(&arg),
        "CWD" | "XCWD" => arg.path().map(Command::Cwd),
        "MKD" | "XMKD" => arg.path().map(Command::Mkd),
        "RMD" | "XRMD" => arg.path().map(Command::Rmd),
        "DELE" => arg.path().map(Command::Dele),
        "RNFR" => arg.path().map(Command::Rnfr),
        "RNTO" => arg.path().map(Command::Rnto),
        "SIZE" => arg.path().map(Command::Size),
        "MDTM" => arg.path().map(Command::Mdtm),
        "MFMT" => mfmt(&arg),
        "TYPE" => arg.parsed(args::transfer_type, "unknown type").map(Command::Type),
        "MODE" => arg.parsed(args::transmission_mode, "unknown mode").map(Command::Mode),
        "STRU" => arg.parsed(args::file_structure, "unknown structure").map(Command::Stru),
        "ALLO" => Ok(Command::Allo),
        "REST" => {
            arg.position(args::rest_offset, "offset must be a decimal number").map(Command::Rest)
        }
        "RANG" => arg.position(args::rang_arg, "expected start and end bytes").map(Command::Rang),
        "RETR" => arg.path().map(Command::Retr),
        "STOR" => arg.path().map(Command::Stor),
        "STOU" => Ok(Command::Stou(arg.optional_path())),
        "APPE" => arg.path().map(Command::Appe),
        "LIST" => Ok(Command::List(args::listing_target(arg.raw).map(PathArg::new))),
        "NLST" => Ok(Command::Nlst(args::listing_target(arg.raw).map(PathArg::new))),
        "MLSD" => Ok(Command::Mlsd(arg.optional_path())),
        "MLST" => Ok(Command::Mlst(arg.optional_path())),
        "EPSV" => args::epsv_arg(arg.raw)
            .map(Command::Epsv)
            .map_err(|err| arg.extended_address_error(err)),
        "PORT" => arg.parsed(args::port_address, "expected h1,h2,h3,h4,p1,p2").map(Command::Port),
        "EPRT" => args::eprt_address(arg.required()?)
            .map(Command::Eprt)
            .map_err(|err| arg.extended_address_error(err)),
        "SITE" => site(&arg),
        "HASH" => arg.path().map(Command::Hash),
        "AUTH" => arg.parsed(args::auth_mechanism, "expected a mechanism").map(Command::Auth),
        "PBSZ" => arg.parsed(args::decimal, "size must be a decimal number").map(Command::Pbsz),
        "PROT" => arg.parsed(args::protection_level, "unknown level").map(Command::Prot),
        other => Err(ParseError::Unknown(other.to_owned())),
    }
}

/// The verb as it may be echoed in a reply: printable ASCII only, at most 16 characters.
fn printable(verb: &[u8]) -> String {
    verb.iter().take(16).map(|&b| if b.is_ascii_graphic() { char::from(b) } else { '?' }).collect()
}

fn user(arg: &Arg<'_>) -> Result<Command, ParseError> {
    let raw = args::trim(arg.required()?);
    if raw.len() > MAX_USER_LEN {
        return Err(arg.invalid("user name too long"));
    }
    let name = std::str::from_utf8(raw).map_err(|_| arg.invalid("user name is not UTF-8"))?;
    if name.chars().any(char::is_control) {
        return Err(arg.invalid("user name holds control characters"));
    }
    Ok(Command::User(name.to_owned()))
}

fn password(arg: &Arg<'_>) -> Result<Command, ParseError> {
    // Anonymous clients often send `PASS` with nothing; spaces inside a password matter.
    let raw = arg.raw.unwrap_or_default();
    let text = std::str::from_utf8(raw).map_err(|_| arg.invalid("password is not UTF-8"))?;
    Ok(Command::Pass(PasswordArg::new(text)))
}

fn opts(arg: &Arg<'_>) -> Result<Command, ParseError> {
    let text = args::text(arg.required()?).ok_or_else(|| arg.invalid("not UTF-8"))?;
    let (name, value) = match text.split_once(' ') {
        Some((name, value)) => (name, value.trim()),
        None => (text, ""),
    };
    let option = match name.to_ascii_uppercase().as_str() {
        "UTF8" | "UTF-8" => match value.to_ascii_uppercase().as_str() {
            "ON" | "" => OptsArg::Utf8(true),
            "OFF" => OptsArg::Utf8(false),
            _ => return Err(arg.invalid("expected ON or OFF")),
        },
        "MLST" => OptsArg::Mlst(
            value.split(';').filter_map(|fact| MlstFact::from_name(fact.trim())).collect(),
        ),
        "HASH" if value.is_empty() => OptsArg::Hash(None),
        "HASH" => match HashAlgorithm::from_name(value) {
            Some(algorithm) => OptsArg::Hash(Some(algorithm)),
            None => return Err(arg.invalid("unknown hash algorithm")),
        },
        _ => return Err(arg.invalid("option not understood")),
    };
    Ok(Command::Opts(option))
}

fn mfmt(arg: &Arg<'_>) -> Result<Command, ParseError> {
    let raw = arg.required()?;
    let space = raw.iter().position(|&b| b == b' ');
    let (time, path) = match space {
        Some(space) if space + 1 < raw.len() => (&raw[..space], &raw[space + 1..]),
        _ => return Err(arg.invalid("expected a time and a path")),
    };
    let modified = parse_timestamp(time).ok_or_else(|| arg.invalid("expected YYYYMMDDHHMMSS"))?;
    Ok(Command::Mfmt { modified, path: PathArg::new(path) })
}

fn site(arg: &Arg<'_>) -> Result<Command, ParseError> {
    let raw = args::trim(arg.required()?);
    let (name, rest) = match raw.iter().position(|&b| b == b' ') {
        Some(space) => (&raw[..space], &raw[space + 1..]),
        None => (raw, &b""[..]),
    };
    if name.eq_ignore_ascii_case(b"HELP") {
        return Ok(Command::Site(SiteCommand::Help));
    }
    if !name.eq_ignore_ascii_case(b"CHMOD") {
        return Err(ParseError::UnknownSiteCommand(printable(name)));
    }
    let rest = args::trim(rest);
    let Some(space) = rest.iter().position(|&b| b == b' ') else {
        return Err(arg.invalid("SITE CHMOD needs a mode and a path"));
    };
    let mode = args::octal_mode(&rest[..space]).ok_or_else(|| arg.invalid("mode must be octal"))?;
    let path = &rest[space + 1..];
    if path.is_empty() {
        return Err(arg.invalid("SITE CHMOD needs a mode and a path"));
    }
    Ok(Command::Site(SiteCommand::Chmod { mode, path: PathArg::new(path) }))
}

#[cfg(test)]
mod tests;
