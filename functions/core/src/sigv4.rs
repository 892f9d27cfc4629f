//! AWS Signature Version 4 in the query string (a presigned URL), as S3 checks it: the
//! canonical request, the string to sign and the signing key of the "Authenticating Requests:
//! Using Query Parameters" page of the S3 API reference. The body is never signed
//! (`UNSIGNED-PAYLOAD`); the signed headers are `host` and those the caller adds.

use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike};

use crate::crypto::{hmac_sha256, sha256_hex};
use crate::error::{ApiError, ApiResult};

/// The access key pair and the region a store checks signatures with.
pub struct Signer {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// What is signed: the method, the URL without the signature's own parameters (its path
/// already in S3's encoding: `encode_path`), and headers beyond `host` the request must send
/// as they are (names in lowercase).
pub struct Unsigned<'a> {
    pub method: &'a str,
    pub url: url::Url,
    pub headers: &'a [(&'a str, String)],
}

impl Signer {
    /// The URL with the signature's parameters, valid `ttl` from `now_ms`.
    pub fn presign(&self, req: Unsigned<'_>, now_ms: i64, ttl: Duration) -> ApiResult<url::Url> {
        let unsignable =
            |why: &str| ApiError::internal(format!("signing for the object store: {why}"));
        let time =
            DateTime::from_timestamp_millis(now_ms).ok_or_else(|| unsignable("no such time"))?;
        let day = format!("{:04}{:02}{:02}", time.year(), time.month(), time.day());
        let stamp = format!(
            "{day}T{:02}{:02}{:02}Z",
            time.hour(),
            time.minute(),
            time.second()
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let host = match (req.url.host_str(), req.url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(unsignable("a URL without a host")),
        };
        let mut headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(name, value)| (*name, value.trim()))
            .chain([("host", host.as_str())])
            .collect();
        headers.sort_unstable();
        let signed_headers = headers
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(";");

        let mut query: Vec<(String, String)> = req
            .url
            .query_pairs()
            .map(|(k, v)| (encode(&k, true), encode(&v, true)))
            .collect();
        for (name, value) in [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
            (
                "X-Amz-Credential",
                format!("{}/{scope}", self.access_key_id),
            ),
            ("X-Amz-Date", stamp.clone()),
            ("X-Amz-Expires", ttl.as_secs().to_string()),
            ("X-Amz-SignedHeaders", signed_headers.clone()),
        ] {
            query.push((encode(name, true), encode(&value, true)));
        }
        query.sort_unstable();
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");

        let mut canonical = format!("{}\n{}\n{query}\n", req.method, req.url.path());
        for (name, value) in &headers {
            let _ = writeln!(canonical, "{name}:{value}");
        }
        let _ = write!(canonical, "\n{signed_headers}\nUNSIGNED-PAYLOAD");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let key = [day.as_str(), self.region.as_str(), "s3", "aws4_request"]
            .iter()
            .try_fold(
                format!("AWS4{}", self.secret_access_key).into_bytes(),
                |key, part| hmac_sha256(&key, &[part.as_bytes()]).map(Vec::from),
            )?;
        let signature = hex::encode(hmac_sha256(&key, &[to_sign.as_bytes()])?);
        let mut url = req.url;
        url.set_query(Some(&format!("{query}&X-Amz-Signature={signature}")));
        Ok(url)
    }
}

/// `text` in SigV4's encoding: every byte but the unreserved (`A-Z a-z 0-9 - . _ ~`) as `%XX`
/// in capitals, and `/` too unless `slash` is false (an object key's path keeps its slashes).
fn encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if !slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A path of segments, each in SigV4's encoding (the URL keeps it as it is: it has no byte a
/// URL path would encode again).
pub fn encode_path(segments: &[&str]) -> String {
    segments.iter().fold(String::new(), |mut path, segment| {
        path.push('/');
        path.push_str(&encode(segment, false));
        path
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the S3 API reference's page on presigned URLs: GET of `test.txt` in
    /// `examplebucket`, signed on 2013-05-24 for a day.
    #[test]
    fn signs_the_reference_example() {
        let signer = Signer {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
        };
        let url = signer
            .presign(
                Unsigned {
                    method: "GET",
                    url: url::Url::parse("https://examplebucket.s3.amazonaws.com/test.txt")
                        .unwrap(),
                    headers: &[],
                },
                1_369_353_600_000,
                Duration::from_secs(86_400),
            )
            .unwrap();
        assert_eq!(
            url.query(),
            Some(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
                 &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
                 &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            )
        );
    }

    #[test]
    fn encodes_as_sigv4_does() {
        assert_eq!(encode("a b+c/d~e", true), "a%20b%2Bc%2Fd~e");
        assert_eq!(encode_path(&["bucket", "u/f é"]), "/bucket/u/f%20%C3%A9");
    }
}
