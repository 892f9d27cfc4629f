//! What a file's description must be: its name, media type, digest and part plan.

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

/// A file name as the receiver will save it: no path, nothing a file system would trip on.
pub(super) fn file_name(raw: &str) -> ApiResult<String> {
    let name = validate::label("name", raw, 255)?;
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(ApiError::invalid(
            "name: must be a file name without a path",
        ));
    }
    Ok(name)
}

pub(super) fn mime(raw: Option<&str>) -> ApiResult<String> {
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
