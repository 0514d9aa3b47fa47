//! Registry authentication: anonymous first; on a 401, the `WWW-Authenticate` challenge decides
//! between Basic and the Bearer token flow (token GET with Basic credentials, or the OAuth2
//! `refresh_token` grant for identity tokens). Tokens are cached per (registry, scope) with their
//! expiry; one task at a time fetches, so sixteen parallel range requests cause one token request.

pub(crate) mod challenge;
pub(crate) mod credentials;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::error::RegistryError;
use crate::redact::{Secret, redact_url, sanitize};
use crate::retry::{RetryPolicy, retryable_status, retryable_transport};
use challenge::parse_challenges;
use credentials::Credential;

/// Largest token response we read.
const MAX_TOKEN_BODY: usize = 1 << 20;
/// Shortest lifetime we assume for a token (containers/image does the same).
const MIN_TOKEN_LIFETIME: u64 = 60;
/// Longest we cache a token, whatever `expires_in` says: the value comes from the network, and an
/// `Instant` plus an unbounded duration overflows (issue 13).
const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

/// How a registry wants to be authenticated, learnt from its first challenge.
#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    expires: Instant,
    id: u64,
}

/// Which credential a request carried, so a 401 can tell a stale token from a refused one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Used {
    /// No Authorization header.
    Anonymous,
    /// Basic credentials.
    Basic,
    /// The bearer token with this cache id.
    Bearer(u64),
}

/// Authentication state shared by all clones of a client.
#[derive(Debug)]
pub(crate) struct Auth {
    explicit: Option<Credential>,
    auth_file: Option<PathBuf>,
    creds: Mutex<HashMap<String, Option<Credential>>>,
    schemes: Mutex<HashMap<String, Scheme>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
    fetch: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// `--plain-http-credentials`: credentials may go over plain HTTP to non-loopback hosts.
    plain_http_credentials: bool,
    /// Hosts already warned about, so a pull of many blobs warns once per host.
    warned: Mutex<std::collections::HashSet<String>>,
}

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

/// The token scope for a repository: `repository:<name>:pull[,push]`.
pub(crate) fn scope(repository: &str, push: bool) -> String {
    format!(
        "repository:{repository}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

fn basic_header(username: &str, password: &Secret) -> HeaderValue {
    let enc = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.expose()));
    let mut h = HeaderValue::from_str(&format!("Basic {enc}")).expect("base64 is a valid header");
    h.set_sensitive(true);
    h
}

fn bearer_header(token: &Secret) -> Result<HeaderValue, RegistryError> {
    let mut h = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        RegistryError::Config(
            "the token service returned a token that is not a valid header value".into(),
        )
    })?;
    h.set_sensitive(true);
    Ok(h)
}

impl Auth {
    /// Auth state with optional explicit credentials and credentials file.
    pub(crate) fn new(
        username: Option<String>,
        password: Option<String>,
        auth_file: Option<PathBuf>,
        plain_http_credentials: bool,
    ) -> Result<Self, RegistryError> {
        let explicit = match (username, password) {
            (Some(u), Some(p)) => Some(Credential::Basic {
                username: u,
                password: Secret::new(p),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(RegistryError::Config(
                    "a user name was given without a password".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(RegistryError::Config(
                    "a password was given without a user name".into(),
                ));
            }
        };
        Ok(Auth {
            explicit,
            auth_file,
            creds: Mutex::default(),
            schemes: Mutex::default(),
            tokens: Mutex::default(),
            fetch: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            plain_http_credentials,
            warned: Mutex::default(),
        })
    }

    /// The credential for a registry, looked up once (helpers run off the async threads).
    async fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(c) = &self.explicit {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = self.creds.lock().expect("creds lock").get(registry) {
            return Ok(c.clone());
        }
        let (reg, file) = (registry.to_string(), self.auth_file.clone());
        let found = tokio::task::spawn_blocking(move || credentials::lookup(&reg, file.as_deref()))
            .await
            .map_err(|e| {
                RegistryError::Config(format!("credential lookup for {registry} panicked: {e}"))
            })??;
        self.creds
            .lock()
            .expect("creds lock")
            .insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// Called before credentials go to `host` over plain HTTP: loopback is fine, anything else
    /// needs `plain_http_credentials` and is then warned about once per host.
    fn plain_http_guard(
        &self,
        host: &str,
        denied: &dyn Fn(String) -> RegistryError,
    ) -> Result<(), RegistryError> {
        if crate::reference::is_loopback_host(host) {
            return Ok(());
        }
        if !self.plain_http_credentials {
            return Err(denied(format!(
                "refusing to send credentials to {host} over plain HTTP (anyone on the network \
                 path can read them); use HTTPS, or pass --plain-http-credentials to accept the risk"
            )));
        }
        if self
            .warned
            .lock()
            .expect("warned lock")
            .insert(host.to_string())
        {
            tracing::warn!(
                "sending credentials to {host} over plain HTTP (--plain-http-credentials): anyone \
                 on the network path can read them"
            );
        }
        Ok(())
    }

    fn cached_token(&self, registry: &str, scope: &str) -> Option<Token> {
        let tokens = self.tokens.lock().expect("token lock");
        tokens
            .get(&(registry.to_string(), scope.to_string()))
            .filter(|t| t.expires > Instant::now())
            .cloned()
    }

    /// The Authorization header to send to `registry` for `scope`, if we know one.
    pub(crate) async fn header(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        registry: &str,
        repository: &str,
        scope: &str,
    ) -> Result<(Option<HeaderValue>, Used), RegistryError> {
        let scheme = self
            .schemes
            .lock()
            .expect("scheme lock")
            .get(registry)
            .cloned();
        match scheme {
            None => Ok((None, Used::Anonymous)),
            Some(Scheme::Basic) => match self.credential(registry).await? {
                Some(Credential::Basic { username, password }) => {
                    Ok((Some(basic_header(&username, &password)), Used::Basic))
                }
                _ => Ok((None, Used::Anonymous)),
            },
            Some(Scheme::Bearer { realm, service }) => {
                if let Some(t) = self.cached_token(registry, scope) {
                    return Ok((Some(bearer_header(&t.value)?), Used::Bearer(t.id)));
                }
                let t = self
                    .refresh(
                        http,
                        policy,
                        registry,
                        repository,
                        scope,
                        &realm,
                        service.as_deref(),
                        None,
                        None,
                    )
                    .await?;
                Ok((Some(bearer_header(&t.value)?), Used::Bearer(t.id)))
            }
        }
    }

    /// Reacts to a 401: learns the scheme from the challenge and gets a fresh credential ready.
    /// `Ok` means "try again"; an error means the registry will not let us in.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn on_unauthorized(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        registry: &str,
        repository: &str,
        scope: &str,
        challenge: Option<&str>,
        used: Used,
        https: bool,
    ) -> Result<(), RegistryError> {
        let denied = |detail: String| RegistryError::Auth {
            registry: crate::reference::display_registry(registry).to_string(),
            repository: repository.to_string(),
            detail,
        };
        let challenges = challenge.map(parse_challenges).unwrap_or_default();
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let basic = challenges.iter().find(|c| c.scheme == "basic");
        if let Some(b) = bearer {
            let realm = b
                .param("realm")
                .ok_or_else(|| denied("401 with a Bearer challenge that has no realm".into()))?
                .to_string();
            let service = b.param("service").map(str::to_string);
            let realm_url = reqwest::Url::parse(&realm).map_err(|_| {
                denied(format!(
                    "the token realm {:?} is not a URL",
                    sanitize(&realm, 100)
                ))
            })?;
            match realm_url.scheme() {
                "https" => {}
                "http" if !https => {
                    if self.credential(registry).await?.is_some() {
                        let host = match realm_url.port() {
                            Some(p) => format!("{}:{p}", realm_url.host_str().unwrap_or_default()),
                            None => realm_url.host_str().unwrap_or_default().to_string(),
                        };
                        self.plain_http_guard(&host, &denied)?;
                    }
                }
                "http" => {
                    return Err(denied(format!(
                        "refusing to send credentials to the plain-HTTP token realm {}",
                        redact_url(&realm_url)
                    )));
                }
                s => return Err(denied(format!("unsupported token realm scheme {s:?}"))),
            }
            self.schemes.lock().expect("scheme lock").insert(
                registry.to_string(),
                Scheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            let stale = match used {
                Used::Bearer(id) => Some(id),
                _ => None,
            };
            self.refresh(
                http,
                policy,
                registry,
                repository,
                scope,
                &realm,
                service.as_deref(),
                b.param("scope"),
                Some(stale),
            )
            .await?;
            return Ok(());
        }
        if basic.is_some() {
            if used == Used::Basic {
                return Err(denied(
                    "401 Unauthorized: the registry refused the user name and password".into(),
                ));
            }
            let cred = self.credential(registry).await?;
            if cred.is_some() && !https {
                self.plain_http_guard(registry, &denied)?;
            }
            return match cred {
                Some(Credential::Basic { .. }) => {
                    self.schemes
                        .lock()
                        .expect("scheme lock")
                        .insert(registry.to_string(), Scheme::Basic);
                    Ok(())
                }
                Some(Credential::IdentityToken(_)) => Err(denied(
                    "the registry wants Basic auth but only an identity token is stored".into(),
                )),
                None => Err(denied(
                    "401 Unauthorized: the registry requires credentials".into(),
                )),
            };
        }
        Err(denied(if challenges.is_empty() {
            "401 Unauthorized without a WWW-Authenticate challenge".into()
        } else {
            format!(
                "401 Unauthorized with an unsupported challenge scheme {:?}",
                challenges[0].scheme
            )
        }))
    }

    /// Gets a token for `scope`, one fetch at a time. With `stale = Some(id)` a token with that id
    /// is not reused (it just failed); a token another task fetched meanwhile is.
    #[allow(clippy::too_many_arguments)]
    async fn refresh(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        registry: &str,
        repository: &str,
        scope: &str,
        realm: &str,
        service: Option<&str>,
        challenge_scope: Option<&str>,
        stale: Option<Option<u64>>,
    ) -> Result<Token, RegistryError> {
        let _guard = self.fetch.lock().await;
        if let Some(t) = self.cached_token(registry, scope) {
            let failed = matches!(stale, Some(Some(id)) if id == t.id);
            if !failed {
                return Ok(t);
            }
        }
        let cred = self.credential(registry).await?;
        let ask_scope = challenge_scope.unwrap_or(scope);
        let (value, lifetime) = self
            .fetch_token(
                http,
                policy,
                registry,
                repository,
                realm,
                service,
                ask_scope,
                cred.as_ref(),
            )
            .await?;
        let t = Token {
            value,
            expires: token_expiry(Instant::now(), lifetime),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        self.tokens
            .lock()
            .expect("token lock")
            .insert((registry.to_string(), scope.to_string()), t.clone());
        tracing::debug!(registry, scope, "obtained a bearer token");
        Ok(t)
    }

    /// One token request, retried on transient failures.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_token(
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
            let rb = match cred {
                Some(Credential::IdentityToken(refresh)) => {
                    let mut form = reqwest::Url::parse("http://form.invalid/").expect("static URL");
                    {
                        let mut q = form.query_pairs_mut();
                        q.append_pair("grant_type", "refresh_token");
                        q.append_pair("refresh_token", refresh.expose());
                        q.append_pair("client_id", "fspack");
                        q.append_pair("scope", scope);
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
                        q.append_pair("scope", scope);
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
            };
            let transient = match rb.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let body = crate::response::read_capped(resp, MAX_TOKEN_BODY).await;
                    match body {
                        Ok(b) => {
                            let (tok, lifetime) =
                                parse_token_answer(&b).map_err(|why| RegistryError::Protocol {
                                    url: shown.clone(),
                                    detail: match why {
                                        BadToken::NotJson => {
                                            "the token service did not answer with token JSON"
                                        }
                                        BadToken::NoToken => {
                                            "the token service answered without a token"
                                        }
                                    }
                                    .into(),
                                })?;
                            return Ok((Secret::new(tok), lifetime));
                        }
                        Err(e) => e.to_string(),
                    }
                }
                Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                    let who = match cred {
                        Some(Credential::Basic { username, .. }) => {
                            format!("the token service refused the credentials of {username:?}")
                        }
                        Some(Credential::IdentityToken(_)) => {
                            "the token service refused the stored identity token".into()
                        }
                        None => "the token service refused anonymous access".into(),
                    };
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
