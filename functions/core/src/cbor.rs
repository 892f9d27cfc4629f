//! The CBOR (RFC 8949) WebAuthn needs read: an attestation object and a credential's COSE key,
//! which authenticators write in CTAP2's canonical form, with definite lengths only. Any item of
//! that form is read; tags, floats and simple values are read past as `Other`, since WebAuthn
//! takes nothing from them. An indefinite length, a reserved head, input cut short or items
//! nested deeper than `MAX_DEPTH` is `Malformed`. Written here rather than taken from
//! `ciborium`, whose serde-driven reader was 25 KB of every Wasm build for these two reads.

/// A data item.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Major types 0 and 1: -2^64 to 2^64 - 1.
    Integer(i128),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    /// In the order written.
    Map(Vec<(Value, Value)>),
    /// A tagged item, a float or a simple value (false, true, null, ...).
    Other,
}

/// Deeper than any COSE key or attestation object; a bound on the reader's recursion.
const MAX_DEPTH: usize = 16;

/// Not one whole CBOR item of the form above.
#[derive(Debug, PartialEq)]
pub struct Malformed;

/// The item at the front of `bytes`, and the bytes after it.
pub fn read(bytes: &[u8]) -> Result<(Value, &[u8]), Malformed> {
    let mut reader = Reader { bytes };
    let value = reader.item(0)?;
    Ok((value, reader.bytes))
}

struct Reader<'a> {
    /// What is left to read.
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.bytes.len() {
            return Err(Malformed);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    /// An item's head: its major type and argument.
    fn head(&mut self) -> Result<(u8, u64), Malformed> {
        let first = self.take(1)?.first().copied().ok_or(Malformed)?;
        let (major, info) = (first >> 5, first & 0x1f);
        let width = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            // 28-30 are reserved; 31 is an indefinite length (or a break outside one).
            _ => return Err(Malformed),
        };
        let arg = self
            .take(width)?
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b));
        Ok((major, arg))
    }

    /// A length or count no larger than what is left to read (every item takes a byte at
    /// least), so nothing is allocated for a length the input cannot hold.
    fn length(&self, arg: u64) -> Result<usize, Malformed> {
        usize::try_from(arg)
            .ok()
            .filter(|n| *n <= self.bytes.len())
            .ok_or(Malformed)
    }

    fn item(&mut self, depth: usize) -> Result<Value, Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        let (major, arg) = self.head()?;
        Ok(match major {
            0 => Value::Integer(i128::from(arg)),
            1 => Value::Integer(-1 - i128::from(arg)),
            2 => {
                let n = self.length(arg)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.length(arg)?;
                let text = std::str::from_utf8(self.take(n)?).map_err(|_| Malformed)?;
                Value::Text(text.to_owned())
            }
            4 => {
                let n = self.length(arg)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                // A pair takes two bytes at least.
                let n = self.length(arg.saturating_mul(2))? / 2;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    pairs.push((key, self.item(depth + 1)?));
                }
                Value::Map(pairs)
            }
            6 => {
                self.item(depth + 1)?;
                Value::Other
            }
            // Major type 7: the head held the float's or simple value's bytes.
            _ => Value::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value as Written;

    /// `value` as ciborium writes it: an encoder other than the reader under test.
    fn written(value: &Written) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    #[test]
    fn reads_what_another_encoder_writes_and_leaves_what_follows() {
        let ints: [i128; 12] = [
            0,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as i128,
            u64::MAX as i128,
            -1,
            -25,
            -(u64::MAX as i128) - 1,
        ];
        for n in ints {
            let bytes = written(&Written::Integer(n.try_into().unwrap()));
            assert_eq!(read(&bytes), Ok((Value::Integer(n), &[][..])), "{n}");
        }
        let nested = Written::Map(vec![
            (Written::Integer(1.into()), Written::Integer(2.into())),
            (Written::Integer((-2).into()), Written::Bytes(vec![7; 300])),
            (Written::Text("fmt".into()), Written::Text("none é".into())),
            (
                Written::Text("list".into()),
                Written::Array(vec![
                    Written::Bool(true),
                    Written::Null,
                    Written::Float(1.5),
                    Written::Tag(24, Box::new(Written::Bytes(vec![1]))),
                    Written::Map(vec![]),
                ]),
            ),
        ]);
        let mut bytes = written(&nested);
        bytes.extend([0xde, 0xad]);
        let (value, rest) = read(&bytes).unwrap();
        assert_eq!(rest, [0xde, 0xad]);
        assert_eq!(
            value,
            Value::Map(vec![
                (Value::Integer(1), Value::Integer(2)),
                (Value::Integer(-2), Value::Bytes(vec![7; 300])),
                (Value::Text("fmt".into()), Value::Text("none é".into())),
                (
                    Value::Text("list".into()),
                    Value::Array(vec![
                        Value::Other,
                        Value::Other,
                        Value::Other,
                        Value::Other,
                        Value::Map(vec![])
                    ]),
                ),
            ])
        );
    }

    #[test]
    fn what_is_not_one_whole_item_is_malformed() {
        let whole = written(&Written::Map(vec![(
            Written::Text("authData".into()),
            Written::Bytes(vec![1; 40]),
        )]));
        // Cut anywhere.
        for end in 0..whole.len() {
            assert_eq!(read(&whole[..end]), Err(Malformed), "cut at {end}");
        }
        for bad in [
            &[0x5f, 0x41, 0x00, 0xff][..], // an indefinite-length byte string
            &[0xbf, 0xff],                 // an indefinite-length map
            &[0xff],                       // a break alone
            &[0x1c],                       // a reserved head
            &[0x62, 0xc3, 0x28],           // text that is not UTF-8
            // Lengths and counts far beyond the input: refused before anything is allocated.
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00],
            &[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(read(bad), Err(Malformed), "{bad:02x?}");
        }
        // Nested deeper than any key: refused, not a stack overflow.
        let deep = [vec![0x81; 10_000], vec![0x00]].concat();
        assert_eq!(read(&deep), Err(Malformed));
        let (value, _) = read(&[vec![0x81; MAX_DEPTH], vec![0x00]].concat()).unwrap();
        assert!(matches!(value, Value::Array(_)));
    }
}
