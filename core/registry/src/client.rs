//! The client handle and its options: two reqwest clients (one for API calls that may use HTTP/2,
//! one HTTP/1.1-only for bulk transfers so parallel ranges get their own connections), the retry
//! policy and the shared auth state, all behind one `Arc` so clones are cheap.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Auth;
use crate::error::RegistryError;
use crate::reference::{Reference, is_loopback_host};
use crate::retry::{RetryPolicy, env_millis};

/// The default [`ClientOptions::timeout_read`]: 30 s without a byte from a registry that
/// accepted the request.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach registries and authenticate to them.
#[derive(Clone)]
pub struct ClientOptions {
    /// Use plain HTTP for every registry (loopback hosts use it anyway).
    pub plain_http: bool,
    /// Accept any TLS certificate (self-signed test registries).
    pub insecure_tls: bool,
    /// User name; with `password`, overrides stored credentials.
    pub username: Option<String>,
    /// Password or token for `username`.
    pub password: Option<String>,
    /// Credentials file to read instead of the Docker and containers defaults.
    pub auth_file: Option<PathBuf>,
    /// Retries after the first attempt for transient failures.
    pub max_retries: u32,
    /// The User-Agent header.
    pub user_agent: String,
    /// Connect timeout.
    pub timeout_connect: Duration,
    /// Longest wait for the next bytes of a response (also for the answer to an upload's final
    /// PUT) before the request counts as stalled: [`DEFAULT_READ_TIMEOUT`], or
    /// `FSPACK_READ_TIMEOUT_MS`. Blob transfers get twice this: a registry may hash a large
    /// blob before it answers the upload's last PUT. A request that stalls twice is not tried
    /// again: a registry that accepts connections and then says nothing is down, and five more
    /// waits would only hide it.
    pub timeout_read: Duration,
    /// First backoff step; `None` reads `FSPACK_RETRY_BASE_MS` (default 200 ms).
    pub retry_base: Option<Duration>,
    /// Fixed name resolutions (like curl's `--resolve`), mostly for tests.
    pub resolve: Vec<(String, SocketAddr)>,
    /// Allow credentials to travel over plain HTTP to a host that is not loopback (issue 12:
    /// anyone on the path reads them); a warning is logged each time a registry gets them.
    pub plain_http_credentials: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure_tls: false,
            username: None,
            password: None,
            auth_file: None,
            max_retries: 5,
            user_agent: format!("fspack-registry/{}", env!("CARGO_PKG_VERSION")),
            timeout_connect: Duration::from_secs(15),
            timeout_read: env_millis("FSPACK_READ_TIMEOUT_MS", DEFAULT_READ_TIMEOUT),
            retry_base: None,
            resolve: Vec::new(),
            plain_http_credentials: false,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("plain_http", &self.plain_http)
            .field("insecure_tls", &self.insecure_tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("auth_file", &self.auth_file)
            .field("max_retries", &self.max_retries)
            .field("user_agent", &self.user_agent)
            .field("timeout_connect", &self.timeout_connect)
            .field("timeout_read", &self.timeout_read)
            .field("retry_base", &self.retry_base)
            .field("resolve", &self.resolve)
            .finish()
    }
}

/// An OCI distribution client; cheap to clone and safe to use from many tasks at once.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("plain_http", &self.inner.plain_http)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) api: reqwest::Client,
    pub(crate) bulk: reqwest::Client,
    pub(crate) policy: RetryPolicy,
    pub(crate) auth: Auth,
    pub(crate) plain_http: bool,
    /// Whether any server has answered this client yet: until one has, a refused connection
    /// is most likely a wrong host or port, not a registry restarting (see `transport`).
    pub(crate) answered: std::sync::atomic::AtomicBool,
}

impl Client {
    /// Builds a client; fails only on unusable options.
    pub fn new(opts: ClientOptions) -> Result<Client, RegistryError> {
        let build = |http1: bool, read_timeout: Duration| {
            let mut b = reqwest::Client::builder()
                .user_agent(opts.user_agent.clone())
                .connect_timeout(opts.timeout_connect)
                .read_timeout(read_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(16)
                .tls_danger_accept_invalid_certs(opts.insecure_tls);
            if http1 {
                b = b.http1_only();
            }
            for (host, addr) in &opts.resolve {
                b = b.resolve(host, *addr);
            }
            b.build()
                .map_err(|e| RegistryError::Config(format!("cannot set up the HTTP client: {e}")))
        };
        Ok(Client {
            inner: Arc::new(Inner {
                api: build(false, opts.timeout_read)?,
                bulk: build(true, opts.timeout_read.saturating_mul(2))?,
                policy: RetryPolicy::new(opts.max_retries, opts.retry_base),
                auth: Auth::new(
                    opts.username.clone(),
                    opts.password.clone(),
                    opts.auth_file.clone(),
                    opts.plain_http_credentials,
                )?,
                plain_http: opts.plain_http,
                answered: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// `http` or `https` for a registry.
    pub(crate) fn scheme(&self, registry: &str) -> &'static str {
        if self.inner.plain_http || is_loopback_host(registry) {
            "http"
        } else {
            "https"
        }
    }

    /// `<scheme>://<registry>/v2/<repository>/<tail>`; every piece was validated at parse time.
    pub(crate) fn repo_url(
        &self,
        r: &Reference,
        tail: &str,
    ) -> Result<reqwest::Url, RegistryError> {
        let s = format!(
            "{}://{}/v2/{}/{}",
            self.scheme(&r.registry),
            r.registry,
            r.repository,
            tail
        );
        reqwest::Url::parse(&s).map_err(|e| RegistryError::InvalidReference {
            input: r.to_string(),
            reason: format!("does not make a valid URL: {e}"),
        })
    }
}
