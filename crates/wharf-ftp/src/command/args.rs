//! The argument types of commands and their parsers (pure functions over bytes).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::SystemTime;

use time::{Date, Month, PrimitiveDateTime, Time};

/// A path as the client sent it: raw bytes, resolved against the working directory only by
/// `VPath::resolve_bytes` (which refuses control bytes and non-UTF-8).
#[derive(Clone, PartialEq, Eq)]
pub struct PathArg(Vec<u8>);

impl PathArg {
    /// Wraps raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> PathArg {
        PathArg(bytes.into())
    }

    /// The bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path for replies and logs (invalid UTF-8 replaced).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for PathArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathArg({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// A password, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordArg(String);

impl PasswordArg {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> PasswordArg {
        PasswordArg(password.into())
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordArg(<redacted>)")
    }
}

/// Format control of the ASCII and EBCDIC types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormControl {
    /// `N`, the default: no vertical format information.
    NonPrint,
    /// `T`: Telnet format effectors.
    Telnet,
    /// `C`: ASA carriage control.
    CarriageControl,
}

/// The argument of `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// `A`: text with network line ends.
    Ascii(FormControl),
    /// `E`: EBCDIC text.
    Ebcdic(FormControl),
    /// `I`: bytes as they are.
    Image,
    /// `L n`: local bytes of `n` bits.
    Local(u8),
}

/// The argument of `MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmissionMode {
    /// `S`: a stream of bytes ended by closing the connection.
    Stream,
    /// `B`: blocks.
    Block,
    /// `C`: compressed.
    Compressed,
}

/// The argument of `STRU`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStructure {
    /// `F`: no internal structure.
    File,
    /// `R`: records.
    Record,
    /// `P`: pages.
    Page,
}

/// An address family of RFC 2428 (`1` IPv4, `2` IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkProtocol {
    /// `1`.
    V4,
    /// `2`.
    V6,
}

impl NetworkProtocol {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> NetworkProtocol {
        match addr {
            IpAddr::V4(_) => NetworkProtocol::V4,
            IpAddr::V6(_) => NetworkProtocol::V6,
        }
    }

    /// The number RFC 2428 gives the family.
    pub fn number(self) -> u8 {
        match self {
            NetworkProtocol::V4 => 1,
            NetworkProtocol::V6 => 2,
        }
    }
}

/// The argument of `EPSV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the control connection's family.
    Any,
    /// A family the client asks for.
    Protocol(NetworkProtocol),
    /// `ALL`: from now on only `EPSV` sets up data connections.
    All,
}

/// The argument of `AUTH` (RFC 2228 / 4217).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMechanism {
    /// `TLS` or `TLS-C`.
    Tls,
    /// `SSL` (or `TLS-P`): legacy clients expecting protected data connections too.
    Ssl,
    /// Anything else, refused.
    Other(String),
}

/// The argument of `PROT` (RFC 2228).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectionLevel {
    /// `C`: data connections in the clear.
    Clear,
    /// `S`: integrity only.
    Safe,
    /// `E`: confidentiality only.
    Confidential,
    /// `P`: data connections protected by TLS.
    Private,
}

/// The argument of `RANG` (draft-bryan-ftp-range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangArg {
    /// `RANG 1 0`: forget the range.
    Reset,
    /// The bytes from the first to the last, both included.
    Range(ByteRange),
}

/// A range of bytes as `RANG` names it, both ends included, checked once when it is made:
/// it runs forwards and ends before the largest file position, so its length and its end
/// are plain arithmetic wherever it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    start: u64,
    length: u64,
}

impl ByteRange {
    /// The bytes `first..=last`, or [`wharf_vfs::Error::InvalidOffset`] when `last` is before
    /// `first` or at or past the largest file position.
    pub fn new(first: u64, last: u64) -> Result<ByteRange, wharf_vfs::Error> {
        let (start, length) = wharf_vfs::offset::check_inclusive_range(first, last)?;
        Ok(ByteRange { start, length })
    }

    /// The first byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// How many bytes (at least one).
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The last byte, included.
    pub fn last(&self) -> u64 {
        self.start + (self.length - 1)
    }
}

/// Why a byte position or range from a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PositionError {
    /// Not decimal digits (or the wrong number of them).
    Malformed,
    /// A range whose last byte comes before its first.
    Backwards,
    /// Digits naming a position past the largest file position (or past 64 bits).
    TooLarge(u64),
}

/// Trims ASCII spaces and tabs at both ends.
pub(super) fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// ASCII text of an argument, trimmed.
pub(super) fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(trim(bytes)).ok()
}

/// A decimal number made of ASCII digits only (no sign, no spaces inside).
pub(super) fn decimal<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    let digits = trim(bytes);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn form_control(word: Option<&str>) -> Option<FormControl> {
    match word.map(|w| w.to_ascii_uppercase()).as_deref() {
        None | Some("N") => Some(FormControl::NonPrint),
        Some("T") => Some(FormControl::Telnet),
        Some("C") => Some(FormControl::CarriageControl),
        Some(_) => None,
    }
}

/// `TYPE A`, `TYPE A N`, `TYPE I`, `TYPE L 8`, `TYPE L8`, ...
pub(super) fn transfer_type(arg: &[u8]) -> Option<TransferType> {
    let text = text(arg)?;
    let mut words = text.split_ascii_whitespace();
    let code = words.next()?;
    let second = words.next();
    if words.next().is_some() {
        return None;
    }
    let (letter, rest) = code.split_at(code.char_indices().nth(1).map_or(code.len(), |(i, _)| i));
    match letter.to_ascii_uppercase().as_str() {
        "A" if rest.is_empty() => form_control(second).map(TransferType::Ascii),
        "E" if rest.is_empty() => form_control(second).map(TransferType::Ebcdic),
        "I" if rest.is_empty() && second.is_none() => Some(TransferType::Image),
        "L" => {
            let size = match (rest.is_empty(), second) {
                (true, Some(size)) => size,
                (false, None) => rest,
                _ => return None,
            };
            decimal::<u8>(size.as_bytes()).filter(|bits| *bits > 0).map(TransferType::Local)
        }
        _ => None,
    }
}

fn single_letter(arg: &[u8]) -> Option<char> {
    let text = text(arg)?;
    let mut chars = text.chars();
    let letter = chars.next()?;
    chars.next().is_none().then(|| letter.to_ascii_uppercase())
}

/// `MODE S|B|C`.
pub(super) fn transmission_mode(arg: &[u8]) -> Option<TransmissionMode> {
    match single_letter(arg)? {
        'S' => Some(TransmissionMode::Stream),
        'B' => Some(TransmissionMode::Block),
        'C' => Some(TransmissionMode::Compressed),
        _ => None,
    }
}

/// `STRU F|R|P`.
pub(super) fn file_structure(arg: &[u8]) -> Option<FileStructure> {
    match single_letter(arg)? {
        'F' => Some(FileStructure::File),
        'R' => Some(FileStructure::Record),
        'P' => Some(FileStructure::Page),
        _ => None,
    }
}

/// `PROT C|S|E|P`.
pub(super) fn protection_level(arg: &[u8]) -> Option<ProtectionLevel> {
    match single_letter(arg)? {
        'C' => Some(ProtectionLevel::Clear),
        'S' => Some(ProtectionLevel::Safe),
        'E' => Some(ProtectionLevel::Confidential),
        'P' => Some(ProtectionLevel::Private),
        _ => None,
    }
}

/// `AUTH <mechanism>`.
pub(super) fn auth_mechanism(arg: &[u8]) -> Option<AuthMechanism> {
    let name = text(arg)?.to_ascii_uppercase();
    Some(match name.as_str() {
        "" => return None,
        "TLS" | "TLS-C" => AuthMechanism::Tls,
        "SSL" | "TLS-P" => AuthMechanism::Ssl,
        _ => AuthMechanism::Other(name),
    })
}

/// `PORT h1,h2,h3,h4,p1,p2` (RFC 959).
pub(super) fn port_address(arg: &[u8]) -> Option<SocketAddrV4> {
    let mut numbers = [0u8; 6];
    let mut parts = trim(arg).split(|&b| b == b',');
    for slot in &mut numbers {
        *slot = decimal(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    let [a, b, c, d, hi, lo] = numbers;
    Some(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), u16::from_be_bytes([hi, lo])))
}

/// Why an `EPRT` or `EPSV` argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExtendedAddressError {
    /// Not of the RFC 2428 form.
    Malformed,
    /// A family number other than 1 or 2.
    UnsupportedProtocol,
}

fn network_protocol(number: &[u8]) -> Result<NetworkProtocol, ExtendedAddressError> {
    match decimal::<u32>(number) {
        Some(1) => Ok(NetworkProtocol::V4),
        Some(2) => Ok(NetworkProtocol::V6),
        Some(_) => Err(ExtendedAddressError::UnsupportedProtocol),
        None => Err(ExtendedAddressError::Malformed),
    }
}

/// `EPRT |1|132.235.1.2|6275|` or `EPRT |2|1080::8:800:200C:417A|5282|` (RFC 2428); the
/// delimiter is whatever printable character comes first.
pub(super) fn eprt_address(arg: &[u8]) -> Result<SocketAddr, ExtendedAddressError> {
    use ExtendedAddressError::Malformed;
    let arg = trim(arg);
    let delimiter = *arg.first().ok_or(Malformed)?;
    if !(33..=126).contains(&delimiter) {
        return Err(Malformed);
    }
    let fields: Vec<&[u8]> = arg.split(|&b| b == delimiter).collect();
    let [empty_start, protocol, address, port, empty_end] = fields[..] else {
        return Err(Malformed);
    };
    if !empty_start.is_empty() || !empty_end.is_empty() {
        return Err(Malformed);
    }
    let protocol = network_protocol(protocol)?;
    let address = std::str::from_utf8(address).map_err(|_| Malformed)?;
    let ip = match protocol {
        NetworkProtocol::V4 => IpAddr::V4(address.parse::<Ipv4Addr>().map_err(|_| Malformed)?),
        NetworkProtocol::V6 => IpAddr::V6(address.parse::<Ipv6Addr>().map_err(|_| Malformed)?),
    };
    let port = decimal::<u16>(port).filter(|p| *p != 0).ok_or(Malformed)?;
    Ok(SocketAddr::new(ip, port))
}

/// `EPSV`, `EPSV 1`, `EPSV 2`, `EPSV ALL`.
pub(super) fn epsv_arg(arg: Option<&[u8]>) -> Result<EpsvArg, ExtendedAddressError> {
    let arg = arg.map(trim).unwrap_or_default();
    if arg.is_empty() {
        Ok(EpsvArg::Any)
    } else if arg.eq_ignore_ascii_case(b"ALL") {
        Ok(EpsvArg::All)
    } else {
        network_protocol(arg).map(EpsvArg::Protocol)
    }
}

/// A time as `MFMT` and `MDTM` write it: `YYYYMMDDHHMMSS[.sss]`, in UTC (RFC 3659).
pub fn parse_timestamp(text: &[u8]) -> Option<SystemTime> {
    let (main, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    if main.len() != 14 || !main.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| decimal::<u32>(&main[range]);
    let year = i32::try_from(field(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(field(4..6)?).ok()?).ok()?;
    let day = u8::try_from(field(6..8)?).ok()?;
    let hour = u8::try_from(field(8..10)?).ok()?;
    let minute = u8::try_from(field(10..12)?).ok()?;
    let second = u8::try_from(field(12..14)?).ok()?;
    let nanos = match fraction {
        None => 0,
        Some(digits) if (1..=9).contains(&digits.len()) => {
            let value: u32 = decimal(digits)?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        Some(_) => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(SystemTime::from(PrimitiveDateTime::new(date, time).assume_utc()))
}

/// Decimal digits as a number; digits that do not fit in 64 bits are
/// [`PositionError::TooLarge`], since they can only name a position past the largest one.
fn digits(bytes: &[u8]) -> Result<u64, PositionError> {
    let digits = trim(bytes);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(PositionError::Malformed);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(PositionError::TooLarge(u64::MAX))
}

/// `REST <offset>`: a file position, checked here, where it enters, with
/// [`wharf_vfs::offset::check_offset`].
pub(super) fn rest_offset(arg: &[u8]) -> Result<u64, PositionError> {
    let offset = digits(arg)?;
    wharf_vfs::offset::check_offset(offset).map_err(|_| PositionError::TooLarge(offset))
}

/// `RANG <first> <last>`; `RANG 1 0` resets. The range is checked here, where it enters
/// ([`ByteRange::new`]).
pub(super) fn rang_arg(arg: &[u8]) -> Result<RangArg, PositionError> {
    let text = text(arg).ok_or(PositionError::Malformed)?;
    let mut words = text.split_ascii_whitespace();
    let (Some(first), Some(last), None) = (words.next(), words.next(), words.next()) else {
        return Err(PositionError::Malformed);
    };
    let (first, last) = (digits(first.as_bytes())?, digits(last.as_bytes())?);
    if (first, last) == (1, 0) {
        return Ok(RangArg::Reset);
    }
    if last < first {
        return Err(PositionError::Backwards);
    }
    ByteRange::new(first, last).map(RangArg::Range).map_err(|_| PositionError::TooLarge(last))
}

/// The path of `LIST`/`NLST`/`STAT`, after the `ls`-style options some clients put first
/// (`LIST -la dir`). A name starting with `-` therefore cannot be listed by name.
pub(super) fn listing_target(arg: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut rest = trim(arg?);
    while rest.first() == Some(&b'-') {
        match rest.iter().position(|&b| b == b' ') {
            Some(space) => rest = trim(&rest[space + 1..]),
            None => return None,
        }
    }
    (!rest.is_empty()).then(|| rest.to_vec())
}

/// An octal mode of `SITE CHMOD` (at most `7777`).
pub(super) fn octal_mode(word: &[u8]) -> Option<u32> {
    if word.is_empty() || word.len() > 4 || !word.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    std::str::from_utf8(word).ok().and_then(|s| u32::from_str_radix(s, 8).ok())
}
