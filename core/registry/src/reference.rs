//! Image references (`host[:port]/repo[:tag][@digest]`): parsing with the distribution-spec
//! grammar and Docker Hub normalisation, so nothing unchecked reaches a URL.

use std::fmt;
use std::str::FromStr;

use fspack_digest::Digest;

use crate::digest::parse_digest;
use crate::error::RegistryError;

/// The host Docker Hub's API lives on; `docker.io` and bare names map to it.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// A parsed reference to a repository, optionally pinned to a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port (`localhost:5000`, `registry-1.docker.io`, `[::1]:5000`).
    pub registry: String,
    /// Repository path (`library/alpine`, `team/model`).
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given (`sha256:…`); it wins over the tag when fetching.
    pub digest: Option<Digest>,
}

impl Reference {
    /// What a manifest fetch asks for: the digest if set, else the tag, else `latest`.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_ref()
            .map(Digest::as_str)
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository pinned to `digest`.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// `registry/repository`, as shown to users.
    pub fn repo_display(&self) -> String {
        format!("{}/{}", display_registry(&self.registry), self.repository)
    }

    /// Whether the registry host is loopback (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// The user-facing name of a registry host (`docker.io` for Docker Hub).
pub(crate) fn display_registry(registry: &str) -> &str {
    if registry == DOCKER_HUB_REGISTRY {
        "docker.io"
    } else {
        registry
    }
}

/// Maps Docker Hub aliases to the API host; other hosts are lowercased.
pub(crate) fn normalize_registry(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    match h.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_REGISTRY.into(),
        _ => h,
    }
}

/// Whether `host[:port]` names a loopback host.
pub(crate) fn is_loopback_host(registry: &str) -> bool {
    let host = split_port(registry).0;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Splits `host[:port]` (IPv6 hosts in brackets) into host and port text.
fn split_port(registry: &str) -> (&str, Option<&str>) {
    if registry.starts_with('[') {
        match registry.find(']') {
            Some(end) => {
                let rest = &registry[end + 1..];
                (&registry[..=end], rest.strip_prefix(':'))
            }
            None => (registry, None),
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    }
}

/// Checks `host[:port]` against the distribution grammar.
pub(crate) fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = split_port(registry);
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n > 65535))
    {
        return Err(format!("invalid port {p:?}"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unclosed '[' in IPv6 host")?;
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 address {inner:?}"))?;
        return Ok(());
    }
    if host.is_empty() {
        return Err("empty registry host".into());
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("invalid registry host {host:?}"));
        }
    }
    Ok(())
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Checks a repository path; the message says which rule failed.
pub(crate) fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository name".into());
    }
    if repo.len() > MAX_NAME {
        return Err(format!("repository name longer than {MAX_NAME} characters"));
    }
    if repo.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".into());
    }
    for c in repo.split('/') {
        if !valid_component(c) {
            return Err(format!(
                "invalid path component {c:?} (lowercase letters and digits, separated by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn validate_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty() {
        return Err("empty tag".into());
    }
    if b.len() > MAX_TAG {
        return Err(format!("tag longer than {MAX_TAG} characters"));
    }
    if !word(b[0]) || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-') {
        return Err(format!(
            "invalid tag {tag:?} (letters, digits, '_', '.', '-'; not starting with '.' or '-')"
        ));
    }
    Ok(())
}

/// The `http://` or `https://` a user pasted in front of a registry name or reference, if any.
/// References and `login`'s registry name carry no scheme (distribution-spec names a registry by
/// host and port); both refuse one with this scheme named.
pub fn url_scheme(input: &str) -> Option<&'static str> {
    ["http://", "https://"]
        .into_iter()
        .find(|p| input.starts_with(p))
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| RegistryError::InvalidReference {
            input: input.chars().take(300).collect(),
            reason,
        };
        if input.is_empty() {
            return Err(bad("empty reference".into()));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters".into()));
        }
        // A URL pasted as a reference failed on its "port" (s10 fresh-eyes pass).
        if let Some(scheme) = url_scheme(input) {
            return Err(bad(format!(
                "a reference names the registry without a scheme: drop {scheme} (loopback registries are spoken to over plain HTTP by themselves; others need --plain-http for it)"
            )));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d).map_err(|e| bad(e.to_string()))?)),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag ("localhost:5000/a:t").
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].find(':') {
            Some(i) => {
                let (n, t) = name_tag.split_at(last_slash + i);
                let t = &t[1..];
                validate_tag(t).map_err(bad)?;
                (n, Some(t.to_string()))
            }
            None => (name_tag, None),
        };
        // The first component is a registry if it looks like a host (Docker's rule).
        let (registry, mut repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.starts_with('[')
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                validate_registry(first).map_err(bad)?;
                (normalize_registry(first), rest.to_string())
            }
            _ => (DOCKER_HUB_REGISTRY.to_string(), name.to_string()),
        };
        if registry == DOCKER_HUB_REGISTRY && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        validate_repository(&repository).map_err(bad)?;
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repo_display())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn parses_hosts_ports_tags_digests() {
        let r = p("localhost:5000/a/b:t");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "a/b", Some("t"))
        );
        assert!(r.digest.is_none() && r.is_loopback());

        let r = p(&format!("ghcr.io/org/model:v1.0@{D}"));
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.tag.as_deref(), Some("v1.0"));
        assert_eq!(r.digest.as_ref().map(|d| d.as_str()), Some(D));
        assert_eq!(r.tag_or_digest(), D);

        let r = p("127.0.0.1:5000/x");
        assert!(r.is_loopback());
        assert_eq!(r.tag_or_digest(), "latest");

        let r = p("[::1]:5000/x/y:z");
        assert_eq!(r.registry, "[::1]:5000");
        assert!(r.is_loopback());

        let r = p("Registry.Example.COM/x");
        assert_eq!(r.registry, "registry.example.com");
        assert!(!r.is_loopback());
    }

    #[test]
    fn normalises_docker_hub() {
        for s in [
            "alpine",
            "docker.io/alpine",
            "index.docker.io/library/alpine",
            "docker.io/library/alpine",
        ] {
            let r = p(s);
            assert_eq!(r.registry, DOCKER_HUB_REGISTRY, "{s}");
            assert_eq!(r.repository, "library/alpine", "{s}");
        }
        let r = p("user/repo:tag");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (DOCKER_HUB_REGISTRY, "user/repo")
        );
        assert_eq!(r.to_string(), "docker.io/user/repo:tag");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "localhost:5000/a/b:t",
            &format!("ghcr.io/o/m@{D}"),
            &format!("h.io/a__b/c-d.e:t_1@{D}"),
            "docker.io/library/alpine",
        ] {
            let r = p(s);
            assert_eq!(r.to_string(), s);
            assert_eq!(p(&r.to_string()), r);
        }
    }

    #[test]
    fn rejects_bad_references_naming_the_input() {
        let cases = [
            ("", "empty"),
            ("localhost:5000/Upper/x", "lowercase"),
            ("localhost:5000/a/../b", "path component"),
            ("localhost:5000/a//b", "path component"),
            ("localhost:5000/a%2fb", "path component"),
            ("localhost:5000/a%2Fb", "lowercase"),
            ("localhost:5000/a:-bad", "invalid tag"),
            ("localhost:5000/a:.bad", "invalid tag"),
            ("localhost:99999/a", "invalid port"),
            ("localhost:5000/a@sha256:abc", "64 lowercase hex"),
            ("localhost:5000/a@md5:abc", "unsupported algorithm"),
            ("localhost:5000/a@MD5:abc", "malformed algorithm"),
            ("h_x.io/a", "invalid registry host"),
            ("localhost:5000/a b", "whitespace"),
            ("localhost:5000/a-", "path component"),
            ("[::1/x", "IPv6"),
            ("http://localhost:5000/a:v1", "drop http://"),
            ("https://ghcr.io/a/b", "drop https://"),
        ];
        for (s, want) in cases {
            let e = s.parse::<Reference>().unwrap_err().to_string();
            assert!(e.contains(want), "{s:?}: {e}");
            assert!(e.starts_with(&format!("invalid reference {s:?}")), "{e}");
        }
        let long_tag = format!("h.io/a:{}", "t".repeat(129));
        assert!(long_tag.parse::<Reference>().is_err());
        let ok_tag = format!("h.io/a:{}", "t".repeat(128));
        assert!(ok_tag.parse::<Reference>().is_ok());
        let long_repo = format!("h.io/{}", "a".repeat(256));
        assert!(long_repo.parse::<Reference>().is_err());
    }

    #[test]
    fn separators_follow_the_grammar() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1/b2"] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in ["a___b", "a..b", "_a", "a.", "a-_b", ""] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }
}
