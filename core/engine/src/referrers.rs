//! The referrers tag schema: on a registry without the OCI 1.1 referrers API (CNCF distribution
//! 2.8, among others) the client keeps a subject's referrers listed itself, so they are tagged,
//! found by `oras discover` and kept by the registry's garbage collection of untagged manifests.

use fspack_digest::Digest;
use fspack_registry::{Client, ErrorKind, Reference};

use crate::artifact::{Descriptor, Index, MEDIA_INDEX, MEDIA_MANIFEST};
use crate::error::Result;

/// The tag that lists the referrers of `subject` (`sha256:<hex>` becomes `sha256-<hex>`;
/// distribution-spec v1.1, "Referrers Tag Schema": `<alg>-<ref>`, truncated to 128 characters).
pub fn referrers_tag(subject: &Digest) -> String {
    subject
        .as_str()
        .replacen(':', "-", 1)
        .chars()
        .take(128)
        .collect()
}

/// Adds `referrer` (a manifest pushed with `subject` as its subject, by digest) to the image
/// index tagged [`referrers_tag`] of `subject` in `r`'s repository, creating it when the tag
/// does not exist; an index that lists `referrer` already is left as it is (so a re-push adds
/// nothing). Follows distribution-spec v1.1, "Pushing Manifests with Subject", steps 1-6. Two
/// clients updating the same tag at once can lose one update; the spec accepts that.
///
/// `referrer` must carry the pushed manifest's `artifactType` and annotations (step 5).
/// Returns whether the tag now lists it: `false` (with a warning) when the tag holds something
/// other than an OCI image index, which the spec says to report and leave alone.
///
/// Errors: the registry's, for reading or pushing the tag.
pub async fn add_to_referrers_tag(
    client: &Client,
    r: &Reference,
    subject: &Digest,
    referrer: Descriptor,
) -> Result<bool> {
    let tag = Reference {
        tag: Some(referrers_tag(subject)),
        digest: None,
        ..r.clone()
    };
    let mut index = match client.get_manifest(&tag).await {
        Ok((media_type, bytes, _)) => match Index::from_slice(&bytes) {
            Ok(index) if media_type == MEDIA_INDEX => index,
            _ => {
                tracing::warn!(%tag, "the referrers tag holds something other than an OCI image index ({media_type}); leaving it alone");
                return Ok(false);
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Index {
            schema_version: 2,
            media_type: Some(MEDIA_INDEX.into()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: Default::default(),
        },
        Err(e) => return Err(e.into()),
    };
    if index.manifests.iter().any(|d| d.digest == referrer.digest) {
        return Ok(true);
    }
    debug_assert_eq!(referrer.media_type, MEDIA_MANIFEST);
    index.manifests.push(referrer);
    let tag_name = tag.tag.clone().expect("set above");
    client
        .push_manifest(&tag, &tag_name, MEDIA_INDEX, index.to_json())
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_the_digest_with_a_dash() {
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(referrers_tag(&d), format!("sha256-{}", "ab".repeat(32)));
        let long = Digest::parse(&format!("sha512:{}", "cd".repeat(64))).unwrap();
        assert_eq!(referrers_tag(&long).len(), 128);
    }
}
