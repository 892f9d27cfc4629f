//! The fingerprint phrase of a sign-in approval: five words from the BIP-39 English list, from
//! SHA-256 of the new device's public key. The new device and the approving one each compute
//! it from the key they hold, and the owner compares the two screens; the server's copy is only
//! a convenience for listing.

use sha2::{Digest, Sha256};

const PHRASE_WORDS: usize = 5;

pub fn fingerprint_phrase(public_key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"udc fingerprint v1\0")
        .chain_update(public_key)
        .finalize();
    let words = bip39::Language::English.word_list();
    let bits = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    (0..PHRASE_WORDS)
        .map(|i| words[((bits >> (64 - 11 * (i + 1))) & 0x7ff) as usize])
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_words_that_follow_the_key() {
        let a = fingerprint_phrase(&[7u8; 32]);
        assert_eq!(a.split('-').count(), 5);
        assert_eq!(a, fingerprint_phrase(&[7u8; 32]));
        assert_ne!(a, fingerprint_phrase(&[8u8; 32]));
    }
}
