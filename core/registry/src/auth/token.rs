//! Getting a bearer token from a registry's token service (Distribution "Token Authentication
//! Specification", and its OAuth 2 form for identity tokens): the request, the answer and its
//! lifetime, kept apart from the choice of scheme in [`super`].

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::credentials::Credential;
use super::{Auth, basic_header};
use crate::error::RegistryError;
use crate::redact::{Secret, redact_url};
use crate::retry::{RetryPolicy, retryable_status, retryable_transport};

/// Largest token response we read.
const MAX_TOKEN_BODY: usize = 1 << 20;
/// Shortest lifetime we assume for a token (containers/image does the same).
const MIN_TOKEN_LIFETIME: u64 = 60;
/// Longest we cache a token, whatever `expires_in` says: the value comes from the network, and an
/// `Instant` plus an unbounded duration overflows (issue 13).
const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

/// The JSON of a token response (Docker token spec and OAuth 2 spellings). `expires_in` is kept
/// as raw JSON so a negative, fractional or huge number is ignored instead of refusing the token.
#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

/// Why a token response body is unusable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadToken {
    /// Not token JSON at all.
    NotJson,
    /// JSON without a (non-empty) token.
    NoToken,
}

/// Parses a token response body into the token and its lifetime in seconds, clamped to
/// [`MIN_TOKEN_LIFETIME`]..=[`MAX_TOKEN_LIFETIME`].
pub(crate) fn parse_token_answer(body: &[u8]) -> Result<(String, u64), BadToken> {
    let a: TokenAnswer = serde_json::from_slice(body).map_err(|_| BadToken::NotJson)?;
    let token = a
        .token
        .or(a.access_token)
        .filter(|t| !t.is_empty())
        .ok_or(BadToken::NoToken)?;
    let lifetime = a
        .expires_in
        .and_then(|v| v.as_u64())
        .unwrap_or(MIN_TOKEN_LIFETIME)
        .clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
    Ok((token, lifetime))
}

/// When a token obtained at `now` with `lifetime` seconds should be thrown away: 5 s early, so
/// a request never carries one that expires on the way.
pub(crate) fn token_expiry(now: Instant, lifetime: u64) -> Instant {
    let lifetime = Duration::from_secs(lifetime.min(MAX_TOKEN_LIFETIME));
    now.checked_add(lifetime.saturating_sub(Duration::from_secs(5)))
        .unwrap_or(now)
}

impl Auth {
    /// One token request, retried on transient failures.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch_token(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        registry: &str,
        repository: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cred: Option<&Credential>,
    ) -> Result<(Secret, u64), RegistryError> {
        let denied = |detail: String| RegistryError::Auth {
            registry: crate::reference::display_registry(registry).to_string(),
            repository: repository.to_string(),
            detail,
        };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|_| denied("the token realm is not a URL".into()))?;
        let shown = redact_url(&url);
        let mut attempt = 0u32;
        loop {
            let rb = token_request(http, &mut url, service, scope, cred);
            let transient = match rb.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let body = crate::response::read_capped(resp, MAX_TOKEN_BODY).await;
                    match body {
                        Ok(b) => return token_answer(&b, &shown),
                        Err(e) => e.to_string(),
                    }
                }
                Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                    let who = refused_by(cred);
                    return Err(denied(format!("{who} ({})", resp.status())));
                }
                Ok(resp) if retryable_status(resp.status()) => {
                    format!("token service answered {}", resp.status())
                }
                Ok(resp) => {
                    let detail = crate::response::error_detail(resp).await;
                    return Err(RegistryError::Protocol { url: shown, detail });
                }
                Err(e) if retryable_transport(&e) => e.without_url().to_string(),
                Err(e) => {
                    return Err(crate::response::net_error(
                        "get a token from",
                        &url,
                        e,
                        attempt + 1,
                    ));
                }
            };
            attempt += 1;
            if attempt > policy.max_retries {
                return Err(RegistryError::Network {
                    action: "get a token from".into(),
                    url: shown,
                    attempts: attempt,
                    hint: None,
                    source: Box::new(crate::error::Failure(transient)),
                });
            }
            tracing::warn!(url = %shown, attempt, "token request failed, retrying: {transient}");
            tokio::time::sleep(policy.delay(attempt, None)).await;
        }
    }
}

/// The token request for `scope` at the realm `url` (Distribution token spec): a POST with the
/// stored identity token as refresh token (OAuth2), else a GET naming the account, with Basic
/// credentials when stored.
fn token_request(
    http: &reqwest::Client,
    url: &mut reqwest::Url,
    service: Option<&str>,
    scope: &str,
    cred: Option<&Credential>,
) -> reqwest::RequestBuilder {
    match cred {
        Some(Credential::IdentityToken(refresh)) => {
            let mut form = reqwest::Url::parse("http://form.invalid/").expect("static URL");
            {
                let mut q = form.query_pairs_mut();
                q.append_pair("grant_type", "refresh_token");
                q.append_pair("refresh_token", refresh.expose());
                q.append_pair("client_id", "fspack");
                if !scope.is_empty() {
                    q.append_pair("scope", scope);
                }
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
            }
            http.post(url.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.query().unwrap_or_default().to_string())
        }
        other => {
            url.query_pairs_mut().clear();
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                if !scope.is_empty() {
                    q.append_pair("scope", scope);
                }
                if let Some(Credential::Basic { username, .. }) = other {
                    q.append_pair("account", username);
                }
            }
            let rb = http.get(url.clone());
            match other {
                Some(Credential::Basic { username, password }) => {
                    rb.header(AUTHORIZATION, basic_header(username, password))
                }
                _ => rb,
            }
        }
    }
}

/// The token and its lifetime in seconds from the token service's answer `b`.
///
/// Errors: [`RegistryError::Protocol`] naming the realm `shown` for an answer without a token.
fn token_answer(b: &[u8], shown: &str) -> Result<(Secret, u64), RegistryError> {
    let (tok, lifetime) = parse_token_answer(b).map_err(|why| RegistryError::Protocol {
        url: shown.to_string(),
        detail: match why {
            BadToken::NotJson => "the token service did not answer with token JSON",
            BadToken::NoToken => "the token service answered without a token",
        }
        .into(),
    })?;
    Ok((Secret::new(tok), lifetime))
}

/// Who the token service refused, by the credential fspack sent.
fn refused_by(cred: Option<&Credential>) -> String {
    match cred {
        Some(Credential::Basic { username, .. }) => {
            format!("the token service refused the credentials of {username:?}")
        }
        Some(Credential::IdentityToken(_)) => {
            "the token service refused the stored identity token".into()
        }
        None => "the token service refused anonymous access".into(),
    }
}
