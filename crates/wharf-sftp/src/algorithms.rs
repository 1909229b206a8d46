//! The SSH algorithms offered: modern ones only, and strict key exchange.
//!
//! No SHA-1 (neither key exchange nor MAC nor `ssh-rsa` signatures), no CBC, no compression.
//! `kex-strict-s-v00@openssh.com` is advertised, so clients that support strict key exchange
//! (OpenSSH 9.6+, PuTTY 0.80+, libssh2 1.11.1+) are protected against the Terrapin prefix
//! truncation attack (CVE-2023-48795).

use std::borrow::Cow;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::{Preferred, cipher, compression, kex, mac};

use crate::config::HostKeyType;

/// Key exchanges, most preferred first.
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
    kex::DH_GEX_SHA256,
    kex::DH_G16_SHA512,
    kex::DH_G18_SHA512,
    kex::DH_G14_SHA256,
    // Pseudo-algorithms: we send EXT_INFO (rsa-sha2 user keys) and do strict kex.
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Ciphers: AEAD first, then CTR (with an encrypt-then-MAC or SHA-2 MAC) for older clients
/// such as libssh2 1.10, which has neither GCM nor ChaCha20.
const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// MACs for the CTR ciphers (AEAD ciphers need none).
const MACS: &[mac::Name] =
    &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM, mac::HMAC_SHA512, mac::HMAC_SHA256];

/// Compression costs CPU on every byte and rarely pays for itself on files.
const COMPRESSION: &[compression::Name] = &[compression::NONE];

/// The algorithm lists for a server holding host keys of `key_types`.
pub(crate) fn preferred(key_types: &[HostKeyType]) -> Preferred {
    let mut keys = Vec::new();
    for kind in key_types {
        match kind {
            HostKeyType::Ed25519 => keys.push(Algorithm::Ed25519),
            HostKeyType::EcdsaP256 => {
                keys.push(Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 });
            }
            HostKeyType::Rsa => {
                keys.push(Algorithm::Rsa { hash: Some(HashAlg::Sha512) });
                keys.push(Algorithm::Rsa { hash: Some(HashAlg::Sha256) });
            }
        }
    }
    Preferred {
        kex: Cow::Borrowed(KEX),
        key: Cow::Owned(keys),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Borrowed(CIPHERS),
        mac: Cow::Borrowed(MACS),
        compression: Cow::Borrowed(COMPRESSION),
    }
}

/// Whether a client's public key algorithm is acceptable for user authentication: `ssh-rsa`
/// means SHA-1 signatures, which are refused.
pub(crate) fn user_key_algorithm_allowed(algorithm: &Algorithm) -> bool {
    !matches!(algorithm, Algorithm::Rsa { hash: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(preferred: &Preferred) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        all.extend(preferred.kex.iter().map(|n| n.as_ref().to_owned()));
        all.extend(preferred.key.iter().map(|a| a.to_string()));
        all.extend(preferred.cipher.iter().map(|n| n.as_ref().to_owned()));
        all.extend(preferred.mac.iter().map(|n| n.as_ref().to_owned()));
        all
    }

    #[test]
    fn nothing_weak_is_offered() {
        let preferred =
            preferred(&[HostKeyType::Ed25519, HostKeyType::EcdsaP256, HostKeyType::Rsa]);
        for name in names(&preferred) {
            assert!(!name.contains("sha1"), "{name}");
            assert!(!name.contains("cbc"), "{name}");
            assert!(!name.contains("group1-"), "{name}");
            assert_ne!(name, "ssh-rsa", "SHA-1 RSA signatures");
            assert_ne!(name, "none");
        }
        assert!(preferred.kex.contains(&kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER));
        assert_eq!(preferred.compression.as_ref(), &[compression::NONE]);
    }

    #[test]
    fn host_key_algorithms_follow_the_keys() {
        let ed_only = preferred(&[HostKeyType::Ed25519]);
        assert_eq!(ed_only.key.as_ref(), &[Algorithm::Ed25519]);
        let rsa = preferred(&[HostKeyType::Rsa]);
        let rsa_names: Vec<String> = rsa.key.iter().map(|a| a.to_string()).collect();
        assert_eq!(rsa_names, ["rsa-sha2-512", "rsa-sha2-256"]);
    }

    #[test]
    fn sha1_rsa_user_signatures_are_refused() {
        assert!(!user_key_algorithm_allowed(&Algorithm::Rsa { hash: None }));
        assert!(user_key_algorithm_allowed(&Algorithm::Rsa { hash: Some(HashAlg::Sha256) }));
        assert!(user_key_algorithm_allowed(&Algorithm::Ed25519));
    }
}
