//! TFTP packets as bytes on the wire, and back: a pure parser and serializer, no I/O.
//!
//! Wire formats (RFC 1350, options from RFC 2347), all numbers big-endian:
//!
//! ```text
//! RRQ/WRQ  | 01/02 | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ...
//! DATA     | 03    | block    | payload (0..=blksize bytes)
//! ACK      | 04    | block
//! ERROR    | 05    | code     | message | 0
//! OACK     | 06    | opt1 | 0 | value1 | 0 | ...
//! ```
//!
//! The parser borrows from the datagram (no copies) and refuses anything it cannot read
//! exactly: truncated packets, strings without their NUL, unknown opcodes and modes, option
//! names without values, more than [`MAX_OPTIONS`] options. The one leniency: an ERROR whose
//! message lacks its NUL is still an ERROR, because a peer saying "stop" must be heard.

use std::fmt;

/// Largest payload of a DATA packet (the largest `blksize` of RFC 2348).
pub const MAX_BLOCK_SIZE: usize = 65_464;

/// Size of the header of a DATA packet (opcode and block number).
pub const DATA_HEADER_LEN: usize = 4;

/// Most options one request or OACK may carry; real clients send at most five or six.
pub const MAX_OPTIONS: usize = 16;

/// Longest option name or value accepted, in bytes.
pub const MAX_OPTION_LEN: usize = 64;

/// Longest mode string accepted, in bytes (`netascii` is the longest valid one).
const MAX_MODE_LEN: usize = 16;

/// The operation code at the start of every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Opcode {
    /// Read request.
    Rrq = 1,
    /// Write request.
    Wrq = 2,
    /// A block of data.
    Data = 3,
    /// Acknowledgement of a block.
    Ack = 4,
    /// An error; ends the transfer.
    Error = 5,
    /// Option acknowledgement (RFC 2347).
    Oack = 6,
}

impl Opcode {
    fn from_wire(code: u16) -> Option<Opcode> {
        Some(match code {
            1 => Opcode::Rrq,
            2 => Opcode::Wrq,
            3 => Opcode::Data,
            4 => Opcode::Ack,
            5 => Opcode::Error,
            6 => Opcode::Oack,
            _ => return None,
        })
    }
}

/// How the data of a transfer is represented on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Bytes as they are.
    Octet,
    /// Text with CR LF line ends (RFC 764), converted to and from local LF line ends.
    Netascii,
    /// The obsolete mail mode of RFC 1350; parsed so it can be refused by name.
    Mail,
}

impl TransferMode {
    /// The mode as written in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferMode::Octet => "octet",
            TransferMode::Netascii => "netascii",
            TransferMode::Mail => "mail",
        }
    }

    fn parse(text: &[u8]) -> Option<TransferMode> {
        [TransferMode::Octet, TransferMode::Netascii, TransferMode::Mail]
            .into_iter()
            .find(|mode| text.eq_ignore_ascii_case(mode.as_str().as_bytes()))
    }
}

/// One option of a request or OACK, as sent (names are compared without case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireOption<'a> {
    /// Option name, such as `blksize`.
    pub name: &'a str,
    /// Option value, such as `1468`.
    pub value: &'a str,
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name as sent (not necessarily UTF-8; never contains NUL).
    pub filename: &'a [u8],
    /// The transfer mode.
    pub mode: TransferMode,
    /// Options in the order sent (RFC 2347).
    pub options: Vec<WireOption<'a>>,
}

/// A TFTP packet borrowed from a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Rrq(Request<'a>),
    /// Write request.
    Wrq(Request<'a>),
    /// A block of data.
    Data {
        /// Block number (wraps around after 65535).
        block: u16,
        /// The block's bytes.
        payload: &'a [u8],
    },
    /// Acknowledgement of a block (0 acknowledges an OACK or a WRQ).
    Ack {
        /// Block number.
        block: u16,
    },
    /// An error; the transfer ends.
    Error {
        /// Error code (0-8 are defined).
        code: u16,
        /// Human-readable message (bytes as sent, without the NUL).
        message: &'a [u8],
    },
    /// Options the server accepted (RFC 2347).
    Oack {
        /// The accepted options and their values.
        options: Vec<WireOption<'a>>,
    },
}

/// Why a datagram is not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer than the two bytes of an opcode.
    #[error("packet shorter than its opcode")]
    NoOpcode,
    /// The opcode is not one of 1-6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// The packet ends before a fixed-size field.
    #[error("{packet} packet truncated")]
    Truncated {
        /// Which packet.
        packet: &'static str,
    },
    /// Bytes after the end of an ACK (which is exactly four bytes).
    #[error("{packet} packet has {extra} bytes after its end")]
    TrailingBytes {
        /// Which packet.
        packet: &'static str,
        /// How many extra bytes.
        extra: usize,
    },
    /// A string field has no terminating NUL.
    #[error("{field} is not terminated by a NUL byte")]
    Unterminated {
        /// Which field.
        field: &'static str,
    },
    /// The request names no file.
    #[error("empty file name")]
    EmptyFilename,
    /// The mode is not `octet`, `netascii` or `mail`.
    #[error("unknown transfer mode")]
    UnknownMode,
    /// An option name or value is not text, or is longer than [`MAX_OPTION_LEN`].
    #[error("malformed option")]
    MalformedOption,
    /// An option name is followed by no value.
    #[error("option `{0}` has no value")]
    OptionWithoutValue(String),
    /// More than [`MAX_OPTIONS`] options.
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
    /// A DATA payload larger than any block size allows.
    #[error("DATA payload of {0} bytes exceeds the largest block size")]
    OversizedData(usize),
}

/// Splits `input` at its first NUL: the string before, the rest after.
fn take_string<'a>(
    input: &'a [u8],
    field: &'static str,
) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let end = input.iter().position(|&b| b == 0).ok_or(ParseError::Unterminated { field })?;
    Ok((&input[..end], &input[end + 1..]))
}

fn take_u16<'a>(input: &'a [u8], packet: &'static str) -> Result<(u16, &'a [u8]), ParseError> {
    match input {
        [high, low, rest @ ..] => Ok((u16::from_be_bytes([*high, *low]), rest)),
        _ => Err(ParseError::Truncated { packet }),
    }
}

fn option_text(bytes: &[u8]) -> Result<&str, ParseError> {
    if bytes.len() > MAX_OPTION_LEN || bytes.iter().any(|b| !b.is_ascii_graphic() && *b != b' ') {
        return Err(ParseError::MalformedOption);
    }
    std::str::from_utf8(bytes).map_err(|_| ParseError::MalformedOption)
}

/// Parses a sequence of `name NUL value NUL` pairs that fills `input` exactly.
fn parse_options(mut input: &[u8]) -> Result<Vec<WireOption<'_>>, ParseError> {
    let mut options = Vec::new();
    while !input.is_empty() {
        if options.len() == MAX_OPTIONS {
            return Err(ParseError::TooManyOptions);
        }
        let (name, rest) = take_string(input, "option name")?;
        let name = option_text(name)?;
        if name.is_empty() {
            return Err(ParseError::MalformedOption);
        }
        let (value, rest) = take_string(rest, "option value")
            .map_err(|_| ParseError::OptionWithoutValue(name.to_owned()))?;
        options.push(WireOption { name, value: option_text(value)? });
        input = rest;
    }
    Ok(options)
}

fn parse_request(input: &[u8]) -> Result<Request<'_>, ParseError> {
    let (filename, rest) = take_string(input, "file name")?;
    if filename.is_empty() {
        return Err(ParseError::EmptyFilename);
    }
    let (mode, rest) = take_string(rest, "mode")?;
    if mode.len() > MAX_MODE_LEN {
        return Err(ParseError::UnknownMode);
    }
    let mode = TransferMode::parse(mode).ok_or(ParseError::UnknownMode)?;
    Ok(Request { filename, mode, options: parse_options(rest)? })
}

fn expect_end(rest: &[u8], packet: &'static str) -> Result<(), ParseError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ParseError::TrailingBytes { packet, extra: rest.len() })
    }
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    pub fn parse(datagram: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        let (code, body) = take_u16(datagram, "opcode").map_err(|_| ParseError::NoOpcode)?;
        let opcode = Opcode::from_wire(code).ok_or(ParseError::UnknownOpcode(code))?;
        match opcode {
            Opcode::Rrq => Ok(Packet::Rrq(parse_request(body)?)),
            Opcode::Wrq => Ok(Packet::Wrq(parse_request(body)?)),
            Opcode::Data => {
                let (block, payload) = take_u16(body, "DATA")?;
                if payload.len() > MAX_BLOCK_SIZE {
                    return Err(ParseError::OversizedData(payload.len()));
                }
                Ok(Packet::Data { block, payload })
            }
            Opcode::Ack => {
                let (block, rest) = take_u16(body, "ACK")?;
                expect_end(rest, "ACK")?;
                Ok(Packet::Ack { block })
            }
            Opcode::Error => {
                let (code, rest) = take_u16(body, "ERROR")?;
                let message = match take_string(rest, "error message") {
                    Ok((message, _)) => message,
                    Err(_) => rest,
                };
                Ok(Packet::Error { code, message })
            }
            Opcode::Oack => Ok(Packet::Oack { options: parse_options(body)? }),
        }
    }

    /// The packet's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Packet::Rrq(_) => Opcode::Rrq,
            Packet::Wrq(_) => Opcode::Wrq,
            Packet::Data { .. } => Opcode::Data,
            Packet::Ack { .. } => Opcode::Ack,
            Packet::Error { .. } => Opcode::Error,
            Packet::Oack { .. } => Opcode::Oack,
        }
    }

    /// Appends the packet's wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.opcode() as u16).to_be_bytes());
        match self {
            Packet::Rrq(request) | Packet::Wrq(request) => {
                push_string(out, request.filename);
                push_string(out, request.mode.as_str().as_bytes());
                push_options(out, &request.options);
            }
            Packet::Data { block, payload } => {
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Packet::Ack { block } => out.extend_from_slice(&block.to_be_bytes()),
            Packet::Error { code, message } => {
                out.extend_from_slice(&code.to_be_bytes());
                push_string(out, message);
            }
            Packet::Oack { options } => push_options(out, options),
        }
    }

    /// The packet's wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn push_string(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(text);
    out.push(0);
}

fn push_options(out: &mut Vec<u8>, options: &[WireOption<'_>]) {
    for option in options {
        push_string(out, option.name.as_bytes());
        push_string(out, option.value.as_bytes());
    }
}

/// The header of a DATA packet for `block`; the payload follows it.
pub fn data_header(block: u16) -> [u8; DATA_HEADER_LEN] {
    let [op_high, op_low] = (Opcode::Data as u16).to_be_bytes();
    let [high, low] = block.to_be_bytes();
    [op_high, op_low, high, low]
}

/// Writes a DATA packet into `out` (cleared first), without building a [`Packet`].
pub fn encode_data(out: &mut Vec<u8>, block: u16, payload: &[u8]) {
    out.clear();
    out.reserve(DATA_HEADER_LEN + payload.len());
    out.extend_from_slice(&data_header(block));
    out.extend_from_slice(payload);
}

/// The wire form of an ACK.
pub fn encode_ack(block: u16) -> [u8; 4] {
    let [op_high, op_low] = (Opcode::Ack as u16).to_be_bytes();
    let [high, low] = block.to_be_bytes();
    [op_high, op_low, high, low]
}

/// The wire form of an ERROR with `code` and `message` (NUL bytes in the message are dropped
/// so the packet stays well-formed).
pub fn encode_error(code: u16, message: &str) -> Vec<u8> {
    let clean: Vec<u8> = message.bytes().filter(|&b| b != 0).collect();
    Packet::Error { code, message: &clean }.to_bytes()
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Opcode::Rrq => "RRQ",
            Opcode::Wrq => "WRQ",
            Opcode::Data => "DATA",
            Opcode::Ack => "ACK",
            Opcode::Error => "ERROR",
            Opcode::Oack => "OACK",
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn opt<'a>(name: &'a str, value: &'a str) -> WireOption<'a> {
        WireOption { name, value }
    }

    #[test]
    fn parses_a_read_request_with_options() {
        let datagram = b"\x00\x01boot/pxelinux.0\x00OCTET\x00blksize\x001468\x00tsize\x000\x00";
        let packet = Packet::parse(datagram).expect("valid RRQ");
        assert_eq!(
            packet,
            Packet::Rrq(Request {
                filename: b"boot/pxelinux.0",
                mode: TransferMode::Octet,
                options: vec![opt("blksize", "1468"), opt("tsize", "0")],
            })
        );
    }

    #[test]
    fn parses_every_fixed_packet() {
        assert_eq!(
            Packet::parse(b"\x00\x02cfg\x00netascii\x00"),
            Ok(Packet::Wrq(Request {
                filename: b"cfg",
                mode: TransferMode::Netascii,
                options: vec![]
            }))
        );
        assert_eq!(
            Packet::parse(b"\x00\x03\x01\x02abc"),
            Ok(Packet::Data { block: 0x0102, payload: b"abc" })
        );
        assert_eq!(
            Packet::parse(b"\x00\x03\xff\xff"),
            Ok(Packet::Data { block: 65535, payload: b"" })
        );
        assert_eq!(Packet::parse(b"\x00\x04\x00\x07"), Ok(Packet::Ack { block: 7 }));
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x01File not found\x00"),
            Ok(Packet::Error { code: 1, message: b"File not found" })
        );
        assert_eq!(
            Packet::parse(b"\x00\x06blksize\x00512\x00"),
            Ok(Packet::Oack { options: vec![opt("blksize", "512")] })
        );
    }

    #[test]
    fn refuses_malformed_packets() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"", ParseError::NoOpcode),
            (b"\x00", ParseError::NoOpcode),
            (b"\x00\x09abc", ParseError::UnknownOpcode(9)),
            (b"\x00\x00", ParseError::UnknownOpcode(0)),
            (b"\x00\x01file", ParseError::Unterminated { field: "file name" }),
            (b"\x00\x01file\x00octet", ParseError::Unterminated { field: "mode" }),
            (b"\x00\x01\x00octet\x00", ParseError::EmptyFilename),
            (b"\x00\x01f\x00binary\x00", ParseError::UnknownMode),
            (
                b"\x00\x01f\x00octet\x00blksize\x00",
                ParseError::OptionWithoutValue("blksize".into()),
            ),
            (
                b"\x00\x01f\x00octet\x00blksize\x00512",
                ParseError::OptionWithoutValue("blksize".into()),
            ),
            (b"\x00\x01f\x00octet\x00\x00512\x00", ParseError::MalformedOption),
            (b"\x00\x01f\x00octet\x00bl\x01ksize\x00512\x00", ParseError::MalformedOption),
            (b"\x00\x03\x00", ParseError::Truncated { packet: "DATA" }),
            (b"\x00\x04\x00", ParseError::Truncated { packet: "ACK" }),
            (b"\x00\x04\x00\x01\x00", ParseError::TrailingBytes { packet: "ACK", extra: 1 }),
            (b"\x00\x05\x00", ParseError::Truncated { packet: "ERROR" }),
        ];
        for (datagram, expected) in cases {
            assert_eq!(Packet::parse(datagram).as_ref(), Err(expected), "{datagram:?}");
        }
    }

    #[test]
    fn limits_options_and_data() {
        let mut many = b"\x00\x01f\x00octet\x00".to_vec();
        for i in 0..=MAX_OPTIONS {
            many.extend_from_slice(format!("x{i}\x001\x00").as_bytes());
        }
        assert_eq!(Packet::parse(&many), Err(ParseError::TooManyOptions));
        let mut long = b"\x00\x01f\x00octet\x00".to_vec();
        long.extend_from_slice(&[b'a'; MAX_OPTION_LEN + 1]);
        long.extend_from_slice(b"\x001\x00");
        assert_eq!(Packet::parse(&long), Err(ParseError::MalformedOption));
        let mut data = vec![0, 3, 0, 1];
        data.resize(DATA_HEADER_LEN + MAX_BLOCK_SIZE + 1, 7);
        assert_eq!(Packet::parse(&data), Err(ParseError::OversizedData(MAX_BLOCK_SIZE + 1)));
    }

    #[test]
    fn an_error_without_its_nul_is_still_heard() {
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x00give up"),
            Ok(Packet::Error { code: 0, message: b"give up" })
        );
    }

    #[test]
    fn fast_path_encoders_match_the_packet_encoder() {
        let mut buf = vec![9; 3];
        encode_data(&mut buf, 513, b"xyz");
        assert_eq!(buf, Packet::Data { block: 513, payload: b"xyz" }.to_bytes());
        assert_eq!(encode_ack(65535).to_vec(), Packet::Ack { block: 65535 }.to_bytes());
        assert_eq!(
            encode_error(2, "no\0pe"),
            Packet::Error { code: 2, message: b"nope" }.to_bytes()
        );
    }

    fn option_text_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]{1,12}"
    }

    fn options_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec((option_text_strategy(), option_text_strategy()), 0..MAX_OPTIONS)
    }

    #[derive(Debug, Clone)]
    enum Shape {
        Request {
            write: bool,
            filename: Vec<u8>,
            mode: TransferMode,
            options: Vec<(String, String)>,
        },
        Data {
            block: u16,
            payload: Vec<u8>,
        },
        Ack {
            block: u16,
        },
        Error {
            code: u16,
            message: Vec<u8>,
        },
        Oack {
            options: Vec<(String, String)>,
        },
    }

    fn shape_strategy() -> impl Strategy<Value = Shape> {
        let mode = prop_oneof![
            Just(TransferMode::Octet),
            Just(TransferMode::Netascii),
            Just(TransferMode::Mail)
        ];
        prop_oneof![
            (any::<bool>(), prop::collection::vec(1u8..=255, 1..300), mode, options_strategy())
                .prop_map(|(write, filename, mode, options)| Shape::Request {
                    write,
                    filename,
                    mode,
                    options
                }),
            (any::<u16>(), prop::collection::vec(any::<u8>(), 0..2048))
                .prop_map(|(block, payload)| Shape::Data { block, payload }),
            any::<u16>().prop_map(|block| Shape::Ack { block }),
            (any::<u16>(), prop::collection::vec(1u8..=255, 0..100))
                .prop_map(|(code, message)| Shape::Error { code, message }),
            options_strategy().prop_map(|options| Shape::Oack { options }),
        ]
    }

    fn wire_options(options: &[(String, String)]) -> Vec<WireOption<'_>> {
        options.iter().map(|(n, v)| WireOption { name: n, value: v }).collect()
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(shape in shape_strategy()) {
            let packet = match &shape {
                Shape::Request { write, filename, mode, options } => {
                    let request =
                        Request { filename, mode: *mode, options: wire_options(options) };
                    if *write { Packet::Wrq(request) } else { Packet::Rrq(request) }
                }
                Shape::Data { block, payload } => Packet::Data { block: *block, payload },
                Shape::Ack { block } => Packet::Ack { block: *block },
                Shape::Error { code, message } => Packet::Error { code: *code, message },
                Shape::Oack { options } => Packet::Oack { options: wire_options(options) },
            };
            let bytes = packet.to_bytes();
            prop_assert_eq!(Packet::parse(&bytes), Ok(packet));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Packet::parse(&bytes);
        }

        #[test]
        fn truncating_a_request_never_yields_a_different_request(
            shape in shape_strategy(), cut in 0usize..400
        ) {
            if let Shape::Request { write, filename, mode, options } = &shape {
                let request = Request { filename, mode: *mode, options: wire_options(options) };
                let packet = if *write { Packet::Wrq(request) } else { Packet::Rrq(request) };
                let bytes = packet.to_bytes();
                let cut = cut.min(bytes.len());
                if cut < bytes.len() {
                    // A strict prefix parses only when it ends at an option boundary, and then
                    // it holds fewer options than the original.
                    if let Ok(parsed) = Packet::parse(&bytes[..cut]) {
                        match (parsed, packet) {
                            (Packet::Rrq(p), Packet::Rrq(o)) | (Packet::Wrq(p), Packet::Wrq(o)) => {
                                prop_assert_eq!(p.filename, o.filename);
                                prop_assert!(p.options.len() < o.options.len());
                            }
                            (parsed, _) => prop_assert!(false, "became {:?}", parsed),
                        }
                    }
                }
            }
        }
    }
}
