//! OCI content digests (`algorithm:hex`): one type and one parser for every crate that takes a
//! digest from outside (a manifest, a registry header, a chunk-index annotation, a device tag,
//! a store path). Its own crate because it sits below all of them: the image crate, the chunk
//! index, the registry client and the store each check digests, and none of them may depend on
//! another for it.
//!
//! The grammar is the OCI image-spec's (descriptor.md, "Digests"): `algorithm ":" encoded`,
//! where `algorithm` is lowercase components joined by `+ . _ -`. Only the algorithms fspack can
//! verify are accepted (fail closed): `sha256` (64 lowercase hex digits) and `sha512` (128). This
//! crate knows nothing of hashing, HTTP, files or image formats.
//!
//! "Parse, don't validate": a digest is parsed once where it enters (a manifest's JSON, a
//! registry header, a CLI argument, a store path) and travels as a [`Digest`] from there on.
//! [`Digest`] (de)serialises as its string, and deserialising runs [`Digest::parse`], so a
//! document holding a bad digest fails to parse at all.

use std::fmt;
use std::str::FromStr;

/// A digest algorithm fspack can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256: 64 lowercase hex digits.
    Sha256,
    /// SHA-512: 128 lowercase hex digits.
    Sha512,
}

impl Algorithm {
    /// The name before the colon.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex part, in characters.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest fspack accepts. The messages are the reasons alone (callers
/// name the digest and what it belongs to).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("missing \"algorithm:\" prefix")]
    MissingAlgorithm,
    /// The algorithm part breaks the grammar (uppercase, empty component, other characters).
    #[error("malformed algorithm")]
    MalformedAlgorithm,
    /// A well-formed algorithm fspack cannot verify (`blake3`, `md5`, …).
    #[error("unsupported algorithm (only sha256 and sha512 can be verified)")]
    Unsupported,
    /// The hex part has the wrong length or characters other than `0-9a-f`.
    #[error("expected {0} lowercase hex digits")]
    BadHex(usize),
    /// A valid digest of another algorithm where only sha256 is accepted.
    #[error("not a sha256 digest")]
    NotSha256,
}

/// A parsed, valid digest: `algorithm:hex`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The whole digest as given (valid, so already canonical).
    text: String,
    /// Where the hex part starts in `text`.
    hex_at: usize,
}

impl Digest {
    /// Parses `s` (see the crate docs for the rule).
    ///
    /// Errors: [`DigestError`] saying which part is wrong.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let algorithm = check(s)?;
        Ok(Digest {
            text: s.to_string(),
            hex_at: algorithm.name().len() + 1,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match &self.text[..self.hex_at - 1] {
            "sha512" => Algorithm::Sha512,
            _ => Algorithm::Sha256,
        }
    }

    /// The lowercase hex part (what the OCI layout names the blob file).
    pub fn hex(&self) -> &str {
        &self.text[self.hex_at..]
    }

    /// The whole `algorithm:hex` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `sha256:` digest whose hash (computed by the caller: this crate does not hash) is
    /// `hash`.
    pub fn from_sha256(hash: [u8; 32]) -> Digest {
        let mut text = String::with_capacity(7 + 64);
        text.push_str("sha256:");
        for b in hash {
            text.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            text.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        Digest { text, hex_at: 7 }
    }

    /// The `sha256:` digest of a hex part already known to be 64 lowercase hex digits.
    ///
    /// Errors: [`DigestError::BadHex`] otherwise.
    pub fn sha256_from_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::parse(&format!("sha256:{hex}")).map_err(|_| DigestError::BadHex(64))
    }
}

/// Checks `s` against the rule without keeping it; returns its algorithm.
///
/// Errors: [`DigestError`] saying which part is wrong.
pub fn check(s: &str) -> Result<Algorithm, DigestError> {
    let (algo, hex) = s.split_once(':').ok_or(DigestError::MissingAlgorithm)?;
    let algorithm = match algo {
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ if !algo.is_empty()
            && algo.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }) =>
        {
            return Err(DigestError::Unsupported);
        }
        _ => return Err(DigestError::MalformedAlgorithm),
    };
    let len = algorithm.hex_len();
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DigestError::BadHex(len));
    }
    Ok(algorithm)
}

/// The hex part of a valid `sha256:` digest: for the places that handle sha256 only (the
/// store's paths, EROFS device tags, chunk indexes).
///
/// Errors: [`DigestError::NotSha256`] for a valid digest of another algorithm, else as
/// [`check`].
pub fn sha256_hex(s: &str) -> Result<&str, DigestError> {
    match check(s)? {
        Algorithm::Sha256 => Ok(&s["sha256:".len()..]),
        Algorithm::Sha512 => Err(DigestError::NotSha256),
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Comparisons with text (a header, a hash just computed as text) compare the whole digest.
impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.text == other
    }
}

impl PartialEq<Digest> for String {
    fn eq(&self, other: &Digest) -> bool {
        self == &other.text
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    /// Runs [`Digest::parse`]; the error names the digest (truncated to 80 characters) and the
    /// reason, and the caller adds where in the document it was (`serde_path_to_error`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a digest (algorithm:hex)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Digest, E> {
                Digest::parse(v).map_err(|e| {
                    let shown: String = v.chars().take(80).collect();
                    E::custom(format_args!("invalid digest {shown:?}: {e}"))
                })
            }
        }
        d.deserialize_str(Visit)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn accepts_sha256_and_sha512() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(d.to_string(), EMPTY);
        let long = format!("sha512:{}", "a".repeat(128));
        let d: Digest = long.parse().unwrap();
        assert_eq!((d.algorithm(), d.hex().len()), (Algorithm::Sha512, 128));
        assert_eq!(sha256_hex(EMPTY).unwrap(), &EMPTY[7..]);
        assert_eq!(sha256_hex(&long), Err(DigestError::NotSha256));
    }

    #[test]
    fn rejects_what_the_grammar_or_the_lengths_forbid() {
        let cases: &[(&str, DigestError)] = &[
            ("", DigestError::MissingAlgorithm),
            ("sha256", DigestError::MissingAlgorithm),
            ("sha256:", DigestError::BadHex(64)),
            (
                &format!("sha256:{}", "A".repeat(64)),
                DigestError::BadHex(64),
            ),
            (
                &format!("sha256:{}", "a".repeat(63)),
                DigestError::BadHex(64),
            ),
            (
                &format!("sha256:{}", "a".repeat(65)),
                DigestError::BadHex(64),
            ),
            (
                &format!("sha512:{}", "a".repeat(64)),
                DigestError::BadHex(128),
            ),
            ("sha256:../../etc/passwd", DigestError::BadHex(64)),
            (
                &format!("sha256:{}\0", "a".repeat(63)),
                DigestError::BadHex(64),
            ),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                DigestError::Unsupported,
            ),
            ("blake3:abcd", DigestError::Unsupported),
            ("SHA256:abc", DigestError::MalformedAlgorithm),
            ("sha256+:abc", DigestError::MalformedAlgorithm),
            (":abc", DigestError::MalformedAlgorithm),
        ];
        for (d, want) in cases {
            assert_eq!(Digest::parse(d).as_ref().err(), Some(want), "{d:?}");
        }
    }

    #[test]
    fn serde_round_trips_as_the_string_and_parses_on_the_way_in() {
        let d = Digest::parse(EMPTY).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        let e = serde_json::from_str::<Digest>(r#""sha256:../../etc/passwd""#).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "invalid digest \"sha256:../../etc/passwd\": expected 64 lowercase hex digits"
            ),
            "{e}"
        );
        let upper = format!("\"sha256:{}\"", EMPTY[7..].to_uppercase());
        assert!(serde_json::from_str::<Digest>(&upper).is_err());
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    #[test]
    fn sha256_from_hex_checks_the_hex() {
        assert_eq!(
            Digest::sha256_from_hex(&EMPTY[7..]).unwrap().as_str(),
            EMPTY
        );
        assert!(Digest::sha256_from_hex("abc").is_err());
        let hash: [u8; 32] = std::array::from_fn(|i| (i * 9) as u8);
        let d = Digest::from_sha256(hash);
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert!(d.as_str().starts_with("sha256:0009121b242d"), "{d}");
    }
}
