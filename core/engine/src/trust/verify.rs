//! Applying the policy to one manifest digest, against the registry it came from.
//!
//! Signatures are looked up where cosign stores them (the `sha256-<hex>.sig` tag of the same
//! repository). A signature counts only when all of these hold: the payload's DER signature
//! verifies with the key, the payload's type is cosign's, it names exactly the manifest digest
//! being pulled, and its `docker-reference` names the repository being pulled (so a signature
//! copied from another repository, or a tag moved to another signed manifest, does not count).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use fspack_digest::Digest;
use fspack_registry::{Client, ErrorKind, Reference};

use super::TrustError;
use super::keys::VerifyingKey;
use super::policy::{Applicable, Policy, Requirement};
use super::simple_signing::*;

/// What the user asked to be checked: a policy file and/or keys given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The policy, when one is configured.
    pub policy: Option<Policy>,
    /// `--verify-key` keys: a signature by one of them is required in addition to the policy.
    pub verify_keys: Vec<VerifyingKey>,
}

/// What passed, for a log line.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// One line per rule that was applied.
    pub passed: Vec<String>,
}

impl Trust {
    /// Whether anything is checked at all (no policy and no key: everything is accepted).
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.verify_keys.is_empty()
    }

    /// Checks `digest`, which `r` resolved to, against the policy and the `--verify-key` keys.
    /// Reads only the signature manifest and its payloads from the registry, and only when a
    /// rule asks for a signature.
    ///
    /// Errors: [`TrustError::Refused`] naming the reference, the digest and the rule; registry
    /// failures other than a missing signature (network, auth) as they are.
    pub async fn check(
        &self,
        client: &Client,
        r: &Reference,
        digest: &Digest,
    ) -> Result<Verdict, crate::EngineError> {
        let rules = self.rules(self.policy.as_ref().map(|p| (p, p.for_reference(r))));
        let subject = r.to_string();
        let refused = refusal(&subject, digest);
        let mut verdict = Verdict::default();
        // `Some(None)`: fetched, and the signature tag does not exist.
        let mut signatures: Option<Option<Vec<Candidate>>> = None;
        for (rule, req) in &rules {
            match check_rule(req, r.digest.as_ref(), digest) {
                Ok(None) => {}
                Ok(Some(key)) => {
                    if signatures.is_none() {
                        signatures = Some(fetch_signatures(client, r, digest).await?);
                    }
                    let found = signatures.as_ref().and_then(Option::as_deref);
                    check_signed(found, key, r, digest).map_err(|reason| refused(rule, reason))?;
                }
                Err(reason) => return Err(refused(rule, reason).into()),
            }
            verdict.passed.push(rule.clone());
        }
        Ok(verdict)
    }

    /// Checks `digest`, which the tag `tag` of the `oci:` layout at `canonical` names, against
    /// the policy's `transports.oci` scopes (else its `default`) and the `--verify-key` keys.
    /// `name` is how messages name the layout (`oci:PATH:TAG`).
    ///
    /// A layout is read from disk, where fspack finds no signature it could check (cosign
    /// signatures live in a registry, beside the manifest), so any rule that asks for one
    /// refuses: fail closed rather than accept an unsigned copy (issue 12).
    ///
    /// Errors: [`TrustError::Refused`] naming the layout, the digest and the rule.
    pub fn check_layout(
        &self,
        canonical: &Path,
        tag: &str,
        name: &str,
        digest: &Digest,
    ) -> Result<Verdict, TrustError> {
        let rules = self.rules(
            self.policy
                .as_ref()
                .map(|p| (p, p.for_layout(canonical, tag))),
        );
        let refused = refusal(name, digest);
        let mut verdict = Verdict::default();
        for (rule, req) in &rules {
            match check_rule(req, None, digest) {
                Ok(None) => verdict.passed.push(rule.clone()),
                Ok(Some(_)) => {
                    return Err(refused(
                        rule,
                        "a signature is required, and an oci: layout carries none that fspack \
                         checks (signatures are read from a registry): copy the artifact to a \
                         registry with its signature and pull it from there, or give this \
                         layout a transports.oci scope in the policy"
                            .into(),
                    ));
                }
                Err(reason) => return Err(refused(rule, reason)),
            }
        }
        Ok(verdict)
    }

    /// The rules that apply, each with how messages name it: the policy's `applicable` scope,
    /// then one signature rule per `--verify-key`.
    fn rules(&self, applicable: Option<(&Policy, Applicable<'_>)>) -> Vec<(String, Requirement)> {
        let mut rules: Vec<(String, Requirement)> = Vec::new();
        if let Some((p, a)) = applicable {
            for (i, req) in a.requirements.iter().enumerate() {
                let rule = format!(
                    "policy {} {}[{i}] {}",
                    p.path.display(),
                    a.scope,
                    req.describe()
                );
                rules.push((rule, req.clone()));
            }
        }
        for key in &self.verify_keys {
            rules.push((
                format!("--verify-key {}", key.path.display()),
                Requirement::SigstoreSigned { key: key.clone() },
            ));
        }
        rules
    }
}

/// Builds the refusal of `digest` (what `subject` resolved to) under a rule, with the reason.
fn refusal<'a>(subject: &'a str, digest: &'a Digest) -> impl Fn(&str, String) -> TrustError + 'a {
    move |rule, reason| TrustError::Refused {
        reference: subject.to_string(),
        digest: digest.to_string(),
        rule: rule.to_string(),
        reason,
    }
}

/// Checks one rule that needs no signature: `Ok(None)` when it holds, `Ok(Some(key))` for a
/// rule that needs a signature by `key`, `Err(reason)` when it does not hold. `named` is the
/// digest the reference itself names, if any.
fn check_rule<'r>(
    req: &'r Requirement,
    named: Option<&Digest>,
    digest: &Digest,
) -> Result<Option<&'r VerifyingKey>, String> {
    match req {
        Requirement::InsecureAcceptAnything => Ok(None),
        Requirement::Reject => Err("this scope rejects every image".into()),
        Requirement::PinnedDigest { digests } if digests.is_empty() => match named {
            Some(d) if d == digest => Ok(None),
            _ => Err("the reference must name its digest (REPO@sha256:...)".into()),
        },
        Requirement::PinnedDigest { digests } => match digests.iter().any(|d| d == digest) {
            true => Ok(None),
            false => Err("the manifest digest is not one of the pinned digests".into()),
        },
        Requirement::SigstoreSigned { key } => Ok(Some(key)),
    }
}

/// One signature layer as fetched: its payload (or why it could not be read) and signature.
#[derive(Debug)]
struct Candidate {
    payload_digest: Digest,
    payload: Result<Vec<u8>, String>,
    /// The decoded signature annotation, or why there is none.
    signature: Result<Vec<u8>, &'static str>,
}

/// The signature candidates under `r`'s cosign signature tag for `digest`; `None` when the tag
/// does not exist (nobody signed it).
async fn fetch_signatures(
    client: &Client,
    r: &Reference,
    digest: &Digest,
) -> Result<Option<Vec<Candidate>>, crate::EngineError> {
    let sig_ref = signature_ref(r, digest);
    let (_, bytes, _) = match client.get_manifest(&sig_ref).await {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Ok(manifest) = serde_json::from_slice::<fspack_registry::manifest::ImageManifest>(&bytes)
    else {
        tracing::warn!("{sig_ref} is not an image manifest; ignoring it");
        return Ok(Some(Vec::new()));
    };
    let mut out = Vec::new();
    for layer in manifest.layers.iter().take(64) {
        if layer.media_type != MEDIA_SIMPLE_SIGNING {
            continue;
        }
        let signature = match layer.annotations.get(ANN_SIGNATURE) {
            None => Err("no signature annotation (dev.cosignproject.cosign/signature)"),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| "the signature annotation is not base64"),
        };
        let payload = if layer.size > MAX_PAYLOAD as u64 {
            Err(format!("payload of {} bytes is too large", layer.size))
        } else {
            match client.get_blob_bytes(r, &layer.digest, MAX_PAYLOAD).await {
                Ok(b) => Ok(b),
                Err(e) if matches!(e.kind(), ErrorKind::Network | ErrorKind::Auth) => {
                    return Err(e.into());
                }
                Err(e) => Err(e.to_string()),
            }
        };
        out.push(Candidate {
            payload_digest: layer.digest.clone(),
            payload,
            signature,
        });
    }
    Ok(Some(out))
}

/// Ok when one candidate is a valid signature by `key` for `digest` in `r`'s repository;
/// otherwise the reason, summarising every candidate.
fn check_signed(
    found: Option<&[Candidate]>,
    key: &VerifyingKey,
    r: &Reference,
    digest: &Digest,
) -> Result<(), String> {
    let Some(found) = found else {
        return Err(format!(
            "no signature: the registry has no signature tag {} (sign it with `fspack sign`)",
            signature_ref(r, digest)
        ));
    };
    if found.is_empty() {
        return Err(format!(
            "no signature: {} has no cosign signature layer (sign it with `fspack sign`)",
            signature_ref(r, digest)
        ));
    }
    let mut reasons = Vec::new();
    for c in found {
        let why = match (&c.payload, &c.signature) {
            (Err(e), _) => format!("payload unreadable ({e})"),
            (_, Err(why)) => why.to_string(),
            (Ok(payload), Ok(sig)) => {
                if !key.verify(payload, sig) {
                    "signature does not verify with this key (another key, or a tampered \
                     payload)"
                        .to_string()
                } else {
                    match parse_claims(payload) {
                        None => "payload is not a simple-signing document".to_string(),
                        Some(c) if c.kind != COSIGN_TYPE => format!("payload type {:?}", c.kind),
                        Some(c) if c.manifest_digest != digest.as_str() => {
                            format!("payload signs manifest {}", c.manifest_digest)
                        }
                        Some(c) if !same_repository(&c.docker_reference, r) => format!(
                            "payload signs repository {}, not {}",
                            c.docker_reference,
                            r.repo_display()
                        ),
                        Some(_) => return Ok(()),
                    }
                }
            }
        };
        reasons.push(format!("{}: {why}", short(c.payload_digest.as_str())));
    }
    Err(format!(
        "no valid signature among {} ({})",
        found.len(),
        reasons.join("; ")
    ))
}

fn short(d: &str) -> &str {
    &d[..d.len().min(19)]
}

/// Whether a payload's `docker-reference` names `r`'s repository (Docker Hub aliases and a
/// tag on the identity are tolerated: the digest is what was signed).
fn same_repository(identity: &str, r: &Reference) -> bool {
    match identity.parse::<Reference>() {
        Ok(id) => id.registry == r.registry && id.repository == r.repository,
        Err(_) => false,
    }
}

/// Loads the `--verify-key` files.
pub fn load_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, TrustError> {
    paths
        .iter()
        .map(|p| VerifyingKey::from_pem_file(p))
        .collect()
}
