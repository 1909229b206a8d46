//! Byte sizes in configuration: a plain number of bytes, or a number with a binary unit
//! (`512KiB`, `10 MiB`, `2GiB`, `1TiB`; `K`, `M`, `G`, `T` and `KB`... mean the same).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A number of bytes read from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a size (write bytes, or a number with KiB, MiB, GiB or TiB)")]
pub struct SizeError(String);

impl std::str::FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let split =
            trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number.parse().map_err(|_| SizeError(text.to_owned()))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(SizeError(text.to_owned())),
        };
        let bytes = number * factor as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(SizeError(text.to_owned()));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u64),
            Text(String),
        }
        match Form::deserialize(deserializer)? {
            Form::Number(n) => Ok(ByteSize(n)),
            Form::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1234", 1234),
            ("512KiB", 512 * 1024),
            ("10 MiB", 10 << 20),
            ("1.5G", 3 << 29),
            ("2gb", 2 << 30),
            ("1TiB", 1 << 40),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        for bad in ["", "ten", "5 parsecs", "-1", "1e999"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        assert_eq!(serde_yaml::from_str::<ByteSize>("4096").expect("n"), ByteSize(4096));
        assert_eq!(serde_yaml::from_str::<ByteSize>("4KiB").expect("s"), ByteSize(4096));
    }
}
