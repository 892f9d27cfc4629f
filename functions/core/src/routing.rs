//! Where a request's account is, told from the request alone (no I/O), for a host that keeps
//! each account's data apart (the Worker: one Durable Object per account). A signed token or a
//! refresh token names its account; a request that signs in names an email (the directory
//! knows its account); an approval poll names its request (the directory knows where it went).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;

use crate::config::Config;
use crate::tokens::{self, VerifiedTokens};
use crate::validate;
use crate::web::query_param;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// This account's storage: a token signed for it says so.
    Account(String),
    /// The storage of the account the request names, which nothing signed vouches for (a
    /// refresh token's prefix, a passkey's user handle): it may be no account at all.
    Named(String),
    /// The storage of the account that holds this email, if one does (the directory).
    Email(String),
    /// The storage of the account this sign-in approval request went to (the directory).
    Approval(String),
    /// The storage of the account a refresh token from before tokens named their account
    /// belongs to (the directory, by the token's hash).
    RefreshHash(String),
    /// No account's: answered from what all accounts share (health, a passkey challenge, a
    /// token that is not one, a body that names nothing).
    Shared,
}

/// The destination of a request to `path`. Only the signature of a token is checked here (the
/// account's storage checks everything else, its expiry included, as any host does), through
/// `verified`, which a host keeps between requests.
pub fn destination(
    config: &Config,
    verified: &VerifiedTokens,
    now_ms: i64,
    path: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Destination {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    // Read as core reads a body (through a JSON value: of a key given twice, the last), so
    // the account routed to is the one core's handler sees.
    let field = |name: &str| {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()?
            .get(name)?
            .as_str()
            .map(str::to_owned)
    };
    match segments.as_slice() {
        ["health"] | ["ready"] | ["auth", "webauthn", "login", "options"] => Destination::Shared,
        ["auth", "prelogin" | "register" | "login" | "recovery"]
        | ["auth", "recovery", "reset"]
        | ["auth", "approval", "request"] => field("email")
            .and_then(|e| validate::email(&e).ok())
            .map_or(Destination::Shared, Destination::Email),
        ["auth", "token", "refresh"] => match field("refresh_token") {
            Some(token) => match tokens::refresh_account(&token) {
                Some(account) => Destination::Named(account.to_owned()),
                None => Destination::RefreshHash(tokens::refresh_hash(&token)),
            },
            None => Destination::Shared,
        },
        ["auth", "webauthn", "login"] => field("user_handle")
            .and_then(|h| B64URL.decode(h).ok())
            .and_then(|h| String::from_utf8(h).ok())
            .filter(|id| uuid::Uuid::try_parse(id).is_ok())
            .map_or(Destination::Shared, Destination::Named),
        ["auth", "approval", id] if !matches!(*id, "pending") => {
            Destination::Approval((*id).to_owned())
        }
        ["realtime"] => query_param(query, "ticket")
            .map(str::to_owned)
            .or_else(|| bearer(headers))
            .and_then(|t| verified.signer(config, now_ms, &t))
            .map_or(Destination::Shared, Destination::Account),
        _ => bearer(headers)
            .and_then(|t| verified.signer(config, now_ms, &t))
            .map_or(Destination::Shared, Destination::Account),
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("Bearer")
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::for_tests;
    use crate::tokens::{mint, new_refresh, AccessClaims};

    const SEED: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    const ACCOUNT: &str = "6f1c9a52-0d0e-4c1b-9a53-1f5ad2a0b7c4";
    const T0: i64 = 1_800_000_000_000;

    fn token(seed: &str, scope: Option<&str>) -> String {
        let claims = AccessClaims {
            sub: ACCOUNT.into(),
            sid: "s".into(),
            did: None,
            scope: scope.map(str::to_owned),
        };
        mint(&for_tests(seed), T0, claims, 60).unwrap()
    }

    fn to(path: &str, query: Option<&str>, bearer: Option<&str>, body: &str) -> Destination {
        let mut headers = http::HeaderMap::new();
        if let Some(t) = bearer {
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer {t}").parse().unwrap(),
            );
        }
        let verified = VerifiedTokens::default();
        destination(
            &for_tests(SEED),
            &verified,
            T0,
            path,
            query,
            &headers,
            body.as_bytes(),
        )
    }

    #[test]
    fn a_signed_token_names_its_account_expired_or_not_and_a_foreign_one_nothing() {
        let ours = token(SEED, None);
        let account = Destination::Account(ACCOUNT.into());
        assert_eq!(to("/devices", None, Some(&ours), ""), account);
        // Signed long ago: its account's storage answers that it expired.
        let old = mint(
            &for_tests(SEED),
            0,
            AccessClaims {
                sub: ACCOUNT.into(),
                sid: "s".into(),
                did: None,
                scope: None,
            },
            1,
        )
        .unwrap();
        assert_eq!(to("/files/x/download", None, Some(&old), ""), account);
        assert_eq!(
            to("/devices", None, Some(&token(OTHER, None)), ""),
            Destination::Shared
        );
        assert_eq!(
            to("/devices", None, Some("nonsense"), ""),
            Destination::Shared
        );
        assert_eq!(to("/devices", None, None, ""), Destination::Shared);
        let ticket = format!("resume_after=3&ticket={}", token(SEED, Some("realtime")));
        assert_eq!(to("/realtime", Some(&ticket), None, ""), account);
        assert_eq!(to("/realtime", None, Some(&ours), ""), account);
    }

    #[test]
    fn sign_ins_name_an_email_refreshes_and_passkeys_an_account_polls_a_request() {
        for path in [
            "/auth/prelogin",
            "/auth/register",
            "/auth/login",
            "/auth/recovery",
            "/auth/recovery/reset",
            "/auth/approval/request",
        ] {
            assert_eq!(
                to(path, None, None, r#"{"email":" Ann@Example.COM ","x":1}"#),
                Destination::Email("ann@example.com".into()),
                "{path}"
            );
            assert_eq!(
                to(path, None, None, r#"{"email":"no"}"#),
                Destination::Shared
            );
            assert_eq!(to(path, None, None, "not json"), Destination::Shared);
        }
        let (refresh, _) = new_refresh(&crate::OsRandom, ACCOUNT).unwrap();
        let body = format!(r#"{{"refresh_token":"{refresh}"}}"#);
        let named = Destination::Named(ACCOUNT.into());
        assert_eq!(to("/auth/token/refresh", None, None, &body), named);
        assert_eq!(
            to(
                "/auth/token/refresh",
                None,
                None,
                r#"{"refresh_token":"udcr_old"}"#
            ),
            Destination::RefreshHash(crate::tokens::refresh_hash("udcr_old"))
        );
        assert_eq!(
            to("/auth/token/refresh", None, None, "{}"),
            Destination::Shared
        );
        let handle = B64URL.encode(ACCOUNT);
        let body = format!(r#"{{"user_handle":"{handle}"}}"#);
        assert_eq!(to("/auth/webauthn/login", None, None, &body), named);
        let body = format!(r#"{{"user_handle":"{}"}}"#, B64URL.encode("../x"));
        assert_eq!(
            to("/auth/webauthn/login", None, None, &body),
            Destination::Shared
        );
        assert_eq!(
            to("/auth/approval/1a2b", None, None, ""),
            Destination::Approval("1a2b".into())
        );
        // A key given twice is read as core reads it: the last.
        assert_eq!(
            to(
                "/auth/register",
                None,
                None,
                r#"{"email":"a@b.c","email":"d@e.f","x":1}"#
            ),
            Destination::Email("d@e.f".into())
        );
        // The account's own list of requests is a signed-in call.
        let account = Destination::Account(ACCOUNT.into());
        let ours = token(SEED, None);
        assert_eq!(to("/auth/approval/pending", None, Some(&ours), ""), account);
        assert_eq!(to("/health", None, Some(&ours), ""), Destination::Shared);
    }
}
