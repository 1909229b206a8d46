//! The parser alone: every command, bad syntax, and random input.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;

fn ok(line: &str) -> Command {
    parse(line.as_bytes()).unwrap_or_else(|err| panic!("{line:?} should parse: {err}"))
}

fn err(line: &str) -> ParseError {
    match parse(line.as_bytes()) {
        Ok(command) => panic!("{line:?} should not parse, got {command:?}"),
        Err(err) => err,
    }
}

type MakeCommand = fn(PathArg) -> Command;

fn path(text: &str) -> PathArg {
    PathArg::new(text.as_bytes())
}

#[test]
fn login_commands() {
    assert_eq!(ok("USER alice"), Command::User("alice".into()));
    assert_eq!(ok("user  alice "), Command::User("alice".into()));
    assert_eq!(
        ok("PASS s3cret with spaces"),
        Command::Pass(PasswordArg::new("s3cret with spaces"))
    );
    assert_eq!(ok("PASS"), Command::Pass(PasswordArg::new("")));
    assert_eq!(ok("ACCT x"), Command::Acct);
    assert!(matches!(err("USER"), ParseError::MissingArgument { verb: "USER" }));
    assert!(matches!(err("USER \u{1}x"), ParseError::InvalidArgument { .. }));
    assert!(matches!(parse(b"PASS \xff"), Err(ParseError::InvalidArgument { .. })));
    assert!(!format!("{:?}", ok("PASS hunter2")).contains("hunter2"), "passwords never print");
}

#[test]
fn commands_without_arguments() {
    for (line, command) in [
        ("QUIT", Command::Quit),
        ("REIN", Command::Rein),
        ("NOOP", Command::Noop),
        ("SYST", Command::Syst),
        ("FEAT", Command::Feat),
        ("PWD", Command::Pwd),
        ("XPWD", Command::Pwd),
        ("CDUP", Command::Cdup),
        ("XCUP", Command::Cdup),
        ("ABOR", Command::Abor),
        ("PASV", Command::Pasv),
        ("CCC", Command::Ccc),
        ("STAT", Command::Stat(None)),
        ("HELP", Command::Help(None)),
        ("LIST", Command::List(None)),
        ("NLST", Command::Nlst(None)),
        ("MLSD", Command::Mlsd(None)),
        ("MLST", Command::Mlst(None)),
        ("STOU", Command::Stou(None)),
        ("ALLO 1000", Command::Allo),
        ("noop ", Command::Noop),
    ] {
        assert_eq!(ok(line), command, "{line}");
    }
    assert!(matches!(err("NOOP now"), ParseError::UnexpectedArgument { verb: "NOOP" }));
    assert!(matches!(err("PWD /x"), ParseError::UnexpectedArgument { verb: "PWD" }));
}

#[test]
fn path_commands_keep_the_argument_exactly() {
    let cases: [(&str, MakeCommand); 13] = [
        ("CWD", Command::Cwd),
        ("XCWD", Command::Cwd),
        ("MKD", Command::Mkd),
        ("XMKD", Command::Mkd),
        ("RMD", Command::Rmd),
        ("XRMD", Command::Rmd),
        ("DELE", Command::Dele),
        ("RNFR", Command::Rnfr),
        ("RNTO", Command::Rnto),
        ("SIZE", Command::Size),
        ("MDTM", Command::Mdtm),
        ("RETR", Command::Retr),
        ("STOR", Command::Stor),
    ];
    for (verb, make) in cases {
        assert_eq!(ok(&format!("{verb} a dir/ünï cödé.txt ")), make(path("a dir/ünï cödé.txt ")));
        assert!(matches!(err(verb), ParseError::MissingArgument { .. }), "{verb}");
        assert!(matches!(err(&format!("{verb}   ")), ParseError::MissingArgument { .. }), "{verb}");
    }
    assert_eq!(ok("APPE log"), Command::Appe(path("log")));
    assert_eq!(ok("HASH big.iso"), Command::Hash(path("big.iso")));
    assert_eq!(ok("STOU base"), Command::Stou(Some(path("base"))));
    assert_eq!(ok("MLSD /pub"), Command::Mlsd(Some(path("/pub"))));
    assert_eq!(ok("MLST file"), Command::Mlst(Some(path("file"))));
    // Non-UTF-8 paths are the path resolver's to refuse, not the parser's.
    assert_eq!(parse(b"RETR \xff").ok(), Some(Command::Retr(PathArg::new(&b"\xff"[..]))));
}

#[test]
fn listing_options_are_skipped() {
    assert_eq!(ok("LIST -la"), Command::List(None));
    assert_eq!(ok("LIST -a -l /pub"), Command::List(Some(path("/pub"))));
    assert_eq!(ok("NLST docs"), Command::Nlst(Some(path("docs"))));
    assert_eq!(ok("STAT -l /x"), Command::Stat(Some(path("/x"))));
    assert_eq!(ok("STAT /x"), Command::Stat(Some(path("/x"))));
}

#[test]
fn transfer_parameters() {
    assert_eq!(ok("TYPE I"), Command::Type(TransferType::Image));
    assert_eq!(ok("TYPE a"), Command::Type(TransferType::Ascii(FormControl::NonPrint)));
    assert_eq!(ok("TYPE A N"), Command::Type(TransferType::Ascii(FormControl::NonPrint)));
    assert_eq!(ok("TYPE A T"), Command::Type(TransferType::Ascii(FormControl::Telnet)));
    assert_eq!(ok("TYPE E C"), Command::Type(TransferType::Ebcdic(FormControl::CarriageControl)));
    assert_eq!(ok("TYPE L 8"), Command::Type(TransferType::Local(8)));
    assert_eq!(ok("TYPE L8"), Command::Type(TransferType::Local(8)));
    for bad in ["TYPE X", "TYPE I N", "TYPE A Q", "TYPE L", "TYPE L 0", "TYPE L x", "TYPE AB"] {
        assert!(matches!(err(bad), ParseError::InvalidArgument { verb: "TYPE", .. }), "{bad}");
    }
    assert_eq!(ok("MODE S"), Command::Mode(TransmissionMode::Stream));
    assert_eq!(ok("MODE b"), Command::Mode(TransmissionMode::Block));
    assert_eq!(ok("MODE C"), Command::Mode(TransmissionMode::Compressed));
    assert!(matches!(err("MODE Z"), ParseError::InvalidArgument { .. }));
    assert_eq!(ok("STRU F"), Command::Stru(FileStructure::File));
    assert_eq!(ok("STRU R"), Command::Stru(FileStructure::Record));
    assert_eq!(ok("STRU P"), Command::Stru(FileStructure::Page));
    assert_eq!(ok("REST 0"), Command::Rest(0));
    for bad in ["REST", "REST -1", "REST 1e3", "REST 1 2"] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
    assert_eq!(ok("RANG 0 99"), Command::Rang(range(0, 99)));
    assert_eq!(ok("RANG 1 0"), Command::Rang(RangArg::Reset));
    assert!(matches!(err("RANG 5 4"), ParseError::InvalidArgument { .. }));
    assert!(matches!(err("RANG 5"), ParseError::InvalidArgument { .. }));
}

fn range(first: u64, last: u64) -> RangArg {
    RangArg::Range(ByteRange::new(first, last).expect("a valid range"))
}

/// The reply of a line refused for naming a position past `i64::MAX`: the storage error
/// table's row for `InvalidOffset`.
fn refused_offset(line: &str) -> Reply {
    match err(line) {
        refusal @ ParseError::InvalidOffset { .. } => refusal.reply(),
        other => panic!("{line:?} refused as {other:?}, not as an invalid offset"),
    }
}

#[test]
fn offsets_past_the_largest_file_position_are_refused_where_they_enter() {
    let max = wharf_vfs::offset::MAX_OFFSET;
    assert_eq!(ok(&format!("REST {max}")), Command::Rest(max));
    for line in [
        format!("REST {}", max + 1),
        "REST 18446744073709551615".to_owned(),
        "REST 18446744073709551616".to_owned(),
        "REST 99999999999999999999999999".to_owned(),
        "RANG 0 18446744073709551615".to_owned(),
        format!("RANG 0 {max}"),
        format!("RANG {max} {max}"),
        "RANG 0 99999999999999999999999999".to_owned(),
        "RANG 18446744073709551615 18446744073709551615".to_owned(),
    ] {
        let reply = refused_offset(&line);
        assert_eq!(reply.code(), 501, "{line}");
        assert_eq!(reply.lines()[0], "Offset beyond the largest file position.", "{line}");
    }
    // The largest range there is: its length is the largest position, and nothing wraps.
    let Command::Rang(RangArg::Range(widest)) = ok(&format!("RANG 0 {}", max - 1)) else {
        panic!("RANG 0 {} should be a range", max - 1);
    };
    assert_eq!((widest.start(), widest.length(), widest.last()), (0, max, max - 1));
    let Command::Rang(RangArg::Range(last_byte)) = ok(&format!("RANG {0} {0}", max - 1)) else {
        panic!("a one-byte range at the end should parse");
    };
    assert_eq!((last_byte.start(), last_byte.length()), (max - 1, 1));
    assert_eq!(err("RANG 5 4").reply().code(), 501, "backwards");
}

#[test]
fn data_connection_setup() {
    assert_eq!(
        ok("PORT 127,0,0,1,195,80"),
        Command::Port(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50_000))
    );
    for bad in ["PORT 1,2,3,4,5", "PORT 1,2,3,4,5,6,7", "PORT 256,0,0,1,1,1", "PORT a,b,c,d,e,f"] {
        assert!(matches!(err(bad), ParseError::InvalidArgument { verb: "PORT", .. }), "{bad}");
    }
    assert_eq!(
        ok("EPRT |1|132.235.1.2|6275|"),
        Command::Eprt(SocketAddr::new(Ipv4Addr::new(132, 235, 1, 2).into(), 6275))
    );
    assert_eq!(
        ok("EPRT !2!1080::8:800:200C:417A!5282!"),
        Command::Eprt(SocketAddr::new(
            "1080::8:800:200C:417A".parse::<Ipv6Addr>().expect("ipv6").into(),
            5282
        ))
    );
    assert!(matches!(err("EPRT |3|x|1|"), ParseError::UnsupportedNetworkProtocol { .. }));
    assert_eq!(err("EPRT |3|x|1|").reply().code(), 522);
    for bad in ["EPRT |1|::1|80|", "EPRT |2|1.2.3.4|80|", "EPRT |1|1.2.3.4|0|", "EPRT 1|1.2.3.4|80"]
    {
        assert!(matches!(err(bad), ParseError::InvalidArgument { verb: "EPRT", .. }), "{bad}");
    }
    assert_eq!(ok("EPSV"), Command::Epsv(EpsvArg::Any));
    assert_eq!(ok("EPSV all"), Command::Epsv(EpsvArg::All));
    assert_eq!(ok("EPSV 1"), Command::Epsv(EpsvArg::Protocol(NetworkProtocol::V4)));
    assert_eq!(ok("EPSV 2"), Command::Epsv(EpsvArg::Protocol(NetworkProtocol::V6)));
    assert!(matches!(err("EPSV 7"), ParseError::UnsupportedNetworkProtocol { .. }));
    assert!(matches!(err("EPSV some"), ParseError::InvalidArgument { .. }));
}

#[test]
fn extensions() {
    assert_eq!(ok("OPTS UTF8 ON"), Command::Opts(OptsArg::Utf8(true)));
    assert_eq!(ok("OPTS utf8 off"), Command::Opts(OptsArg::Utf8(false)));
    assert_eq!(
        ok("OPTS MLST type;size;bogus;PERM;"),
        Command::Opts(OptsArg::Mlst(vec![MlstFact::Type, MlstFact::Size, MlstFact::Perm]))
    );
    assert_eq!(ok("OPTS MLST"), Command::Opts(OptsArg::Mlst(vec![])));
    assert_eq!(ok("OPTS HASH"), Command::Opts(OptsArg::Hash(None)));
    assert_eq!(ok("OPTS HASH md5"), Command::Opts(OptsArg::Hash(Some(HashAlgorithm::Md5))));
    assert!(matches!(err("OPTS HASH SHA-512"), ParseError::InvalidArgument { .. }));
    assert!(matches!(err("OPTS MODE Z"), ParseError::InvalidArgument { .. }));
    assert_eq!(
        ok("MFMT 20240229123456 leap day.txt"),
        Command::Mfmt {
            modified: UNIX_EPOCH + Duration::from_secs(1_709_210_096),
            path: path("leap day.txt")
        }
    );
    assert_eq!(
        ok("MFMT 20240229123456.5 f"),
        Command::Mfmt {
            modified: UNIX_EPOCH + Duration::from_millis(1_709_210_096_500),
            path: path("f")
        }
    );
    for bad in ["MFMT 20230229123456 f", "MFMT 2024 f", "MFMT 20240101000000", "MFMT x f"] {
        assert!(matches!(err(bad), ParseError::InvalidArgument { verb: "MFMT", .. }), "{bad}");
    }
    assert_eq!(
        ok("SITE CHMOD 0755 bin/run me"),
        Command::Site(SiteCommand::Chmod { mode: 0o755, path: path("bin/run me") })
    );
    assert_eq!(ok("site help"), Command::Site(SiteCommand::Help));
    assert!(matches!(err("SITE CHMOD 999 f"), ParseError::InvalidArgument { .. }));
    assert!(matches!(err("SITE CHMOD 644"), ParseError::InvalidArgument { .. }));
    assert!(matches!(err("SITE EXEC rm"), ParseError::UnknownSiteCommand(_)));
    assert_eq!(err("SITE EXEC rm").reply().code(), 501, "SITE is known, its argument is not");
    assert_eq!(ok("AUTH TLS"), Command::Auth(AuthMechanism::Tls));
    assert_eq!(ok("AUTH tls-c"), Command::Auth(AuthMechanism::Tls));
    assert_eq!(ok("AUTH SSL"), Command::Auth(AuthMechanism::Ssl));
    assert_eq!(ok("AUTH GSSAPI"), Command::Auth(AuthMechanism::Other("GSSAPI".into())));
    assert_eq!(ok("PBSZ 0"), Command::Pbsz(0));
    assert_eq!(ok("PROT P"), Command::Prot(ProtectionLevel::Private));
    assert_eq!(ok("PROT C"), Command::Prot(ProtectionLevel::Clear));
    assert!(matches!(err("PROT X"), ParseError::InvalidArgument { .. }));
    assert_eq!(ok("HELP retr"), Command::Help(Some("retr".into())));
}

#[test]
fn unknown_and_malformed_verbs() {
    assert_eq!(err(""), ParseError::Empty);
    assert_eq!(err("   "), ParseError::Empty);
    assert_eq!(err("XYZZY"), ParseError::Unknown("XYZZY".into()));
    assert_eq!(err("FOO bar"), ParseError::Unknown("FOO".into()));
    assert_eq!(err("RE1R x"), ParseError::Unknown("RE1R".into()));
    assert_eq!(err(" USER a"), ParseError::Unknown("".into()));
    assert_eq!(parse(b"\xffUSE").err().map(|e| e.reply().code()), Some(500));
    assert_eq!(err("USER").reply().code(), 501);
}

#[test]
fn login_gate() {
    for free in [
        "USER a",
        "PASS b",
        "QUIT",
        "NOOP",
        "FEAT",
        "SYST",
        "HELP",
        "STAT",
        "AUTH TLS",
        "PBSZ 0",
        "PROT P",
        "OPTS UTF8 ON",
        "ABOR",
        "REIN",
        "CCC",
        "ACCT x",
    ] {
        assert!(!ok(free).needs_login(), "{free}");
    }
    for gated in [
        "STAT /",
        "CWD /",
        "RETR f",
        "LIST",
        "PASV",
        "PORT 1,2,3,4,5,6",
        "TYPE I",
        "SIZE f",
        "MKD d",
        "HASH f",
        "SITE HELP",
        "REST 1",
        "MLST",
        "EPSV ALL",
    ] {
        assert!(ok(gated).needs_login(), "{gated}");
    }
}

#[test]
fn every_verb_has_a_parse_case() {
    for verb in VERBS {
        let line = format!("{verb} x");
        match parse(line.as_bytes()) {
            Err(ParseError::Unknown(_)) => panic!("{verb} is listed but not parsed"),
            Ok(command) if !verb.starts_with('X') => assert_eq!(&command.verb(), verb),
            _ => {}
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&line);
    }

    #[test]
    fn known_verbs_with_random_arguments_never_panic(
        verb in proptest::sample::select(VERBS),
        arg in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut line = verb.as_bytes().to_vec();
        line.push(b' ');
        line.extend_from_slice(&arg);
        if let Err(err) = parse(&line) {
            let reply = err.reply();
            prop_assert!(reply.code() >= 500 && reply.code() < 600);
        }
    }

    #[test]
    fn verbs_are_case_insensitive(verb in proptest::sample::select(VERBS), mask in any::<u8>()) {
        let mixed: String = verb.chars().enumerate().map(|(i, c)| {
            if mask >> (i % 8) & 1 == 1 { c.to_ascii_lowercase() } else { c }
        }).collect();
        prop_assert_eq!(parse(format!("{mixed} arg").as_bytes()), parse(format!("{verb} arg").as_bytes()));
    }

    #[test]
    fn path_arguments_round_trip(raw in proptest::collection::vec(any::<u8>(), 1..200)) {
        prop_assume!(!args::trim(&raw).is_empty());
        let mut line = b"DELE ".to_vec();
        line.extend_from_slice(&raw);
        prop_assert_eq!(parse(&line), Ok(Command::Dele(PathArg::new(raw))));
    }

    #[test]
    fn port_round_trips(ip in any::<[u8; 4]>(), port in any::<u16>()) {
        let [hi, lo] = port.to_be_bytes();
        let line = format!("PORT {},{},{},{},{hi},{lo}", ip[0], ip[1], ip[2], ip[3]);
        prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Port(SocketAddrV4::new(ip.into(), port))));
    }

    #[test]
    fn eprt_round_trips(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>(), port in 1u16..,
                        delimiter in proptest::sample::select(&b"|!#$%&*+"[..])) {
        let d = char::from(delimiter);
        for addr in [SocketAddr::new(Ipv4Addr::from(v4).into(), port),
                     SocketAddr::new(Ipv6Addr::from(v6).into(), port)] {
            let proto = if addr.is_ipv4() { 1 } else { 2 };
            let line = format!("EPRT {d}{proto}{d}{}{d}{port}{d}", addr.ip());
            prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Eprt(addr)));
        }
    }

    #[test]
    fn rest_round_trips_up_to_the_largest_position(offset in any::<u64>()) {
        let parsed = parse(format!("REST {offset}").as_bytes());
        if offset <= wharf_vfs::offset::MAX_OFFSET {
            prop_assert_eq!(parsed, Ok(Command::Rest(offset)));
        } else {
            prop_assert_eq!(parsed, Err(ParseError::InvalidOffset { verb: "REST", offset }));
        }
    }

    #[test]
    fn ranges_never_wrap(first in any::<u64>(), last in any::<u64>()) {
        match parse(format!("RANG {first} {last}").as_bytes()) {
            Ok(Command::Rang(RangArg::Range(range))) => {
                prop_assert!(first <= last && last < wharf_vfs::offset::MAX_OFFSET);
                prop_assert_eq!((range.start(), range.last()), (first, last));
                prop_assert_eq!(u128::from(range.length()), u128::from(last - first) + 1);
            }
            Ok(Command::Rang(RangArg::Reset)) => prop_assert_eq!((first, last), (1, 0)),
            Ok(other) => prop_assert!(false, "parsed as {:?}", other),
            Err(refusal) => {
                prop_assert!(last < first || last >= wharf_vfs::offset::MAX_OFFSET);
                prop_assert_eq!(refusal.reply().code(), 501);
            }
        }
    }
}
