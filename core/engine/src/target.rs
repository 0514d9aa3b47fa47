//! Where a push goes or a pull comes from: a registry reference or an OCI image layout on disk.

use std::fmt;
use std::path::PathBuf;

use fspack_registry::Reference;

use crate::error::{EngineError, Result};

/// The tag a reference without tag or digest means, for registries and `oci:` layouts alike.
pub const DEFAULT_TAG: &str = "latest";

/// A push destination or pull source.
#[derive(Debug, Clone)]
pub enum Target {
    /// `host[:port]/repo[:tag][@digest]`.
    Registry(Reference),
    /// `oci:PATH[:tag]`: an OCI image layout directory (air-gapped transfer, tests).
    Layout {
        /// Layout directory.
        path: PathBuf,
        /// Tag (`org.opencontainers.image.ref.name`), `latest` when omitted.
        tag: String,
    },
}

impl Target {
    /// Parses a command-line reference.
    pub fn parse(s: &str) -> Result<Target> {
        if let Some(rest) = s.strip_prefix("oci:") {
            if rest.is_empty() {
                return Err(EngineError::Usage(
                    "oci: needs a path, as in oci:/srv/layout:tag".into(),
                ));
            }
            // The tag would be parsed out of the digest ("…@sha256" as the path, a hex tag):
            // say what the form is instead (s10 fresh-eyes pass).
            if rest.contains("@sha256:") || rest.contains("@sha512:") {
                return Err(EngineError::Usage(format!(
                    "{s}: an oci: reference takes a tag (oci:PATH:TAG), not a digest\nhint: use the tag the layout's index.json gives the manifest; `fspack inspect oci:PATH:TAG` shows its digest"
                )));
            }
            let (path, tag) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !p.is_empty() => (p, t),
                _ => (rest, DEFAULT_TAG),
            };
            if tag.is_empty() {
                return Err(EngineError::Usage(format!("{s}: empty tag after ':'")));
            }
            return Ok(Target::Layout {
                path: PathBuf::from(path),
                tag: tag.to_string(),
            });
        }
        let mut r = s
            .parse::<Reference>()
            .map_err(|e| EngineError::Usage(format!("{e}")))?;
        // One default for push, pull, mount and oci: (as docker and oras): a push without a tag
        // must tag what a pull without a tag asks for (issue 11).
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(Target::Registry(r))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Registry(r) => write!(f, "{r}"),
            Target::Layout { path, tag } => write!(f, "oci:{}:{tag}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_target_with_a_digest_is_bad_usage() {
        for s in ["oci:/srv/l@sha256:abc", "oci:/srv/l:v1@sha256:abc"] {
            let err = Target::parse(s).unwrap_err();
            assert!(matches!(err, EngineError::Usage(_)), "{s}: {err}");
            assert!(err.to_string().contains("takes a tag"), "{err}");
        }
    }

    #[test]
    fn layout_targets_split_path_and_tag() {
        let Target::Layout { path, tag } = Target::parse("oci:/srv/layout:v1").unwrap() else {
            panic!()
        };
        assert_eq!((path, tag.as_str()), (PathBuf::from("/srv/layout"), "v1"));
        let Target::Layout { path, tag } = Target::parse("oci:./dir").unwrap() else {
            panic!()
        };
        assert_eq!((path, tag.as_str()), (PathBuf::from("./dir"), "latest"));
        assert!(Target::parse("oci:").is_err());
    }

    #[test]
    fn registry_references_without_tag_or_digest_mean_latest() {
        let Target::Registry(r) = Target::parse("localhost:5000/team/model").unwrap() else {
            panic!()
        };
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let pinned = format!("localhost:5000/team/model@sha256:{}", "a".repeat(64));
        let Target::Registry(r) = Target::parse(&pinned).unwrap() else {
            panic!()
        };
        assert_eq!(r.tag, None, "a digest alone is not given a tag");
    }
}
