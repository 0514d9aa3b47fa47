//! Registry authentication: anonymous first; on a 401, the `WWW-Authenticate` challenge decides
//! between Basic and the Bearer token flow (token GET with Basic credentials, or the OAuth2
//! `refresh_token` grant for identity tokens). Tokens are cached per (registry, scope) with their
//! expiry; one task at a time fetches, so sixteen parallel range requests cause one token request.

pub(crate) mod challenge;
pub(crate) mod credentials;
pub(crate) mod token;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine;
use reqwest::header::HeaderValue;

use crate::error::RegistryError;
use crate::redact::{Secret, redact_url, sanitize};
use crate::retry::RetryPolicy;
use challenge::parse_challenges;
use credentials::Credential;
use token::token_expiry;

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
        denied: &(dyn Fn(String) -> RegistryError + Sync),
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
            let (realm, service) = self.token_realm(registry, b, https, &denied).await?;
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
            return self.adopt_basic(registry, used, https, &denied).await;
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

    /// The realm and service of a Bearer challenge `b`, once the realm is a URL fspack may
    /// send credentials to: https, or plain http for a plain-http registry the user allowed.
    async fn token_realm(
        &self,
        registry: &str,
        b: &challenge::Challenge,
        https: bool,
        denied: &(dyn Fn(String) -> RegistryError + Sync),
    ) -> Result<(String, Option<String>), RegistryError> {
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
                    self.plain_http_guard(&host, denied)?;
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
        Ok((realm, service))
    }

    /// Answers a Basic challenge: Basic auth from then on when a user name and password are
    /// stored (`used`: what the refused request carried).
    async fn adopt_basic(
        &self,
        registry: &str,
        used: Used,
        https: bool,
        denied: &(dyn Fn(String) -> RegistryError + Sync),
    ) -> Result<(), RegistryError> {
        if used == Used::Basic {
            return Err(denied(
                "401 Unauthorized: the registry refused the user name and password".into(),
            ));
        }
        let cred = self.credential(registry).await?;
        if cred.is_some() && !https {
            self.plain_http_guard(registry, denied)?;
        }
        match cred {
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
        }
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
}
