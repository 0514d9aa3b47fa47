//! The small API calls: blob existence, manifest push and fetch (size-capped and digest-checked),
//! and tag listing with `Link` pagination.

use bytes::Bytes;
use fspack_digest::Digest;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LINK};
use reqwest::{Method, StatusCode};

use crate::client::Client;
use crate::digest::{Algorithm, Hasher, parse_digest, verify_bytes};
use crate::error::RegistryError;
use crate::manifest::{ACCEPT_MANIFESTS, MEDIA_TYPE_IMAGE_MANIFEST};
use crate::redact::redact_url;
use crate::reference::{Reference, validate_tag};
use crate::transport::{Attempts, Ctx, ReadError, Req, ReqBody, protocol, read_capped, unexpected};

/// Largest manifest we read (containers/image and oras use the same cap).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;
const MAX_TAG_PAGES: usize = 1000;

/// The `Docker-Content-Digest` header.
pub(crate) const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

fn not_found(r: &Reference, what: String) -> RegistryError {
    RegistryError::NotFound {
        what,
        reference: r.repo_display(),
    }
}

impl Client {
    /// Checks that `registry` (`host[:port]`) accepts this client's credentials, as `docker
    /// login` does before storing them: `GET /v2/`, answering a 401 with the Basic or token flow
    /// the challenge asks for (the token without a repository scope).
    ///
    /// Errors: [`RegistryError::Auth`] when the credentials are refused, `Network` after the
    /// retries when the registry cannot be reached, `Protocol` for another answer.
    pub async fn check_credentials(&self, registry: &str) -> Result<(), RegistryError> {
        let r = Reference {
            registry: registry.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        let url = reqwest::Url::parse(&format!("{}://{registry}/v2/", self.scheme(registry)))
            .map_err(|e| RegistryError::InvalidReference {
                input: registry.to_string(),
                reason: format!("does not make a valid URL: {e}"),
            })?;
        let resp = self
            .send(
                Ctx { r: &r, push: false },
                &Req::new(Method::GET, url.clone()),
            )
            .await
            .map_err(|e| match e {
                RegistryError::Auth {
                    registry, detail, ..
                } => RegistryError::Auth {
                    registry,
                    repository: "the registry API (/v2/)".into(),
                    detail,
                },
                e => e,
            })?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(unexpected(&url, resp).await)
    }

    /// Asks whether the repository has a blob; returns its size if so.
    pub async fn blob_exists(
        &self,
        r: &Reference,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.repo_url(r, &format!("blobs/{digest}"))?;
        let resp = self
            .send(Ctx { r, push: false }, &Req::new(Method::HEAD, url.clone()))
            .await?;
        match resp.status() {
            StatusCode::OK => {
                let size = resp
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        protocol(&url, "200 to a blob HEAD without a Content-Length".into())
                    })?;
                Ok(Some(size))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected(&url, resp).await),
        }
    }

    /// Uploads a manifest under a tag or its digest (text: checked here); returns its digest.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<Digest, RegistryError> {
        Ok(self
            .put_manifest(r, tag_or_digest, media_type, body)
            .await?
            .0)
    }

    /// Uploads a manifest that has a `subject` (a referrer) by its digest; returns whether the
    /// registry indexed it for the referrers API: the `OCI-Subject` response header
    /// (distribution-spec v1.1, "Pushing Manifests with Subject"). Where it did not, the client
    /// must maintain the referrers tag (`<alg>-<hex>` of the subject) itself.
    ///
    /// Errors: those of [`Client::push_manifest`].
    pub async fn push_referrer(
        &self,
        r: &Reference,
        digest: &Digest,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<bool, RegistryError> {
        Ok(self
            .put_manifest(r, digest.as_str(), media_type, body)
            .await?
            .1)
    }

    /// [`Client::push_manifest`], also saying whether the response named a subject.
    async fn put_manifest(
        &self,
        r: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<(Digest, bool), RegistryError> {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(&body);
        let digest = h.finish();
        if tag_or_digest.contains(':') {
            verify_bytes(
                &format!("manifest for {}", r.repo_display()),
                &parse_digest(tag_or_digest)?,
                &body,
            )?;
        } else {
            validate_tag(tag_or_digest).map_err(|reason| RegistryError::InvalidReference {
                input: tag_or_digest.into(),
                reason,
            })?;
        }
        if body.len() > MAX_MANIFEST_SIZE {
            return Err(RegistryError::Config(format!(
                "manifest of {} bytes is over the {MAX_MANIFEST_SIZE}-byte limit registries accept",
                body.len()
            )));
        }
        let url = self.repo_url(r, &format!("manifests/{tag_or_digest}"))?;
        let mut req = Req::new(Method::PUT, url.clone());
        req.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .map_err(|_| RegistryError::Config(format!("invalid media type {media_type:?}")))?,
        );
        req.body = ReqBody::Bytes(Bytes::from(body));
        let resp = self.send(Ctx { r, push: true }, &req).await?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => {}
            StatusCode::NOT_FOUND => return Err(not_found(r, "repository".into())),
            _ => return Err(unexpected(&url, resp).await),
        }
        if let Some(claimed) = resp
            .headers()
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            && claimed.starts_with("sha256:")
            && claimed != digest.as_str()
        {
            return Err(RegistryError::DigestMismatch {
                what: format!(
                    "manifest stored at {} (Docker-Content-Digest)",
                    r.repo_display()
                ),
                expected: digest.to_string(),
                actual: claimed.to_string(),
            });
        }
        let indexed = resp.headers().contains_key("oci-subject");
        tracing::debug!(reference = %r, %digest, indexed, "manifest pushed");
        Ok((digest, indexed))
    }

    /// Fetches a manifest by `r.digest`, else `r.tag`, else `latest`; returns media type, bytes
    /// and digest. Bodies over 4 MiB are refused; the digest is checked when fetching by digest
    /// and whenever the registry sends `Docker-Content-Digest`.
    pub async fn get_manifest(
        &self,
        r: &Reference,
    ) -> Result<(String, Vec<u8>, Digest), RegistryError> {
        let want = r.tag_or_digest().to_string();
        let algo = r
            .digest
            .as_ref()
            .map_or(Algorithm::Sha256, Digest::algorithm);
        let url = self.repo_url(r, &format!("manifests/{want}"))?;
        let mut req = Req::new(Method::GET, url.clone());
        req.headers
            .insert(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
        let ctx = Ctx { r, push: false };
        let mut st = Attempts::default();
        let (resp_headers, body) = loop {
            let resp = self.send_with(ctx, &req, &mut st).await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Err(not_found(r, format!("manifest {want}"))),
                _ => return Err(unexpected(&url, resp).await),
            }
            let headers = resp.headers().clone();
            match read_capped(resp, MAX_MANIFEST_SIZE).await {
                Ok(b) => break (headers, b),
                Err(ReadError::TooLarge(cap)) => {
                    // Retrying fetches the same bytes: not a network error (issue 13).
                    return Err(RegistryError::InvalidContent {
                        what: format!("manifest {want}"),
                        reference: r.repo_display(),
                        detail: format!("it is larger than the {cap}-byte limit"),
                    });
                }
                Err(ReadError::Body(e)) => {
                    let err = RegistryError::Network {
                        action: "GET".into(),
                        url: redact_url(&url),
                        attempts: st.retries + 1,
                        hint: None,
                        source: Box::new(e),
                    };
                    self.pause(&mut st, None, false, err).await?;
                }
            }
        };
        let what = format!("manifest {want} of {}", r.repo_display());
        let mut h = Hasher::new(algo);
        h.update(&body);
        let digest = h.finish();
        if r.digest.as_ref().is_some_and(|want| want != &digest) {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: want,
                actual: digest.to_string(),
            });
        }
        if let Some(claimed) = resp_headers
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
        {
            let claimed = parse_digest(claimed).map_err(|e| RegistryError::InvalidContent {
                what: format!("Docker-Content-Digest of {what}"),
                reference: r.repo_display(),
                detail: e.to_string(),
            })?;
            verify_bytes(&format!("{what} (Docker-Content-Digest)"), &claimed, &body)?;
        }
        let media_type = resp_headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .filter(|m| {
                !m.is_empty()
                    && m != "application/json"
                    && m != "text/plain"
                    && m != "application/octet-stream"
            })
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.get("mediaType")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
            })
            .unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.to_string());
        Ok((media_type, body, digest))
    }

    /// Fetches a small blob (a signature payload, a config) into memory, refusing bodies over
    /// `max` bytes; the bytes are checked against `digest` before they are returned.
    ///
    /// Errors: `NotFound` when the repository lacks the blob, `Protocol` for an oversized body,
    /// `DigestMismatch` when the bytes do not hash to `digest`.
    pub async fn get_blob_bytes(
        &self,
        r: &Reference,
        digest: &Digest,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = self.repo_url(r, &format!("blobs/{digest}"))?;
        let ctx = Ctx { r, push: false };
        let mut st = Attempts::default();
        let req = Req::new(Method::GET, url.clone());
        let body = loop {
            let resp = self.send_with(ctx, &req, &mut st).await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Err(not_found(r, format!("blob {digest}"))),
                _ => return Err(unexpected(&url, resp).await),
            }
            match read_capped(resp, max).await {
                Ok(b) => break b,
                Err(ReadError::TooLarge(cap)) => {
                    return Err(protocol(&url, format!("blob larger than {cap} bytes")));
                }
                Err(ReadError::Body(e)) => {
                    let err = RegistryError::Network {
                        action: "GET".into(),
                        url: redact_url(&url),
                        attempts: st.retries + 1,
                        hint: None,
                        source: Box::new(e),
                    };
                    self.pause(&mut st, None, false, err).await?;
                }
            }
        };
        verify_bytes(
            &format!("blob {digest} of {}", r.repo_display()),
            digest,
            &body,
        )?;
        Ok(body)
    }

    /// Lists the repository's tags, following `Link: <…>; rel="next"` pages.
    pub async fn list_tags(&self, r: &Reference) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let mut url = self.repo_url(r, "tags/list")?;
        url.query_pairs_mut().append_pair("n", "1000");
        let home = url.origin();
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send(Ctx { r, push: false }, &Req::new(Method::GET, url.clone()))
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Err(not_found(r, "repository".into())),
                _ => return Err(unexpected(&url, resp).await),
            }
            let next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .and_then(|l| url.join(&l).ok());
            let body = read_capped(resp, MAX_MANIFEST_SIZE)
                .await
                .map_err(|e| protocol(&url, format!("tag list: {e}")))?;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|_| protocol(&url, "the tag list is not JSON".into()))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if n.origin() == home => url = n,
                _ => return Ok(tags),
            }
        }
        Err(protocol(
            &url,
            format!("more than {MAX_TAG_PAGES} pages of tags"),
        ))
    }
}

/// The target of the `rel="next"` entry of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<x>; rel="prev", <y>; rel=next"#).as_deref(),
            Some("y")
        );
        assert_eq!(next_link("garbage"), None);
    }
}
