//! FTP replies: the one place reply lines are formatted.
//!
//! A reply is a three-digit code and one or more lines of text. A single line is written as
//! `213 text`; several lines as `213-first`, then each middle line indented by one space, then
//! `213 last` (RFC 959, section 4.2). Indenting every middle line means no line of text, such
//! as a listing line or a file name starting with digits, can be mistaken for the last line.
//! Text never carries CR or LF: those are replaced, so nothing a client controls (a path
//! echoed back) can forge a reply line.

use std::fmt;

/// Where a line sits in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinePosition {
    /// The only line: `code text`.
    Only,
    /// The first of several: `code-text`.
    First,
    /// A middle line: ` text`.
    Middle,
    /// The last of several: `code text`.
    Last,
}

/// Appends one reply line, terminated by CRLF, to `out`.
pub fn encode_line(out: &mut Vec<u8>, code: u16, position: LinePosition, text: &str) {
    match position {
        LinePosition::Only | LinePosition::Last => {
            out.extend_from_slice(format!("{code:03} ").as_bytes());
        }
        LinePosition::First => out.extend_from_slice(format!("{code:03}-").as_bytes()),
        LinePosition::Middle => out.push(b' '),
    }
    for &byte in text.as_bytes() {
        out.push(if byte == b'\r' || byte == b'\n' { b' ' } else { byte });
    }
    out.extend_from_slice(b"\r\n");
}

/// One reply of the server.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    /// Never empty.
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply { code, lines: vec![text.into()] }
    }

    /// A reply of several lines: `first`, the `middle` lines (indented by one space when
    /// written), and `last`.
    pub fn multiline(
        code: u16,
        first: impl Into<String>,
        middle: impl IntoIterator<Item = String>,
        last: impl Into<String>,
    ) -> Reply {
        let mut lines = vec![first.into()];
        lines.extend(middle);
        lines.push(last.into());
        Reply { code, lines }
    }

    /// The reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The lines of text, without codes.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Appends the wire form of the reply to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let count = self.lines.len();
        for (index, text) in self.lines.iter().enumerate() {
            let position = match (index, count) {
                (_, 1) => LinePosition::Only,
                (0, _) => LinePosition::First,
                (i, n) if i + 1 == n => LinePosition::Last,
                _ => LinePosition::Middle,
            };
            encode_line(out, self.code, position, text);
        }
    }

    /// The wire form of the reply.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 6).sum());
        self.encode(&mut out);
        out
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({} {:?})", self.code, self.lines)
    }
}

/// Quotes a path for a `257` reply: the path in double quotes, inner quotes doubled
/// (RFC 959, appendix II).
pub fn quote_path(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        String::from_utf8(reply.to_bytes()).expect("replies are UTF-8")
    }

    #[test]
    fn single_line() {
        assert_eq!(wire(&Reply::new(200, "Command okay.")), "200 Command okay.\r\n");
    }

    #[test]
    fn multiline_indents_middle_lines() {
        let reply = Reply::multiline(
            211,
            "Features:",
            ["UTF8".to_owned(), "213 looks like an end".to_owned()],
            "End",
        );
        assert_eq!(wire(&reply), "211-Features:\r\n UTF8\r\n 213 looks like an end\r\n211 End\r\n");
    }

    #[test]
    fn line_breaks_in_text_cannot_forge_lines() {
        let reply = Reply::new(550, "bad\r\n230 Logged in");
        assert_eq!(wire(&reply), "550 bad  230 Logged in\r\n");
    }

    #[test]
    fn quoting_doubles_inner_quotes() {
        assert_eq!(quote_path("/a \"b\""), "\"/a \"\"b\"\"\"");
    }
}
