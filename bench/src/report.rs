//! The table on stdout (Markdown, so it pastes into docs/BENCHMARKS.md as is) and the JSON
//! record of a run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::cli::Sizes;
use crate::machine::Machine;
use crate::results::{Figure, Row, Target, Verdict};
use crate::stats::Summary;

/// A number as the table shows it: thousands separated, one decimal below 100.
pub fn format_number(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 { format!("-{grouped}") } else { grouped }
}

/// CPU seconds as the table shows them: two decimals below 10 s, else as [`format_number`].
fn format_seconds(seconds: f64) -> String {
    if seconds.abs() < 10.0 { format!("{seconds:.2}") } else { format_number(seconds) }
}

/// `median (min–max)`, or the one value of a single run.
fn summary_cell(summary: Summary, format: fn(f64) -> String) -> String {
    if summary.runs == 1 {
        return format(summary.median);
    }
    format!("{} ({}–{})", format(summary.median), format(summary.min), format(summary.max))
}

/// The server's CPU seconds of a side, or `–` where the row has none.
fn cpu_cell(figure: &Figure) -> String {
    figure.cpu_seconds().map_or_else(|| "–".to_owned(), |cpu| summary_cell(cpu, format_seconds))
}

fn figure_cell(figure: &Figure) -> String {
    match figure {
        Figure::Measured { summary, .. } => summary_cell(*summary, format_number),
        Figure::Unavailable { why: crate::endpoint::Unavailable::NotServed(_) } => {
            "not served".to_owned()
        }
        Figure::Unavailable { why: crate::endpoint::Unavailable::NotInstalled(_) } => {
            "not installed".to_owned()
        }
        Figure::Unavailable { .. } => "unavailable".to_owned(),
        Figure::Failed { .. } => "FAILED".to_owned(),
    }
}

fn target_cell(row: &Row) -> String {
    let Some(target) = row.target else { return String::new() };
    let label = match target {
        Target::RatioAtLeast(_) => target.label(),
        Target::WharfAtMost(_) => format!("{} {}", target.label(), row.unit.label()),
    };
    match row.verdict {
        Some(Verdict::Met) => format!("{label} met"),
        Some(Verdict::Parity) => format!("{label} parity"),
        Some(Verdict::Missed) => format!("{label} MISSED"),
        None => label,
    }
}

/// Wharf/peer, marked as parity when the two sides' ranges overlap.
fn ratio_cell(row: &Row) -> String {
    match (row.ratio, row.parity) {
        (Some(ratio), Some(true)) => format!("{ratio:.2}x parity"),
        (Some(ratio), _) => format!("{ratio:.2}x"),
        (None, _) => "–".to_owned(),
    }
}

/// The rows as a Markdown table with aligned columns.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "row",
        "unit",
        "peer",
        "peer: median (min–max)",
        "peer CPU s",
        "Wharf: median (min–max)",
        "Wharf CPU s",
        "Wharf/peer",
        "target",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for row in rows {
        lines.push(vec![
            row.title.clone(),
            row.unit.label().to_owned(),
            row.peer_name.clone(),
            figure_cell(&row.peer),
            cpu_cell(&row.peer),
            figure_cell(&row.wharf),
            cpu_cell(&row.wharf),
            ratio_cell(row),
            target_cell(row),
        ]);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
        .collect();
    let render = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = render(&lines[0]);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&render(&rule));
    for line in &lines[1..] {
        out.push_str(&render(line));
    }
    out
}

/// Why figures are missing, one line per distinct reason.
pub fn notes(rows: &[Row]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for row in rows {
        for (side, figure) in [(row.peer_name.as_str(), &row.peer), ("Wharf", &row.wharf)] {
            let note = match figure {
                Figure::Unavailable { why } => format!("{} {side}: {why}", row.protocol),
                Figure::Failed { error, .. } => {
                    // One line per note, so the list under the table stays a list.
                    let error = error.lines().map(str::trim).collect::<Vec<_>>().join(" | ");
                    format!("{} ({side}) failed: {error}", row.title)
                }
                Figure::Measured { .. } => continue,
            };
            if !seen.contains(&note) {
                seen.push(note);
            }
        }
    }
    seen.iter().map(|n| format!("- {n}\n")).collect()
}

/// Everything a run produced, as written to the JSON file.
#[derive(Debug, serde::Serialize)]
pub struct RunRecord<'a> {
    /// When the run started (UTC, ISO 8601).
    pub started: String,
    /// The command line.
    pub command: Vec<String>,
    /// Measurements per figure.
    pub runs: usize,
    /// Sizes used.
    pub sizes: &'a Sizes,
    /// The machine.
    pub machine: &'a Machine,
    /// Wharf's listeners (from its banner) in the main lineup.
    pub wharf_listeners: Vec<String>,
    /// The key types both sides use.
    pub keys: KeyTypes,
    /// The rows.
    pub rows: &'a [Row],
}

/// The key types of a run: the same on every server of every row.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct KeyTypes {
    /// The FTPS certificate's key, one certificate for both servers.
    pub ftps_certificate: &'static str,
    /// The SSH host key algorithm the clients accept.
    pub ssh_host_key: &'static str,
}

impl KeyTypes {
    /// This bench's.
    pub const BENCH: KeyTypes = KeyTypes {
        ftps_certificate: crate::credentials::TLS_KEY_TYPE,
        ssh_host_key: crate::credentials::SSH_HOST_KEY_TYPE,
    };

    /// One line for under the table.
    pub fn line(self) -> String {
        format!(
            "keys, the same on every server: FTPS certificate {}, SSH host key {}",
            self.ftps_certificate, self.ssh_host_key
        )
    }
}

/// Writes `record` to `dir/<timestamp>.json`; returns the path.
pub fn write_json(dir: &Path, stamp: &str, record: &RunRecord<'_>) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{stamp}.json"));
    let text = serde_json::to_string_pretty(record)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// UTC date and time of `seconds` since the epoch: (year, month, day, hour, minute, second).
fn civil(seconds: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Days to a proleptic Gregorian date, counting in 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day, (rest / 3600) as u32, (rest % 3600 / 60) as u32, (rest % 60) as u32)
}

/// Now, as `(file-name stamp, ISO 8601)`, e.g. `("20250101T120000Z", "2025-01-01T12:00:00Z")`.
pub fn now_stamps() -> (String, String) {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi, s) = civil(seconds);
    (
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{Side, Unavailable};
    use crate::results::{ComparedPeer, RowHead, Sample, Unit};

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(format_number(1_834.4), "1,834");
        assert_eq!(format_number(123_456_789.0), "123,456,789");
        assert_eq!(format_number(999.6), "1,000");
        assert_eq!(format_number(9.04), "9.0");
        assert_eq!(format_number(100.0), "100");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_735_732_800 + 3_661), (2025, 1, 1, 13, 1, 1));
    }

    fn head(target: Option<Target>, unit: Unit) -> RowHead {
        RowHead {
            id: "ftp.download".into(),
            protocol: "FTP",
            title: "FTP download".into(),
            unit,
            target,
        }
    }

    fn vsftpd() -> ComparedPeer {
        ComparedPeer { side: Side::Peer, name: "vsftpd 3.0.3".into() }
    }

    /// A side's runs: each value with the server's CPU seconds (`None`: not measured).
    fn measured(runs: &[(f64, Option<f64>)]) -> Figure {
        let runs = runs.iter().map(|&(value, server_cpu)| Sample { value, server_cpu }).collect();
        Figure::from_runs(runs, None)
    }

    fn speed_row(peer: &[(f64, Option<f64>)], wharf: &[(f64, Option<f64>)]) -> Row {
        Row::new(
            &head(Some(Target::RatioAtLeast(1.0)), Unit::MegabytesPerSecond),
            &vsftpd(),
            measured(peer),
            measured(wharf),
            vec![],
        )
    }

    /// The table's cells of `row`, by column.
    fn cells(row: Row) -> Vec<String> {
        let text = table(&[row]);
        let line = text.lines().nth(2).expect("one row").to_owned();
        line.trim_matches('|').split(" | ").map(|cell| cell.trim().to_owned()).collect()
    }

    #[test]
    fn a_row_shows_both_sides_with_cpu_ratio_and_target() {
        let row = speed_row(
            &[(1_000.0, Some(2.5)), (1_100.0, Some(2.25)), (900.0, Some(2.75))],
            &[(1_500.0, Some(1.5)), (1_400.0, Some(1.25)), (1_600.0, Some(1.75))],
        );
        assert_eq!(row.ratio, Some(1.5));
        assert_eq!((row.parity, row.verdict), (Some(false), Some(Verdict::Met)));
        let text = table(std::slice::from_ref(&row));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(
            header[3..7],
            ["peer: median (min–max)", "peer CPU s", "Wharf: median (min–max)", "Wharf CPU s"]
        );
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "aligned: {text}");
        let cells = cells(row);
        assert_eq!(
            cells[3..],
            [
                "1,000 (900–1,100)",
                "2.50 (2.25–2.75)",
                "1,500 (1,400–1,600)",
                "1.50 (1.25–1.75)",
                "1.50x",
                ">= 1.0x met"
            ]
        );
    }

    #[test]
    fn overlapping_ranges_are_parity_whichever_median_leads() {
        // Wharf's median is ahead, but its slowest run is slower than the peer's fastest.
        let ahead = speed_row(
            &[(700.0, None), (760.0, None), (840.0, None)],
            &[(640.0, None), (760.0, None), (800.0, None)],
        );
        assert_eq!((ahead.parity, ahead.verdict), (Some(true), Some(Verdict::Parity)));
        let behind = speed_row(
            &[(760.0, None), (770.0, None), (780.0, None)],
            &[(700.0, None), (757.0, None), (765.0, None)],
        );
        assert_eq!(behind.verdict, Some(Verdict::Parity));
        let cells = cells(behind);
        assert_eq!(cells[7..], ["0.98x parity", ">= 1.0x parity"]);
        // Apart, and behind: missed.
        let missed = speed_row(&[(900.0, None), (950.0, None)], &[(700.0, None), (800.0, None)]);
        assert_eq!((missed.parity, missed.verdict), (Some(false), Some(Verdict::Missed)));
        assert_eq!(cells_of_target(missed), ">= 1.0x MISSED");
        // One run each: ranges are points, apart unless equal.
        let single = speed_row(&[(900.0, None)], &[(901.0, None)]);
        assert_eq!(single.verdict, Some(Verdict::Met));
    }

    fn cells_of_target(row: Row) -> String {
        cells(row).pop().expect("target cell")
    }

    #[test]
    fn cpu_is_shown_only_when_every_run_has_it() {
        let row = speed_row(&[(900.0, Some(1.0)), (950.0, None)], &[(1_200.0, Some(12.345))]);
        assert_eq!(row.peer.cpu_seconds(), None, "one run without CPU: no CPU figure");
        let cells = cells(row);
        assert_eq!((cells[4].as_str(), cells[6].as_str()), ("–", "12.3"));
    }

    #[test]
    fn a_side_not_served_has_no_ratio_and_a_note() {
        let row = Row::new(
            &head(Some(Target::WharfAtMost(64.0)), Unit::KibPerSession),
            &vsftpd(),
            measured(&[(300.0, None)]),
            Figure::Unavailable { why: Unavailable::NotServed("no `ftp:` section".into()) },
            vec![],
        );
        assert_eq!((row.ratio, row.parity, row.verdict), (None, None, None));
        let text = table(std::slice::from_ref(&row));
        assert!(text.contains("not served") && text.contains("<= 64 KiB/session"), "{text}");
        assert!(notes(&[row]).contains("FTP Wharf: not served: no `ftp:` section"));
    }

    #[test]
    fn a_peer_not_installed_says_so_and_how_to_get_it() {
        let unftp = ComparedPeer { side: Side::Unftp, name: "unFTP".into() };
        let row = Row::new(
            &head(Some(Target::RatioAtLeast(1.0)), Unit::MegabytesPerSecond),
            &unftp,
            Figure::Unavailable { why: Unavailable::NotInstalled("cargo install unftp".into()) },
            measured(&[(900.0, Some(1.0))]),
            vec![],
        );
        assert_eq!(row.id, "ftp.download.unftp");
        let cells = cells(row.clone());
        assert_eq!((cells[2].as_str(), cells[3].as_str()), ("unFTP", "not installed"));
        assert!(notes(&[row]).contains("FTP unFTP: not installed: cargo install unftp"));
    }

    #[test]
    fn a_failure_note_is_one_line() {
        let failed =
            Figure::Failed { error: "list failed:\ncurl: (13) bad".into(), samples: vec![] };
        let row = Row::new(
            &head(Some(Target::RatioAtLeast(1.0)), Unit::FilesPerSecond),
            &vsftpd(),
            measured(&[(900.0, None)]),
            failed,
            vec![],
        );
        let notes = notes(&[row]);
        assert_eq!(notes.lines().count(), 1, "{notes}");
        assert!(notes.contains("(Wharf) failed: list failed: | curl: (13) bad"), "{notes}");
    }
}
