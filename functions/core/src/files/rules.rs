//! What a file's description must be: its name, media type, digest and part plan.

use base64::Engine;

use super::{DEFAULT_PART_SIZE, MAX_PARTS, MAX_PART_SIZE, MIB, MIN_PART_SIZE};
use crate::error::{ApiError, ApiResult};
use crate::validate;

/// Part size and count for a file: S3 wants at most 10,000 parts, all but the last of one size
/// (R2 insists), none but the last under 5 MiB.
pub fn part_plan(size: u64, requested: Option<u64>) -> ApiResult<(u64, u64)> {
    let mut part_size = match requested {
        None => DEFAULT_PART_SIZE,
        Some(p) if (MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p) => p,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "part_size: must be {MIN_PART_SIZE} to {MAX_PART_SIZE} bytes"
            )))
        }
    };
    if size.div_ceil(part_size) > MAX_PARTS {
        part_size = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    }
    Ok((part_size, size.div_ceil(part_size).max(1)))
}

pub(super) fn sha256_hex(field: &str, raw: &str) -> ApiResult<String> {
    let v = raw.trim().to_ascii_lowercase();
    if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(v)
    } else {
        Err(ApiError::invalid(format!(
            "{field}: must be 64 hex digits (SHA-256)"
        )))
    }
}

/// Shortest and longest sealed description, in base64 characters: a nonce and a tag are 40
/// bytes, and a 255-character name with a media type fits the longest with room to spare.
const MIN_SEALED: usize = 60;
const MAX_SEALED: usize = 4096;

/// What a file is called, as the server keeps it.
pub(super) struct Described {
    pub(super) name: String,
    pub(super) mime: String,
    pub(super) sealed: Option<String>,
}

/// A file in the clear has a name (and maybe a media type); a sealed file has only `sealed`,
/// its description sealed on the device, which the server cannot read and so cannot check
/// beyond its form.
pub(super) fn description(
    name: Option<&str>,
    media: Option<&str>,
    sealed: Option<&str>,
) -> ApiResult<Described> {
    match (name, sealed) {
        (Some(name), None) => Ok(Described {
            name: file_name(name)?,
            mime: mime(media)?,
            sealed: None,
        }),
        (None, Some(_)) if media.is_some() => Err(ApiError::invalid(
            "mime: a sealed file's media type travels inside `sealed`",
        )),
        (None, Some(sealed)) => {
            let decodes = base64::engine::general_purpose::STANDARD
                .decode(sealed)
                .is_ok();
            if !decodes || !(MIN_SEALED..=MAX_SEALED).contains(&sealed.len()) {
                return Err(ApiError::invalid(format!(
                    "sealed: must be a sealed description, {MIN_SEALED} to {MAX_SEALED} base64 characters"
                )));
            }
            Ok(Described {
                name: String::new(),
                mime: mime(None)?,
                sealed: Some(sealed.to_owned()),
            })
        }
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "name: a sealed file's name travels inside `sealed`: send one of name and sealed",
        )),
        (None, None) => Err(ApiError::invalid(
            "name: required, or `sealed` (the file's description sealed on the device)",
        )),
    }
}

/// A file name as the receiver will save it: no path, nothing a file system would trip on.
fn file_name(raw: &str) -> ApiResult<String> {
    let name = validate::label("name", raw, 255)?;
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(ApiError::invalid(
            "name: must be a file name without a path",
        ));
    }
    Ok(name)
}

fn mime(raw: Option<&str>) -> ApiResult<String> {
    let Some(raw) = raw.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok("application/octet-stream".to_owned());
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    match raw.split_once('/') {
        Some((t, sub)) if raw.len() <= 127 && token(t) && token(sub) => {
            Ok(raw.to_ascii_lowercase())
        }
        _ => Err(ApiError::invalid(
            "mime: must be a media type like image/jpeg",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{DEFAULT_PART_SIZE, MAX_PARTS, MIB};

    #[test]
    fn parts_are_equal_but_the_last_and_never_too_many() {
        assert_eq!(part_plan(0, None).unwrap(), (DEFAULT_PART_SIZE, 1));
        assert_eq!(part_plan(50 * MIB, None).unwrap(), (DEFAULT_PART_SIZE, 7));
        assert_eq!(
            part_plan(5 * 1024 * MIB, None).unwrap(),
            (DEFAULT_PART_SIZE, 640)
        );
        let (size, count) = part_plan(100 * 1024 * MIB, None).unwrap();
        assert!(count <= MAX_PARTS && size % MIB == 0 && size * count >= 100 * 1024 * MIB);
        assert!(part_plan(10, Some(MIB)).is_err());
        assert_eq!(part_plan(12 * MIB, Some(6 * MIB)).unwrap(), (6 * MIB, 2));
    }

    #[test]
    fn names_are_file_names() {
        assert!(file_name("photo.jpg").is_ok());
        for bad in ["", "..", "a/b", "a\\b", "x\u{7}"] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(mime(None).unwrap(), "application/octet-stream");
        assert_eq!(mime(Some("Image/PNG")).unwrap(), "image/png");
        assert!(mime(Some("no-slash")).is_err());
    }
}
