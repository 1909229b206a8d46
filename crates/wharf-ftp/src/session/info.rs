//! Informational commands and transfer parameters: `STAT` (server form), `HELP`, `FEAT`,
//! `OPTS`, `TYPE`, `MODE`, `STRU`, `REST`, `RANG`.

use super::{DataType, FtpSession, LoginState};
use crate::command::{
    FileStructure, FormControl, OptsArg, RangArg, TransferType, TransmissionMode, VERBS,
};
use crate::hash::HashAlgorithm;
use crate::listing::{MlstFact, feat_mlst_line};
use crate::reply::Reply;

impl FtpSession {
    /// `STAT` without argument: the session's state (also during a transfer).
    pub(super) fn server_status(&self) -> Reply {
        let mut lines = vec![format!("Connected from {}", self.peer)];
        lines.push(match &self.login {
            LoginState::LoggedIn(user) => format!("Logged in as {}", user.session.user_name()),
            LoginState::AwaitingPassword { .. } => "Waiting for the password".to_owned(),
            LoginState::AwaitingUser => "Not logged in".to_owned(),
        });
        let data_type = match self.settings.data_type {
            DataType::Ascii => "ASCII",
            DataType::Binary => "BINARY",
        };
        lines.push(format!("TYPE: {data_type}, MODE: Stream, STRUcture: File"));
        lines.push(format!(
            "Control connection: {}; data connections: {}",
            if self.tls.control_secure() { "TLS" } else { "plain" },
            if self.tls.protect_data { "TLS (PROT P)" } else { "plain (PROT C)" }
        ));
        match (&self.transfer, &self.data) {
            (Some(transfer), _) => lines.push(format!(
                "Transfer in progress: {}, {} bytes so far",
                transfer.description,
                transfer.progress.bytes()
            )),
            (None, Some(setup)) => lines.push(format!("Data connection: {}", setup.describe())),
            (None, None) => lines.push("No data connection".to_owned()),
        }
        Reply::multiline(211, "Wharf FTP server status:", lines, "End of status.")
    }

    pub(super) fn help(&self, topic: Option<String>) -> Reply {
        match topic {
            Some(topic) => {
                let verb = topic.to_ascii_uppercase();
                if VERBS.contains(&verb.as_str()) {
                    Reply::new(214, format!("{verb} is supported."))
                } else {
                    Reply::new(502, format!("Unknown command {verb}."))
                }
            }
            None => {
                let rows = VERBS.chunks(10).map(|row| row.join(" "));
                Reply::multiline(214, "The following commands are recognized:", rows, "Help OK.")
            }
        }
    }

    /// `FEAT` (RFC 2389): the extensions, one per line.
    pub(super) fn features(&self) -> Reply {
        let mut features: Vec<String> = Vec::new();
        if self.context.tls.is_some() {
            features.extend(["AUTH TLS", "PBSZ", "PROT"].map(str::to_owned));
        }
        features.extend(
            ["EPRT", "EPSV", "MDTM", "MFMT", "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8"]
                .map(str::to_owned),
        );
        features.push(feat_mlst_line(&self.settings.mlst_facts));
        let hashes: Vec<String> = HashAlgorithm::ALL
            .iter()
            .map(|alg| {
                let mark = if *alg == self.settings.hash { "*" } else { "" };
                format!("{}{mark}", alg.name())
            })
            .collect();
        features.push(format!("HASH {}", hashes.join(";")));
        features.push("RANG STREAM".to_owned());
        Reply::multiline(211, "Features:", features, "End")
    }

    pub(super) fn opts(&mut self, option: OptsArg) -> Reply {
        match option {
            OptsArg::Utf8(true) => Reply::new(200, "UTF8 mode is always on."),
            OptsArg::Utf8(false) => Reply::new(504, "UTF8 cannot be turned off."),
            OptsArg::Mlst(facts) => {
                self.settings.mlst_facts =
                    MlstFact::ALL.into_iter().filter(|fact| facts.contains(fact)).collect();
                let names: String =
                    self.settings.mlst_facts.iter().map(|f| format!("{};", f.name())).collect();
                Reply::new(200, format!("MLST OPTS {names}"))
            }
            OptsArg::Hash(None) => Reply::new(200, self.settings.hash.name()),
            OptsArg::Hash(Some(algorithm)) => {
                self.settings.hash = algorithm;
                Reply::new(200, algorithm.name())
            }
        }
    }

    pub(super) fn set_type(&mut self, kind: TransferType) -> Reply {
        match kind {
            TransferType::Ascii(FormControl::NonPrint) => {
                self.settings.data_type = DataType::Ascii;
                Reply::new(200, "Switching to ASCII mode.")
            }
            TransferType::Image | TransferType::Local(8) => {
                self.settings.data_type = DataType::Binary;
                Reply::new(200, "Switching to Binary mode.")
            }
            TransferType::Ascii(_) | TransferType::Ebcdic(_) | TransferType::Local(_) => {
                Reply::new(504, "Only TYPE A (N), I and L 8 are supported.")
            }
        }
    }

    pub(super) fn set_mode(&self, mode: TransmissionMode) -> Reply {
        match mode {
            TransmissionMode::Stream => Reply::new(200, "Mode set to S."),
            TransmissionMode::Block | TransmissionMode::Compressed => {
                Reply::new(504, "Only MODE S is supported.")
            }
        }
    }

    pub(super) fn set_structure(&self, structure: FileStructure) -> Reply {
        match structure {
            FileStructure::File => Reply::new(200, "Structure set to F."),
            FileStructure::Record | FileStructure::Page => {
                Reply::new(504, "Only STRU F is supported.")
            }
        }
    }

    pub(super) fn rest(&mut self, offset: u64) -> Reply {
        self.pending.restart = Some(offset);
        self.pending.range = None;
        Reply::new(350, format!("Restarting at {offset}. Send RETR or STOR to start the transfer."))
    }

    pub(super) fn rang(&mut self, range: RangArg) -> Reply {
        match range {
            RangArg::Reset => {
                self.pending.range = None;
                Reply::new(350, "Byte range reset.")
            }
            RangArg::Range(range) => {
                self.pending.range = Some(range);
                self.pending.restart = None;
                let (start, last) = (range.start(), range.last());
                Reply::new(350, format!("Restarting at {start}. End byte range at {last}."))
            }
        }
    }
}
