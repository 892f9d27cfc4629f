//! The recovery code: twelve words from the BIP-39 English list (128 random bits and a 4-bit
//! checksum: a word not on the list is named, and two swapped words or a wrong word that is on
//! the list are caught 15 times in 16 before anything is sent; the server refuses the rest).
//! The owner writes it down when the account is made, or makes a new one later. From it come a
//! proof the server keeps only as a keyed hash (like the password's) and a key that wraps the
//! account key, so the code resets the password and keeps the data. Without it and without the
//! password, nothing the account sealed can be opened by anyone. 128 random bits need no slow
//! KDF: HKDF suffices.

use anyhow::{anyhow, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bip39::{Language, Mnemonic};
use hkdf::Hkdf;
use sha2::Sha256;

const ENTROPY: usize = 16;
pub const WORDS: usize = 12;

pub struct RecoveryCode([u8; ENTROPY]);

/// Never prints the code itself.
impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode { .. }")
    }
}

impl RecoveryCode {
    pub fn generate() -> Result<RecoveryCode> {
        let mut entropy = [0u8; ENTROPY];
        getrandom::fill(&mut entropy).map_err(|e| anyhow!("no randomness: {e}"))?;
        Ok(RecoveryCode(entropy))
    }

    /// The code as a person typed it: words in any case, separated by spaces, dashes, commas
    /// or line breaks; numbers in front of words (as a printed list has them) are ignored.
    pub fn parse(text: &str) -> Result<RecoveryCode> {
        let words: Vec<String> = text
            .split(|c: char| c.is_whitespace() || c == '-' || c == ',')
            .map(|w| w.trim_end_matches('.').to_lowercase())
            .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
            .collect();
        if words.len() != WORDS {
            return Err(anyhow!(
                "a recovery code is {WORDS} words; this has {}",
                words.len()
            ));
        }
        let mnemonic = Mnemonic::parse_in_normalized(Language::English, &words.join(" ")).map_err(
            |e| match e {
                bip39::Error::UnknownWord(i) => anyhow!(
                    "word {} ({:?}) is not a recovery code word: check its spelling",
                    i + 1,
                    words.get(i).map(String::as_str).unwrap_or("")
                ),
                bip39::Error::InvalidChecksum => anyhow!(
                    "these words are not a recovery code: one is mistyped, or two are swapped"
                ),
                other => anyhow!("not a recovery code: {other}"),
            },
        )?;
        let (entropy, len) = mnemonic.to_entropy_array();
        <[u8; ENTROPY]>::try_from(&entropy[..len])
            .map(RecoveryCode)
            .map_err(|_| anyhow!("a recovery code is {WORDS} words"))
    }

    /// The twelve words, separated by single spaces.
    pub fn words(&self) -> Result<String> {
        let mnemonic = Mnemonic::from_entropy_in(Language::English, &self.0)
            .map_err(|e| anyhow!("recovery code: {e}"))?;
        Ok(mnemonic.words().collect::<Vec<_>>().join(" "))
    }

    /// The proof sent to the server (base64 of 32 bytes; it keeps a keyed hash) and the key
    /// that wraps the account key (never sent).
    pub fn keys(&self) -> Result<RecoveryKeys> {
        let hk = Hkdf::<Sha256>::new(Some(b"udc recovery code v1"), &self.0);
        let mut keys = RecoveryKeys {
            auth_key: [0; 32],
            wrap_key: [0; 32],
        };
        hk.expand(b"udc recovery auth key v1", &mut keys.auth_key)
            .and_then(|_| hk.expand(b"udc recovery wrap key v1", &mut keys.wrap_key))
            .map_err(|e| anyhow!("hkdf: {e}"))?;
        Ok(keys)
    }
}

pub struct RecoveryKeys {
    pub auth_key: [u8; 32],
    pub wrap_key: [u8; 32],
}

/// Never prints the keys themselves.
impl std::fmt::Debug for RecoveryKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKeys { .. }")
    }
}

impl RecoveryKeys {
    pub fn auth_key_b64(&self) -> String {
        B64.encode(self.auth_key)
    }

    /// What the server keeps for this code: `{auth_key, wrapped_key}` (the account key
    /// wrapped by the code's key), as `POST /auth/register` and `PUT /account/recovery` take it.
    pub fn for_server(&self, account_key: &[u8; 32]) -> Result<crate::wire::Recovery> {
        Ok(crate::wire::Recovery {
            auth_key: self.auth_key_b64(),
            wrapped_key: crate::seal::wrap_account_key(&self.wrap_key, account_key)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_read_back_to_the_same_code_and_a_typo_is_caught() {
        let code = RecoveryCode::generate().unwrap();
        let words = code.words().unwrap();
        assert_eq!(words.split(' ').count(), WORDS);
        let numbered: String = words
            .split(' ')
            .enumerate()
            .map(|(i, w)| format!("{}. {}\n", i + 1, w.to_uppercase()))
            .collect();
        for typed in [words.clone(), words.replace(' ', "-"), numbered] {
            let back = RecoveryCode::parse(&typed).unwrap();
            assert_eq!(back.0, code.0, "{typed}");
            assert_eq!(back.keys().unwrap().auth_key, code.keys().unwrap().auth_key);
        }
        let mut list: Vec<&str> = words.split(' ').collect();
        let err = RecoveryCode::parse(&words.replacen(' ', " zzzz ", 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("13"), "{err}");
        list[3] = "notaword";
        list.swap(0, 1);
        let err = RecoveryCode::parse(&list.join(" "))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("word 4"), "{err}");
    }

    /// The checksum is 4 bits: a swap of two words (or a wrong word that is on the list) is
    /// caught 15 times in 16, and never reads back as the code. Fixed codes, so this cannot
    /// pass or fail by chance (a random code failed it one run in sixteen).
    #[test]
    fn two_swapped_words_are_caught_by_the_checksum_15_times_in_16() {
        let mut caught = 0;
        for seed in 0u8..=255 {
            let code = RecoveryCode(std::array::from_fn(|i| {
                seed.wrapping_mul(31)
                    .wrapping_add((i as u8).wrapping_mul(97))
            }));
            let words = code.words().unwrap();
            let mut list: Vec<&str> = words.split(' ').collect();
            assert_ne!(list[0], list[1], "seed {seed}");
            list.swap(0, 1);
            match RecoveryCode::parse(&list.join(" ")) {
                Err(e) => {
                    assert!(e.to_string().contains("swapped"), "{e}");
                    caught += 1;
                }
                Ok(other) => assert_ne!(other.0, code.0, "seed {seed}"),
            }
        }
        assert!((224..=252).contains(&caught), "{caught} of 256 caught");
    }

    #[test]
    fn the_code_wraps_the_account_key_apart_from_the_password() {
        let code = RecoveryCode::generate().unwrap();
        let keys = code.keys().unwrap();
        assert_ne!(keys.auth_key, keys.wrap_key);
        let kept = keys.for_server(&[5u8; 32]).unwrap();
        assert_eq!(
            crate::seal::unwrap_account_key(&keys.wrap_key, Some(&kept.wrapped_key)).unwrap(),
            [5u8; 32]
        );
        let other = RecoveryCode::generate().unwrap().keys().unwrap();
        assert!(crate::seal::unwrap_account_key(&other.wrap_key, Some(&kept.wrapped_key)).is_err());
    }
}
