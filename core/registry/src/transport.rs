//! One request against a registry, done right: credentials attached only for the registry's own
//! origin, a 401 answered by re-authenticating once, redirects followed by hand (Range kept,
//! Authorization never sent to another host, no https→http downgrade), and every outcome sorted
//! into "done", "retry after a pause" or "fatal". Callers with restartable bodies loop with
//! [`Client::send`]; uploads loop themselves because a streamed body cannot simply be resent.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{Used, scope};
use crate::client::Client;
use crate::error::RegistryError;
use crate::redact::redact_url;
use crate::reference::Reference;
pub(crate) use crate::response::{
    ReadError, auth_error, error_detail, net_error, protocol, read_capped, status_error, unexpected,
};
use crate::retry::{causes, parse_retry_after, retryable_status, retryable_transport};

const MAX_REDIRECTS: usize = 10;
/// Retries of a refused connection before any server has answered the client.
const FIRST_CONTACT_RETRIES: u32 = 1;

/// A request body.
pub(crate) enum ReqBody {
    /// No body.
    Empty,
    /// Bytes that can be sent again.
    Bytes(Bytes),
    /// A body made fresh for each attempt (a streamed blob).
    Stream(Box<dyn Fn() -> reqwest::Body + Send + Sync>),
}

/// A request to a registry.
pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: ReqBody,
    /// Use the HTTP/1.1 bulk client.
    pub bulk: bool,
}

impl Req {
    pub(crate) fn new(method: Method, url: Url) -> Self {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: ReqBody::Empty,
            bulk: false,
        }
    }
}

/// Which repository and access a request is for (the token scope).
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub r: &'a Reference,
    pub push: bool,
}

/// What one attempt came to.
pub(crate) enum Outcome {
    /// A response for the caller to judge (success, 404, 416, …).
    Done(Response),
    /// Transient trouble; `wait` is the server's `Retry-After`; `free` retries do not count.
    Retry {
        wait: Option<Duration>,
        free: bool,
        error: RegistryError,
    },
    /// Give up.
    Fatal(RegistryError),
}

/// Retry bookkeeping for one logical request.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    /// Retries used so far.
    pub retries: u32,
    /// Whether a 401 was already answered by re-authenticating.
    pub reauthed: bool,
    /// Whether an attempt already timed out waiting for the registry.
    pub stalled: bool,
    /// Whether the last attempt's connection was refused before any server had answered this
    /// client: it gets [`FIRST_CONTACT_RETRIES`] retries, not the policy's.
    pub unheard: bool,
}

impl Client {
    /// One attempt of `req`, following redirects.
    pub(crate) async fn attempt(&self, ctx: Ctx<'_>, req: &Req, st: &mut Attempts) -> Outcome {
        let inner = &self.inner;
        let home = match self.repo_url(ctx.r, "") {
            Ok(u) => u.origin(),
            Err(e) => return Outcome::Fatal(e),
        };
        // No repository (a login check of `/v2/`): a token without scope, as docker asks.
        let scope = if ctx.r.repository.is_empty() {
            String::new()
        } else {
            scope(&ctx.r.repository, ctx.push)
        };
        let redirectable = req.method == Method::GET || req.method == Method::HEAD;
        let mut url = req.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let same_origin = url.origin() == home;
            let (auth, used) = if same_origin {
                match inner
                    .auth
                    .header(
                        &inner.api,
                        &inner.policy,
                        &ctx.r.registry,
                        &ctx.r.repository,
                        &scope,
                    )
                    .await
                {
                    Ok(x) => x,
                    Err(e) => return Outcome::Fatal(e),
                }
            } else {
                (None, Used::Anonymous)
            };
            let resp = match self.send_once(req, &url, auth).await {
                Ok(r) => {
                    inner.answered.store(true, Ordering::Relaxed);
                    st.unheard = false;
                    r
                }
                Err(e) => {
                    // A second stall in a row means a registry that accepts and then says
                    // nothing: more waits would only hide that it is down.
                    let stalled_again = e.is_timeout() && st.stalled;
                    st.stalled |= e.is_timeout();
                    // A refused connection before any server has answered this client is a
                    // wrong host or port far more often than a registry restarting: one quick
                    // retry, then the error.
                    // Once a registry has answered, the full retries ride out its restart.
                    st.unheard = e.is_connect() && !inner.answered.load(Ordering::Relaxed);
                    let retry = retryable_transport(&e) && !stalled_again;
                    let err = net_error(req.method.as_str(), &url, e, st.retries + 1);
                    return if retry {
                        Outcome::Retry {
                            wait: None,
                            free: false,
                            error: err,
                        }
                    } else {
                        Outcome::Fatal(err)
                    };
                }
            };
            let status = resp.status();
            if status.is_redirection() && redirectable {
                match redirect_target(&url, &resp) {
                    Ok(next) => url = next,
                    Err(e) => return Outcome::Fatal(e),
                }
                continue;
            }
            if !same_origin && matches!(status.as_u16(), 401 | 403) {
                // An expired presigned URL: start over at the registry for a fresh one.
                let error = status_error(req.method.as_str(), &url, resp, st.retries + 1).await;
                return Outcome::Retry {
                    wait: None,
                    free: false,
                    error,
                };
            }
            if status == StatusCode::UNAUTHORIZED {
                return self.reauthenticate(ctx, &scope, &url, resp, used, st).await;
            }
            if status == StatusCode::FORBIDDEN {
                return Outcome::Fatal(auth_error(ctx.r, error_detail(resp).await));
            }
            if retryable_status(status) {
                let wait = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let error = status_error(req.method.as_str(), &url, resp, st.retries + 1).await;
                return Outcome::Retry {
                    wait,
                    free: false,
                    error,
                };
            }
            return Outcome::Done(resp);
        }
        Outcome::Fatal(protocol(
            &req.url,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }

    /// Sends `req` to `url` once, with the `auth` header when given.
    async fn send_once(
        &self,
        req: &Req,
        url: &Url,
        auth: Option<reqwest::header::HeaderValue>,
    ) -> Result<Response, reqwest::Error> {
        let inner = &self.inner;
        let http = if req.bulk { &inner.bulk } else { &inner.api };
        let mut rb = http
            .request(req.method.clone(), url.clone())
            .headers(req.headers.clone());
        if let Some(h) = auth {
            rb = rb.header(AUTHORIZATION, h);
        }
        rb = match &req.body {
            ReqBody::Empty => rb,
            ReqBody::Bytes(b) => rb.body(b.clone()),
            ReqBody::Stream(make) => rb.body(make()),
        };
        tracing::debug!(method = %req.method, url = %redact_url(url), "request");
        rb.send().await
    }

    /// Answers a 401 from the registry: authenticates anew from its challenge (once per
    /// request; `used` is what the refused request carried) and asks for an immediate retry.
    async fn reauthenticate(
        &self,
        ctx: Ctx<'_>,
        scope: &str,
        url: &Url,
        resp: Response,
        used: Used,
        st: &mut Attempts,
    ) -> Outcome {
        let inner = &self.inner;
        if st.reauthed {
            let detail = format!("{}: credentials refused", error_detail(resp).await);
            return Outcome::Fatal(auth_error(ctx.r, detail));
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let https = url.scheme() == "https";
        match inner
            .auth
            .on_unauthorized(
                &inner.api,
                &inner.policy,
                &ctx.r.registry,
                &ctx.r.repository,
                scope,
                challenge.as_deref(),
                used,
                https,
            )
            .await
        {
            Ok(()) => {
                st.reauthed = true;
                Outcome::Retry {
                    wait: Some(Duration::ZERO),
                    free: true,
                    error: auth_error(ctx.r, "401 Unauthorized".into()),
                }
            }
            Err(e) => Outcome::Fatal(e),
        }
    }

    /// Counts a retry and sleeps, or returns `error` when the retries are used up.
    pub(crate) async fn pause(
        &self,
        st: &mut Attempts,
        wait: Option<Duration>,
        free: bool,
        error: RegistryError,
    ) -> Result<(), RegistryError> {
        if free {
            return Ok(());
        }
        st.retries += 1;
        let max = if st.unheard {
            FIRST_CONTACT_RETRIES.min(self.inner.policy.max_retries)
        } else {
            self.inner.policy.max_retries
        };
        if st.retries > max {
            return Err(error);
        }
        let d = self.inner.policy.delay(st.retries, wait);
        let what = match &error {
            RegistryError::Network { action, url, .. } => format!("cannot {action} {url}"),
            other => other.to_string(),
        };
        tracing::warn!(
            "{what}: {}; retry {} of {max} in {:.1} s",
            // The last cause says what went wrong on the wire (`Connection refused`).
            causes(&error)
                .last()
                .map(ToString::to_string)
                .unwrap_or_default(),
            st.retries,
            d.as_secs_f64()
        );
        tokio::time::sleep(d).await;
        Ok(())
    }

    /// Sends `req` until it gets a response to judge, retrying transient failures.
    pub(crate) async fn send(&self, ctx: Ctx<'_>, req: &Req) -> Result<Response, RegistryError> {
        let mut st = Attempts::default();
        self.send_with(ctx, req, &mut st).await
    }

    /// [`Client::send`] with caller-held bookkeeping (body errors after it count too).
    pub(crate) async fn send_with(
        &self,
        ctx: Ctx<'_>,
        req: &Req,
        st: &mut Attempts,
    ) -> Result<Response, RegistryError> {
        loop {
            match self.attempt(ctx, req, st).await {
                Outcome::Done(r) => return Ok(r),
                Outcome::Fatal(e) => return Err(e),
                Outcome::Retry { wait, free, error } => self.pause(st, wait, free, error).await?,
            }
        }
    }
}

/// Where the redirect `resp` to a request for `url` points.
///
/// Errors: [`RegistryError`] (protocol) for a redirect without a usable `Location`, or from
/// https to anything else.
fn redirect_target(url: &Url, resp: &Response) -> Result<Url, RegistryError> {
    let status = resp.status();
    let Some(next) = resp
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url.join(l).ok())
    else {
        return Err(protocol(url, format!("{status} without a usable Location")));
    };
    if url.scheme() == "https" && next.scheme() != "https" {
        return Err(protocol(
            url,
            format!("refusing a redirect from https to {}", redact_url(&next)),
        ));
    }
    tracing::debug!(from = %redact_url(url), to = %redact_url(&next), "following redirect");
    Ok(next)
}
