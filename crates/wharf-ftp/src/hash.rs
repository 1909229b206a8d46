//! File hashes for the `HASH` command (draft-bryan-ftp-hash): a partner verifies a transfer
//! without downloading the file again.

use std::fmt::Write as _;

use sha1::Digest as _;

/// A hash algorithm the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256, the default.
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
    /// CRC-32 (IEEE), for clients that only want to catch transfer errors.
    Crc32,
}

impl HashAlgorithm {
    /// Every algorithm, in the order `FEAT` lists them.
    pub const ALL: [HashAlgorithm; 4] =
        [HashAlgorithm::Sha256, HashAlgorithm::Sha1, HashAlgorithm::Md5, HashAlgorithm::Crc32];

    /// The algorithm's name on the wire (`SHA-256`, `SHA-1`, `MD5`, `CRC32`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Crc32 => "CRC32",
        }
    }

    /// The algorithm called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL.into_iter().find(|alg| alg.name().eq_ignore_ascii_case(name))
    }

    /// A fresh hasher.
    pub fn hasher(self) -> FileHasher {
        match self {
            HashAlgorithm::Sha256 => FileHasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha1 => FileHasher::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Md5 => FileHasher::Md5(md5::Md5::new()),
            HashAlgorithm::Crc32 => FileHasher::Crc32(crc32fast::Hasher::new()),
        }
    }
}

/// A hash being computed.
#[derive(Debug, Clone)]
pub enum FileHasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// MD5.
    Md5(md5::Md5),
    /// CRC-32.
    Crc32(crc32fast::Hasher),
}

impl FileHasher {
    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            FileHasher::Sha256(h) => h.update(data),
            FileHasher::Sha1(h) => h.update(data),
            FileHasher::Md5(h) => h.update(data),
            FileHasher::Crc32(h) => h.update(data),
        }
    }

    /// The digest in lowercase hexadecimal (CRC-32 as eight digits, big-endian).
    pub fn finish_hex(self) -> String {
        match self {
            FileHasher::Sha256(h) => hex(&h.finalize()),
            FileHasher::Sha1(h) => hex(&h.finalize()),
            FileHasher::Md5(h) => hex(&h.finalize()),
            FileHasher::Crc32(h) => format!("{:08x}", h.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(alg: HashAlgorithm, parts: &[&[u8]]) -> String {
        let mut hasher = alg.hasher();
        for part in parts {
            hasher.update(part);
        }
        hasher.finish_hex()
    }

    #[test]
    fn known_digests_of_abc() {
        let abc: &[&[u8]] = &[b"a", b"bc"];
        assert_eq!(
            digest(HashAlgorithm::Sha256, abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest(HashAlgorithm::Sha1, abc), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(digest(HashAlgorithm::Md5, abc), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(digest(HashAlgorithm::Crc32, abc), "352441c2");
    }

    #[test]
    fn names_round_trip_case_insensitively() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::from_name(&alg.name().to_lowercase()), Some(alg));
        }
        assert_eq!(HashAlgorithm::from_name("SHA-512"), None);
    }
}
