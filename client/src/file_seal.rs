//! Files sealed before they leave the device. The store and the server see sizes and times
//! only: the name, media type and SHA-256 travel inside `sealed` (the file's description,
//! padded to a multiple of 256 bytes and sealed with a key from the account key), and every
//! part is sealed on its own.
//!
//! Parts are sealed deterministically, so a part sent again (a resumed upload) is byte-identical
//! to the first: each file gets its own key, derived from the account key and the file's
//! SHA-256, size and part size, and each part's nonce is a keyed hash of its number and its
//! bytes (a synthetic nonce, sent in front of the part). So one key never seals two different
//! texts under one nonce, even when a file changes between its hashing and its sending. The
//! associated data names the part and the part count, so parts cannot be reordered, dropped
//! from the end or moved to another file.
//!
//! Dedupe keeps working without telling the operator anything: the server matches uploads on
//! a content id that only the account's devices can compute (a keyed hash of the SHA-256, size
//! and part size), never on the plain SHA-256, which would let an operator confirm that an
//! account holds a known file. What sealing cannot hide: sizes, times, which device sent what
//! to whom, and that two uploads of one device hold the same bytes (the content id). A server
//! could also hand a device another file of the same account under a file's id, or a file in
//! the clear (sent before sealing): the receivers show which files were not sealed.

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::part_cipher::{PartCipher, NONCE, TAG};

/// What sealing adds to each part: its 24-byte nonce and 16-byte Poly1305 tag.
pub const PART_OVERHEAD: u64 = 40;
/// A description is padded to a multiple of this before it is sealed, so its length says
/// little about the name's.
const DESCRIPTION_BLOCK: usize = 256;
const MIB: u64 = 1024 * 1024;
/// The plain bytes in every part but the last, unless the file needs more than `MAX_PARTS`.
pub const DEFAULT_PLAIN_PART: u64 = 8 * MIB;
const META_AD: &[u8] = b"udc file description v1";

/// How a file is cut: `part_size` plain bytes per part (the last may be shorter), and what the
/// store holds for it (`sealed_*`: each part `PART_OVERHEAD` bytes longer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub size: u64,
    pub part_size: u64,
    pub part_count: u64,
    pub sealed_size: u64,
    pub sealed_part_size: u64,
}

impl Plan {
    /// The store's ceiling on parts per upload.
    pub const MAX_PARTS: u64 = 10_000;

    /// The plan for `size` plain bytes: 8 MiB parts, larger (whole MiB) when the file would
    /// need more than 10,000 of them. An empty file is one empty part.
    pub fn for_size(size: u64) -> Plan {
        let mut part_size = DEFAULT_PLAIN_PART;
        if size.div_ceil(part_size) > Plan::MAX_PARTS {
            part_size = size.div_ceil(Plan::MAX_PARTS).div_ceil(MIB) * MIB;
        }
        Plan::with_part_size(size, part_size)
    }

    /// The plan with `part_size` plain bytes per part (at least 1).
    pub fn with_part_size(size: u64, part_size: u64) -> Plan {
        let part_size = part_size.max(1);
        let part_count = size.div_ceil(part_size).max(1);
        Plan {
            size,
            part_size,
            part_count,
            sealed_size: size + part_count * PART_OVERHEAD,
            sealed_part_size: part_size + PART_OVERHEAD,
        }
    }

    /// Where part `n` (from 1) starts in the plain file, and how long it is; a number that is
    /// no part of the file (0, or past the end) is an empty range.
    pub fn plain_part(&self, n: u64) -> (u64, u64) {
        if n == 0 || n > self.part_count {
            return (self.size, 0);
        }
        let offset = (n - 1) * self.part_size;
        (offset, self.part_size.min(self.size.saturating_sub(offset)))
    }

    /// Where a download resumes when the first `kept` plain bytes are on disk: only whole parts
    /// are kept (each was opened, so checked, when it arrived), and the rest is fetched from
    /// the next part's start in the sealed object.
    pub fn resume(&self, kept: u64) -> Resume {
        let parts = match kept {
            0 => 0,
            // More than the file: not what this download wrote. Start over.
            k if k > self.size => return Resume::START,
            k if k == self.size => self.part_count,
            k => k / self.part_size,
        };
        if parts >= self.part_count {
            return Resume {
                parts: self.part_count,
                plain: self.size,
                sealed: self.sealed_size,
            };
        }
        Resume {
            parts,
            plain: parts * self.part_size,
            sealed: parts * self.sealed_part_size,
        }
    }
}

/// A download's restart point: `parts` whole parts kept, which are the first `plain` bytes of
/// the file and the first `sealed` bytes of the stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub parts: u64,
    pub plain: u64,
    pub sealed: u64,
}

impl Resume {
    /// Nothing kept: the whole object is fetched.
    pub const START: Resume = Resume {
        parts: 0,
        plain: 0,
        sealed: 0,
    };

    /// A file stored in the clear: the object's bytes are the file's, kept byte for byte.
    pub fn clear(kept: u64) -> Resume {
        Resume {
            parts: 0,
            plain: kept,
            sealed: kept,
        }
    }
}

/// What `sealed` holds: everything about the file the server need not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    pub name: String,
    pub mime: String,
    /// Plain bytes.
    pub size: u64,
    /// The plain bytes' SHA-256 (hex), checked after decryption.
    pub sha256: String,
    /// Plain bytes per part.
    pub part_size: u64,
}

impl Description {
    pub fn plan(&self) -> Plan {
        Plan::with_part_size(self.size, self.part_size)
    }

    fn digest(&self) -> Result<[u8; 32]> {
        let bytes: Vec<u8> = (0..self.sha256.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(self.sha256.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| anyhow!("sha256 is not hex"))?;
        <[u8; 32]>::try_from(bytes).map_err(|_| anyhow!("sha256 is not 32 bytes"))
    }
}

/// The keys an account's devices seal files with, all derived from the account key.
pub struct FileKeys {
    content_id: [u8; 32],
    description: [u8; 32],
    parts: [u8; 32],
}

/// Never prints the keys themselves.
impl std::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKeys { .. }")
    }
}

impl FileKeys {
    pub fn new(account_key: &[u8; 32]) -> Result<FileKeys> {
        let hk = Hkdf::<Sha256>::new(Some(b"udc files v1"), account_key);
        let mut keys = FileKeys {
            content_id: [0; 32],
            description: [0; 32],
            parts: [0; 32],
        };
        hk.expand(b"udc file content id", &mut keys.content_id)
            .and_then(|_| hk.expand(b"udc file description", &mut keys.description))
            .and_then(|_| hk.expand(b"udc file parts", &mut keys.parts))
            .map_err(|e| anyhow!("hkdf: {e}"))?;
        Ok(keys)
    }

    /// The id the server dedupes on and a receiver confirms with (64 hex digits, in the API's
    /// `sha256` field of a sealed file).
    pub fn content_id(&self, d: &Description) -> Result<String> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.content_id)
            .map_err(|e| anyhow!("hmac: {e}"))?;
        mac.update(&d.digest()?);
        mac.update(&d.size.to_be_bytes());
        mac.update(&d.part_size.to_be_bytes());
        Ok(hex(&mac.finalize().into_bytes()))
    }

    /// The description sealed (a random nonce: it is sent once per upload), base64.
    pub fn seal_description(&self, d: &Description) -> Result<String> {
        let mut plain = serde_json::to_vec(d)?;
        // JSON ends where the padding's spaces begin.
        plain.resize(
            plain.len().div_ceil(DESCRIPTION_BLOCK) * DESCRIPTION_BLOCK,
            b' ',
        );
        let sealed = crate::seal::seal(&self.description, META_AD, &plain)?;
        Ok(B64.encode(sealed))
    }

    pub fn open_description(&self, sealed_b64: &str) -> Result<Description> {
        let sealed = B64
            .decode(sealed_b64)
            .map_err(|_| anyhow!("a sealed file description is base64"))?;
        let plain = crate::seal::open(&self.description, META_AD, &sealed)
            .context("this file was sealed with another account's key, or damaged")?;
        serde_json::from_slice(&plain).map_err(|e| anyhow!("a sealed file description: {e}"))
    }

    /// The key for the parts of the file `d` describes.
    pub fn parts(&self, d: &Description) -> Result<PartSealer> {
        let mut key = [0u8; 32];
        let mut info = b"udc file part key v1".to_vec();
        info.extend(d.digest()?);
        info.extend(d.size.to_be_bytes());
        info.extend(d.part_size.to_be_bytes());
        Hkdf::<Sha256>::new(Some(&self.parts), &[])
            .expand(&info, &mut key)
            .map_err(|e| anyhow!("hkdf: {e}"))?;
        Ok(PartSealer {
            cipher: PartCipher::new(key),
            nonce_key: Sha256::new_with_prefix(b"udc file part nonce key v1")
                .chain_update(key)
                .finalize()
                .into(),
            part_count: d.plan().part_count,
        })
    }
}

/// Seals and opens one file's parts.
pub struct PartSealer {
    cipher: PartCipher,
    /// Keys the synthetic nonces.
    nonce_key: [u8; 32],
    part_count: u64,
}

impl PartSealer {
    fn ad(&self, n: u64) -> Vec<u8> {
        let mut ad = b"udc file part v1".to_vec();
        ad.extend(n.to_be_bytes());
        ad.extend(self.part_count.to_be_bytes());
        ad
    }

    /// The part's nonce, from its number and its bytes (a synthetic nonce): the same part sealed
    /// again is byte-identical, and different bytes never share a nonce under this key, even
    /// when the file changed after it was hashed. BLAKE3 in keyed mode is the PRF: the sender
    /// hashes every byte for it, and BLAKE3 does that several times faster than HMAC-SHA-256.
    /// A receiver never recomputes it (the tag binds it), so how it is made is the sender's
    /// business: parts sealed by an earlier version open the same.
    fn nonce(&self, n: u64, plain: &[u8]) -> [u8; NONCE] {
        let mut hash = blake3::Hasher::new_keyed(&self.nonce_key);
        hash.update(&n.to_be_bytes());
        hash.update(plain);
        let mut nonce = [0u8; NONCE];
        hash.finalize_xof().fill(&mut nonce);
        nonce
    }

    /// Part `n` (from 1) sealed: nonce ‖ ciphertext ‖ tag, the same bytes every time. One
    /// buffer, sealed in place: parts are megabytes, and every fresh buffer is memory the
    /// system must hand over page by page.
    pub fn seal(&self, n: u64, plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = self.nonce(n, plain);
        let mut sealed = Vec::with_capacity(plain.len() + PART_OVERHEAD as usize);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plain);
        let tag = self
            .cipher
            .seal(&nonce, &self.ad(n), &mut sealed[NONCE..])
            .with_context(|| format!("sealing part {n}"))?;
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    /// Part `n` opened in place: `part` holds the sealed part; on success the returned range of
    /// it holds the plain bytes (no copy: parts are megabytes). The tag authenticates nonce,
    /// part and place under this file's own key, so the nonce is not recomputed (that would
    /// hash every byte once more for nothing).
    pub fn open_in_place(&self, n: u64, part: &mut [u8]) -> Result<std::ops::Range<usize>> {
        let damaged = || anyhow!("part {n} of the file is damaged or not this file's");
        if part.len() < PART_OVERHEAD as usize {
            return Err(damaged());
        }
        let body_end = part.len() - TAG;
        let (head, tag) = part.split_at_mut(body_end);
        let (nonce, body) = head.split_at_mut(NONCE);
        let (nonce, tag) = (
            <&[u8; NONCE]>::try_from(&*nonce),
            <&[u8; TAG]>::try_from(&*tag),
        );
        match (nonce, tag) {
            (Ok(nonce), Ok(tag)) if self.cipher.open(nonce, &self.ad(n), body, tag) => {
                Ok(NONCE..body_end)
            }
            _ => Err(damaged()),
        }
    }

    pub fn open(&self, n: u64, sealed: &[u8]) -> Result<Vec<u8>> {
        let mut part = sealed.to_vec();
        let plain = self.open_in_place(n, &mut part)?;
        part.truncate(plain.end);
        part.drain(..plain.start);
        Ok(part)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(bytes: &[u8], part_size: u64) -> Description {
        use sha2::Digest;
        Description {
            name: "notes.txt".into(),
            mime: "text/plain".into(),
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
            part_size,
        }
    }

    #[test]
    fn plans_match_the_servers_part_rules() {
        let p = Plan::for_size(0);
        assert_eq!((p.part_count, p.sealed_size), (1, PART_OVERHEAD));
        let p = Plan::for_size(20 * MIB + 1);
        assert_eq!((p.part_size, p.part_count), (8 * MIB, 3));
        assert_eq!(p.sealed_size, 20 * MIB + 1 + 3 * PART_OVERHEAD);
        assert_eq!(p.plain_part(3), (16 * MIB, 4 * MIB + 1));
        // 100 GiB needs bigger parts to stay within 10,000.
        let p = Plan::for_size(100 * 1024 * MIB);
        assert!(
            p.part_count <= Plan::MAX_PARTS && p.part_size.is_multiple_of(MIB),
            "{p:?}"
        );
        // Each sealed part but the last is sealed_part_size, the last the rest.
        let p = Plan::with_part_size(10, 4);
        // A part number that is no part (a server's answer, untrusted): an empty range, no panic.
        assert_eq!(p.plain_part(0).1, 0);
        assert_eq!(p.plain_part(u64::MAX).1, 0);
        let sealed: u64 = (1..=p.part_count)
            .map(|n| p.plain_part(n).1 + PART_OVERHEAD)
            .sum();
        assert_eq!(sealed, p.sealed_size);
    }

    #[test]
    fn a_download_resumes_after_the_whole_parts_it_kept() {
        let p = Plan::with_part_size(10, 4);
        let at = |parts, plain, sealed| Resume {
            parts,
            plain,
            sealed,
        };
        assert_eq!(p.resume(0), at(0, 0, 0));
        assert_eq!(p.resume(3), at(0, 0, 0));
        assert_eq!(p.resume(4), at(1, 4, 4 + PART_OVERHEAD));
        assert_eq!(p.resume(9), at(2, 8, 8 + 2 * PART_OVERHEAD));
        // The short last part: the whole file is kept, nothing is left to fetch.
        assert_eq!(p.resume(10), at(3, 10, p.sealed_size));
        // More than the file is not what a download wrote: start over.
        assert_eq!(p.resume(11), Resume::START);
        assert_eq!(p.resume(u64::MAX), Resume::START);
        // An empty file is one empty part: nothing kept, it is fetched and its tag checked.
        let empty = Plan::with_part_size(0, 4);
        assert_eq!(empty.resume(0), at(0, 0, 0));
    }

    /// Receivers never recompute the nonce (the tag binds it): parts sealed before the nonce
    /// was keyed BLAKE3 (it was HMAC-SHA-256) open the same.
    #[test]
    fn a_part_opens_whatever_nonce_its_sender_chose() {
        let keys = FileKeys::new(&[7; 32]).unwrap();
        let plain = b"0123456789";
        let parts = keys.parts(&described(plain, 16)).unwrap();
        let nonce = [0x42u8; NONCE];
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(plain);
        let tag = parts
            .cipher
            .seal(&nonce, &parts.ad(1), &mut sealed[NONCE..])
            .unwrap();
        sealed.extend_from_slice(&tag);
        assert_eq!(parts.open(1, &sealed).unwrap(), plain);
        assert_ne!(parts.seal(1, plain).unwrap()[..NONCE], nonce);
    }

    #[test]
    fn parts_seal_the_same_every_time_and_open_only_in_place() {
        let keys = FileKeys::new(&[7; 32]).unwrap();
        let bytes = b"0123456789";
        let d = described(bytes, 4);
        let parts = keys.parts(&d).unwrap();
        let one = parts.seal(1, &bytes[..4]).unwrap();
        assert_eq!(one, keys.parts(&d).unwrap().seal(1, &bytes[..4]).unwrap());
        assert_eq!(one.len(), 4 + PART_OVERHEAD as usize);
        // Changed bytes under the same key get another nonce.
        let changed = parts.seal(1, b"0124").unwrap();
        assert_ne!(changed[..24], one[..24]);
        assert_eq!(parts.open(1, &one).unwrap(), &bytes[..4]);
        // Another place, another file, another account: refused.
        assert!(parts.open(2, &one).is_err());
        assert!(keys
            .parts(&described(b"another file", 4))
            .unwrap()
            .open(1, &one)
            .is_err());
        let other = FileKeys::new(&[8; 32]).unwrap();
        assert!(other.parts(&d).unwrap().open(1, &one).is_err());
        // Cut differently, the same bytes get another key (no nonce is reused).
        assert_ne!(
            keys.parts(&described(bytes, 5))
                .unwrap()
                .seal(1, &bytes[..4])
                .unwrap(),
            one
        );
    }

    #[test]
    fn the_content_id_is_keyed_and_the_description_opens_only_for_the_account() {
        let keys = FileKeys::new(&[7; 32]).unwrap();
        let d = described(b"hello", 8 * MIB);
        let id = keys.content_id(&d).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, d.sha256, "never the plain SHA-256");
        assert_eq!(id, keys.content_id(&d.clone()).unwrap());
        assert_ne!(id, FileKeys::new(&[8; 32]).unwrap().content_id(&d).unwrap());
        let sealed = keys.seal_description(&d).unwrap();
        assert!(!sealed.contains("notes"));
        // Padded: a longer name in the same block seals to the same length.
        let longer = Description {
            name: "a much longer name for the same notes.txt".into(),
            ..d.clone()
        };
        assert_eq!(keys.seal_description(&longer).unwrap().len(), sealed.len());
        assert_eq!(keys.open_description(&sealed).unwrap(), d);
        assert!(FileKeys::new(&[8; 32])
            .unwrap()
            .open_description(&sealed)
            .is_err());
    }
}
