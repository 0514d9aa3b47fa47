//! The policy file: which images may be pulled and mounted, by registry and repository.
//!
//! The shape follows containers-policy.json(5) so that operators read it without a new manual:
//! a `default` list of requirements, and `transports.docker` mapping scopes (`host[:port]`,
//! `host[:port]/namespace`, `host[:port]/repo`, `repo:tag`, `repo@digest`, `*.domain`) to
//! lists; the most specific scope that matches wins, and every requirement in its list must
//! hold. Requirement types: `insecureAcceptAnything`, `reject`, `sigstoreSigned` (with
//! `keyPath` or `keyData`), and fspack's `pinnedDigest` (a list of allowed manifest digests, or,
//! when empty, a reference that names its digest). Anything unknown makes the file unusable:
//! a policy that cannot be read must not silently accept.
//!
//! `oci:` layouts on disk are scoped under `transports.oci`, as containers-policy.json(5) scopes
//! its `oci` transport: `/abs/path:tag`, `/abs/path`, or any parent directory, the most specific
//! first; without a match, `default` applies to them too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use fspack_digest::Digest;
use fspack_registry::Reference;
use serde::Deserialize;

use super::TrustError;
use super::keys::VerifyingKey;

/// One requirement of a scope.
#[derive(Debug, Clone)]
pub enum Requirement {
    /// Anything goes.
    InsecureAcceptAnything,
    /// Nothing goes.
    Reject,
    /// A cosign signature by one of these keys on the manifest digest, naming this repository.
    SigstoreSigned {
        /// The key, loaded when the policy is read.
        key: VerifyingKey,
    },
    /// The manifest digest is one of `digests`; empty: the reference must carry a digest.
    PinnedDigest {
        /// Allowed manifest digests (`sha256:<hex>`), parsed when the policy is read.
        digests: Vec<Digest>,
    },
}

impl Requirement {
    /// A short description for messages: `sigstoreSigned (key /etc/fspack/k.pub)`.
    pub fn describe(&self) -> String {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything".into(),
            Requirement::Reject => "reject".into(),
            Requirement::SigstoreSigned { key } => {
                format!("sigstoreSigned (key {})", key.path.display())
            }
            Requirement::PinnedDigest { digests } if digests.is_empty() => {
                "pinnedDigest (reference must name a digest)".into()
            }
            Requirement::PinnedDigest { digests } => {
                format!("pinnedDigest ({} allowed digests)", digests.len())
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Vec<RawRequirement>,
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<RawRequirement>>>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum RawRequirement {
    // Empty struct variants, not unit ones: serde ignores unknown fields on unit variants.
    InsecureAcceptAnything {},
    Reject {},
    #[serde(rename_all = "camelCase")]
    SigstoreSigned {
        key_path: Option<PathBuf>,
        key_data: Option<String>,
        signed_identity: Option<serde_json::Value>,
    },
    PinnedDigest {
        #[serde(default)]
        digests: Vec<String>,
    },
}

/// A parsed policy: requirements by scope, keys loaded.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    default: Vec<Requirement>,
    docker: BTreeMap<String, Vec<Requirement>>,
    oci: BTreeMap<String, Vec<Requirement>>,
}

/// The requirements that apply to one reference, and the scope they came from.
#[derive(Debug, Clone, Copy)]
pub struct Applicable<'a> {
    /// `default`, `transports.docker."<scope>"` or `transports.oci."<scope>"`.
    pub scope: &'a str,
    /// Every one must hold.
    pub requirements: &'a [Requirement],
}

impl Policy {
    /// Reads and checks a policy file, loading every key it names (relative `keyPath`s are
    /// relative to the policy file's directory).
    ///
    /// Errors: [`TrustError::Missing`] when the file does not exist; [`TrustError::Config`]
    /// naming the file for unreadable JSON, an unknown
    /// requirement type or field, an empty requirement list, a `signedIdentity` other than
    /// `matchRepository`, a malformed digest, or a key that does not load.
    pub fn from_file(path: &Path) -> Result<Policy, TrustError> {
        let text =
            std::fs::read(path).map_err(|e| TrustError::unreadable(path, "policy file", e))?;
        Self::from_slice(&text, path)
    }

    /// [`Policy::from_file`] on bytes already read; `path` names them.
    pub fn from_slice(text: &[u8], path: &Path) -> Result<Policy, TrustError> {
        let raw: RawPolicy = serde_json::from_slice(text).map_err(|e| {
            TrustError::config(
                path,
                format!("not a valid policy (containers-policy.json shape): {e}"),
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let default = convert(raw.default, "default", path, dir)?;
        let (mut docker, mut oci) = (BTreeMap::new(), BTreeMap::new());
        for (transport, scopes) in raw.transports {
            let into = match transport.as_str() {
                "docker" => &mut docker,
                "oci" => &mut oci,
                // Other transports (oci-archive, containers-storage, ...) are not fspack's.
                _ => continue,
            };
            for (scope, reqs) in scopes {
                let label = format!("transports.{transport}.\"{scope}\"");
                let reqs = convert(reqs, &label, path, dir)?;
                into.insert(scope, reqs);
            }
        }
        Ok(Policy {
            path: path.to_path_buf(),
            default,
            docker,
            oci,
        })
    }

    /// The requirements for the tag `tag` of the `oci:` layout at `canonical` (an absolute,
    /// canonical path): `transports.oci` scopes `PATH:TAG`, `PATH`, then each parent directory,
    /// else `default` (containers-policy.json(5), "oci").
    pub fn for_layout(&self, canonical: &Path, tag: &str) -> Applicable<'_> {
        let mut scopes = vec![format!("{}:{tag}", canonical.display())];
        scopes.extend(canonical.ancestors().map(|a| a.display().to_string()));
        self.most_specific(&self.oci, scopes)
    }

    /// The requirements for `r`: the most specific matching scope, else `default`.
    pub fn for_reference(&self, r: &Reference) -> Applicable<'_> {
        self.most_specific(&self.docker, candidate_scopes(r))
    }

    /// The first of `scopes` (most specific first) that `transport` lists, else `default`.
    fn most_specific<'a>(
        &'a self,
        transport: &'a BTreeMap<String, Vec<Requirement>>,
        scopes: Vec<String>,
    ) -> Applicable<'a> {
        for scope in scopes {
            if let Some((k, reqs)) = transport.get_key_value(&scope) {
                return Applicable {
                    scope: k,
                    requirements: reqs,
                };
            }
        }
        Applicable {
            scope: "default",
            requirements: &self.default,
        }
    }
}

/// Scopes that could name `r`, most specific first (containers-policy.json(5), "docker").
fn candidate_scopes(r: &Reference) -> Vec<String> {
    let repo = r.repo_display();
    let mut out = Vec::new();
    if let Some(d) = &r.digest {
        out.push(format!("{repo}@{d}"));
    }
    if let Some(t) = &r.tag {
        out.push(format!("{repo}:{t}"));
    }
    let mut prefix = repo.as_str();
    loop {
        out.push(prefix.to_string());
        match prefix.rfind('/') {
            Some(i) => prefix = &prefix[..i],
            None => break,
        }
    }
    // Wildcards: `*.example.com` matches `a.example.com` and `b.a.example.com`, the longest first.
    let host = repo.split('/').next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    let mut rest = host;
    while let Some(i) = rest.find('.') {
        rest = &rest[i + 1..];
        out.push(format!("*.{rest}"));
    }
    out
}

fn convert(
    raw: Vec<RawRequirement>,
    label: &str,
    path: &Path,
    dir: &Path,
) -> Result<Vec<Requirement>, TrustError> {
    if raw.is_empty() {
        return Err(TrustError::config(
            path,
            format!("{label} lists no requirements (use [{{\"type\": \"reject\"}}] to refuse)"),
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(match r {
                RawRequirement::InsecureAcceptAnything {} => Requirement::InsecureAcceptAnything,
                RawRequirement::Reject {} => Requirement::Reject,
                RawRequirement::SigstoreSigned {
                    key_path,
                    key_data,
                    signed_identity,
                } => {
                    if let Some(id) = signed_identity {
                        let ty = id.get("type").and_then(|t| t.as_str());
                        if ty != Some("matchRepository") {
                            return Err(TrustError::config(
                                path,
                                format!(
                                    "{label}[{i}]: signedIdentity {id} is not supported; fspack \
                                     checks that the signature names the pulled repository \
                                     (matchRepository)"
                                ),
                            ));
                        }
                    }
                    let key = match (key_path, key_data) {
                        (Some(p), None) => VerifyingKey::from_pem_file(&dir.join(p))?,
                        (None, Some(d)) => {
                            let pem = base64::engine::general_purpose::STANDARD
                                .decode(d.trim())
                                .ok()
                                .and_then(|b| String::from_utf8(b).ok())
                                .ok_or_else(|| {
                                    TrustError::config(
                                        path,
                                        format!("{label}[{i}]: keyData is not base64 PEM"),
                                    )
                                })?;
                            VerifyingKey::from_pem(&pem, &PathBuf::from(format!("{label}[{i}]")))?
                        }
                        _ => {
                            return Err(TrustError::config(
                                path,
                                format!(
                                    "{label}[{i}]: sigstoreSigned needs exactly one of keyPath \
                                     and keyData"
                                ),
                            ));
                        }
                    };
                    Requirement::SigstoreSigned { key }
                }
                RawRequirement::PinnedDigest { digests } => {
                    let digests = digests
                        .iter()
                        .map(|d| {
                            crate::artifact::parse_sha256(d)
                                .map_err(|e| TrustError::config(path, format!("{label}[{i}]: {e}")))
                        })
                        .collect::<Result<_, _>>()?;
                    Requirement::PinnedDigest { digests }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<Policy, TrustError> {
        Policy::from_slice(json.as_bytes(), Path::new("/etc/fspack/policy.json"))
    }

    #[test]
    fn most_specific_scope_wins() {
        let p = policy(
            r#"{"default":[{"type":"reject"}],"transports":{"docker":{
                "localhost:5000":[{"type":"insecureAcceptAnything"}],
                "localhost:5000/team":[{"type":"pinnedDigest"}],
                "localhost:5000/team/m:v1":[{"type":"reject"}],
                "*.example.com":[{"type":"insecureAcceptAnything"}]}}}"#,
        )
        .unwrap();
        let scope = |s: &str| p.for_reference(&s.parse().unwrap()).scope.to_string();
        assert_eq!(scope("localhost:5000/other/x:v1"), "localhost:5000");
        assert_eq!(scope("localhost:5000/team/m:v2"), "localhost:5000/team");
        assert_eq!(
            scope("localhost:5000/team/m:v1"),
            "localhost:5000/team/m:v1"
        );
        assert_eq!(scope("reg.a.example.com/x:v1"), "*.example.com");
        assert_eq!(scope("example.com/x:v1"), "default");
        assert_eq!(scope("localhost:5001/x:v1"), "default");
    }

    #[test]
    fn layouts_match_oci_scopes_by_path_then_parents_then_default() {
        let p = policy(
            r#"{"default":[{"type":"reject"}],"transports":{"oci":{
                "/media/usb":[{"type":"insecureAcceptAnything"}],
                "/media/usb/models:v2":[{"type":"pinnedDigest"}]}}}"#,
        )
        .unwrap();
        let scope = |path: &str, tag: &str| p.for_layout(Path::new(path), tag).scope.to_string();
        assert_eq!(scope("/media/usb/models", "v1"), "/media/usb");
        assert_eq!(scope("/media/usb/models", "v2"), "/media/usb/models:v2");
        assert_eq!(scope("/media/usbx/models", "v1"), "default");
        assert_eq!(scope("/srv/layout", "v1"), "default");
    }

    #[test]
    fn unusable_policies_are_refused() {
        for bad in [
            r#"{}"#,
            r#"{"default":[]}"#,
            r#"{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}"#,
            r#"{"default":[{"type":"reject","extra":1}]}"#,
            r#"{"default":[{"type":"sigstoreSigned"}]}"#,
            r#"{"default":[{"type":"pinnedDigest","digests":["md5:00"]}]}"#,
            r#"{"default":[{"type":"sigstoreSigned","keyData":"bm90IGEga2V5","signedIdentity":{"type":"matchExact"}}]}"#,
        ] {
            assert!(
                matches!(policy(bad), Err(TrustError::Config { .. })),
                "{bad} was accepted"
            );
        }
    }
}
