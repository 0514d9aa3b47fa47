//! Reading and classifying a registry's responses: bodies read with a cap, the short error text
//! from a distribution-spec error body, and network errors with a hint. Shared by the request
//! transport and by the token fetch in `auth`, which must not import each other (issue 16).

use reqwest::{Response, StatusCode, Url};

use crate::error::{Failure, RegistryError};
use crate::redact::{redact_url, sanitize};
use crate::reference::{Reference, display_registry};
use crate::retry::{causes, looks_like_plain_http_server};

/// Largest error body we read for its code and message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// A [`RegistryError::Network`] from a transport error, with a hint when an https request met a
/// plain-HTTP server.
pub(crate) fn net_error(
    action: &str,
    url: &Url,
    e: reqwest::Error,
    attempts: u32,
) -> RegistryError {
    let e = e.without_url();
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    let hint = if url.scheme() == "https" && looks_like_plain_http_server(&e) {
        Some("the server answered in plain HTTP: pass --plain-http".to_string())
    } else if e.is_timeout() {
        Some(format!(
            "{host}:{port} accepted the connection but sent nothing in time: the registry is \
             overloaded or hung (FSPACK_READ_TIMEOUT_MS sets how long to wait)"
        ))
    } else if causes(&e).any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    }) {
        Some(format!(
            "nothing listens at {host}:{port}: check the registry in the reference and that it \
             is running"
        ))
    } else if causes(&e).any(|c| c.to_string().contains("dns error")) {
        Some(unresolved_hint(host))
    } else {
        None
    };
    RegistryError::Network {
        action: action.to_string(),
        url: redact_url(url),
        attempts,
        hint,
        source: Box::new(e),
    }
}

/// What to say when `host` does not resolve. A reference without a registry host means Docker
/// Hub, which the user may not have meant (s12 fresh-eyes pass: `pull test/app:v1` only said
/// registry-1.docker.io could not be resolved).
fn unresolved_hint(host: &str) -> String {
    if host == crate::reference::DOCKER_HUB_REGISTRY {
        format!(
            "cannot resolve {host}, Docker Hub's registry, which a reference without a host \
             names: put the registry first (HOST[:PORT]/REPO:TAG), or check the network"
        )
    } else {
        format!("cannot resolve {host}: check the registry's name")
    }
}

/// A [`RegistryError::Network`] for a transient status (5xx, 408, 429), with the registry's words.
pub(crate) async fn status_error(
    action: &str,
    url: &Url,
    resp: Response,
    attempts: u32,
) -> RegistryError {
    let detail = error_detail(resp).await;
    RegistryError::Network {
        action: action.to_string(),
        url: redact_url(url),
        attempts,
        hint: None,
        source: Box::new(Failure(format!("the registry answered {detail}"))),
    }
}

pub(crate) fn protocol(url: &Url, detail: String) -> RegistryError {
    RegistryError::Protocol {
        url: redact_url(url),
        detail,
    }
}

pub(crate) fn auth_error(r: &Reference, detail: String) -> RegistryError {
    RegistryError::Auth {
        registry: display_registry(&r.registry).to_string(),
        repository: r.repository.clone(),
        detail,
    }
}

/// An unexpected response as a [`RegistryError::Protocol`].
pub(crate) async fn unexpected(url: &Url, resp: Response) -> RegistryError {
    protocol(url, error_detail(resp).await)
}

/// Status plus the first `{"errors":[{"code","message"}]}` entry of the body, sanitised and capped.
pub(crate) async fn error_detail(resp: Response) -> String {
    let status = resp.status();
    let body = read_capped(resp, MAX_ERROR_BODY).await.unwrap_or_default();
    error_summary(status, &body)
}

/// The text form of [`error_detail`]: any body, however hostile, gives a short line.
pub(crate) fn error_summary(status: StatusCode, body: &[u8]) -> String {
    let mut out = status.to_string();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(e) = v.get("errors").and_then(|e| e.get(0))
    {
        if let Some(code) = e.get("code").and_then(|c| c.as_str()) {
            out.push_str(&format!(": {}", sanitize(code, 64)));
        }
        if let Some(msg) = e.get("message").and_then(|c| c.as_str()) {
            out.push_str(&format!(": {}", sanitize(msg, 200)));
        }
    }
    out
}

/// Why a capped read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    TooLarge(usize),
    Body(reqwest::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge(cap) => write!(f, "body larger than {cap} bytes"),
            ReadError::Body(e) => write!(f, "body cut: {e}"),
        }
    }
}

/// Reads a whole body, failing past `cap` bytes.
pub(crate) async fn read_capped(mut resp: Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge(cap));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ReadError::Body(e.without_url()))?
    {
        if out.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge(cap));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unresolved_docker_hub_says_a_reference_without_a_host_names_it() {
        let hub = unresolved_hint("registry-1.docker.io");
        assert!(hub.contains("without a host"), "{hub}");
        assert!(hub.contains("HOST[:PORT]/REPO:TAG"), "{hub}");
        let other = unresolved_hint("reg.example");
        assert_eq!(
            other,
            "cannot resolve reg.example: check the registry's name"
        );
    }
}
