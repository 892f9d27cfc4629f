//! XChaCha20-Poly1305 for file parts: the bytes that are megabytes, so its speed is a file
//! transfer's. Natively it runs as XChaCha20 is defined (HChaCha20 turns the key and the
//! nonce's first 16 bytes into a subkey; ChaCha20-Poly1305 seals under it with the nonce's
//! last 8 bytes), the second step by ring, whose ChaCha20-Poly1305 is assembly and twice
//! RustCrypto's speed on this project's machines (`scripts/bench.sh`, files). In the browser
//! RustCrypto does it all. Both give the same bytes (tested below), so either opens the other's.

use anyhow::{anyhow, Result};

pub const NONCE: usize = 24;
pub const TAG: usize = 16;

/// One file's part key.
pub struct PartCipher {
    key: [u8; 32],
}

impl PartCipher {
    pub fn new(key: [u8; 32]) -> PartCipher {
        PartCipher { key }
    }

    /// Seals `body` in place under `nonce` and `ad`; returns the tag.
    pub fn seal(&self, nonce: &[u8; NONCE], ad: &[u8], body: &mut [u8]) -> Result<[u8; TAG]> {
        imp::seal(&self.key, nonce, ad, body).ok_or_else(|| anyhow!("sealing failed"))
    }

    /// Opens `body` in place if `tag` proves it is what was sealed under `nonce` and `ad`.
    pub fn open(&self, nonce: &[u8; NONCE], ad: &[u8], body: &mut [u8], tag: &[u8; TAG]) -> bool {
        imp::open(&self.key, nonce, ad, body, tag)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{NONCE, TAG};
    use chacha20::cipher::consts::U10;
    use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

    /// The IETF ChaCha20-Poly1305 key and nonce that XChaCha20-Poly1305 under `nonce` is.
    fn ietf(key: &[u8; 32], nonce: &[u8; NONCE]) -> Option<(LessSafeKey, Nonce)> {
        let (head, tail) = nonce.split_at(16);
        let head: &[u8; 16] = head.try_into().ok()?;
        // Ten double rounds: HChaCha20.
        let subkey = chacha20::hchacha::<U10>(key.into(), head.into());
        let mut short = [0u8; 12];
        short[4..].copy_from_slice(tail);
        let key = UnboundKey::new(&CHACHA20_POLY1305, &subkey).ok()?;
        Some((LessSafeKey::new(key), Nonce::assume_unique_for_key(short)))
    }

    pub fn seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; TAG]> {
        let (key, nonce) = ietf(key, nonce)?;
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(ad), body)
            .ok()?;
        tag.as_ref().try_into().ok()
    }

    pub fn open(
        key: &[u8; 32],
        nonce: &[u8; NONCE],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; TAG],
    ) -> bool {
        let Some((key, nonce)) = ietf(key, nonce) else {
            return false;
        };
        key.open_in_place_separate_tag(nonce, Aad::from(ad), Tag::from(*tag), body, 0..)
            .is_ok()
    }
}

#[cfg(any(target_arch = "wasm32", test))]
mod rustcrypto {
    use super::{NONCE, TAG};
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

    pub fn seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; TAG]> {
        let tag = XChaCha20Poly1305::new(key.into())
            .encrypt_in_place_detached(XNonce::from_slice(nonce), ad, body)
            .ok()?;
        Some(tag.into())
    }

    pub fn open(
        key: &[u8; 32],
        nonce: &[u8; NONCE],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; TAG],
    ) -> bool {
        XChaCha20Poly1305::new(key.into())
            .decrypt_in_place_detached(XNonce::from_slice(nonce), ad, body, Tag::from_slice(tag))
            .is_ok()
    }
}

#[cfg(target_arch = "wasm32")]
use rustcrypto as imp;

#[cfg(test)]
mod tests {
    use super::*;

    /// What one build seals, the other opens, byte for byte: the agent (ring) and the browser
    /// (RustCrypto) share every file.
    #[test]
    fn ring_and_rustcrypto_seal_the_same_bytes() {
        let key = [0x5au8; 32];
        for len in [0usize, 1, 63, 64, 65, 1000, 65_537] {
            let nonce: [u8; NONCE] = std::array::from_fn(|i| (i * 7 + len) as u8);
            let plain: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let (mut ours, mut theirs) = (plain.clone(), plain.clone());
            let tag = imp::seal(&key, &nonce, b"ad", &mut ours).unwrap();
            let their_tag = rustcrypto::seal(&key, &nonce, b"ad", &mut theirs).unwrap();
            assert_eq!((&ours, tag), (&theirs, their_tag), "{len} bytes");
            assert!(rustcrypto::open(&key, &nonce, b"ad", &mut ours, &tag));
            assert!(imp::open(&key, &nonce, b"ad", &mut theirs, &tag));
            assert_eq!((ours, theirs), (plain.clone(), plain));
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The XChaCha20-Poly1305 draft's own example (draft-arciszewski-xchacha-03, A.3.1): so
    /// both builds are checked against the construction, not only against each other.
    #[test]
    fn both_builds_give_the_drafts_example() {
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce: [u8; NONCE] = std::array::from_fn(|i| 0x40 + i as u8);
        let ad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one \
                      tip for the future, sunscreen would be it.";
        let sealed = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa644\
                      0bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e\
                      3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e";
        let tag = "c0875924c1c7987947deafd8780acf49";
        for seal in [imp::seal, rustcrypto::seal] {
            let mut body = plain.to_vec();
            let got = seal(&key, &nonce, &ad, &mut body).unwrap();
            assert_eq!((hex(&body), hex(&got)), (sealed.to_owned(), tag.to_owned()));
        }
    }

    #[test]
    fn a_changed_byte_tag_or_ad_does_not_open() {
        let c = PartCipher::new([1; 32]);
        let nonce = [2; NONCE];
        let mut body = b"part".to_vec();
        let tag = c.seal(&nonce, b"ad", &mut body).unwrap();
        let mut flipped = body.clone();
        flipped[0] ^= 1;
        assert!(!c.open(&nonce, b"ad", &mut flipped, &tag));
        let mut bad_tag = tag;
        bad_tag[15] ^= 1;
        assert!(!c.open(&nonce, b"ad", &mut body.clone(), &bad_tag));
        assert!(!c.open(&nonce, b"da", &mut body.clone(), &tag));
        assert!(c.open(&nonce, b"ad", &mut body, &tag));
        assert_eq!(body, b"part");
    }
}
