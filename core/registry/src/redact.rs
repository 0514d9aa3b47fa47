//! Keeps secrets out of errors, `Debug` output and tracing events. Upload `Location`s carry
//! signed `_state` values, blob redirects carry presigned object-store signatures, and tokens and
//! passwords travel in headers: anything printed goes through here first.

use std::fmt;

/// A secret string (password, token) whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for building a header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Prints a URL with user info removed and every query value replaced by `REDACTED`.
pub fn redact_url(url: &reqwest::Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    if let Some(q) = url.query() {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) => format!("{k}=REDACTED"),
                None => kv.to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

/// Like [`redact_url`] for a URL held as text; text that does not parse is cut at `?` and `#`.
pub fn redact_url_str(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => redact_url(&u),
        Err(_) => {
            let cut = url.find(['?', '#']).unwrap_or(url.len());
            let base = &url[..cut];
            // Drop any user info in "scheme://user:pass@host".
            match (base.find("://"), base.rfind('@')) {
                (Some(s), Some(at)) if at > s => format!("{}{}", &base[..s + 3], &base[at + 1..]),
                _ => base.to_string(),
            }
        }
    }
}

/// Makes text from a server safe to print: no control characters, at most `max` characters.
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_userinfo_are_redacted() {
        let u = reqwest::Url::parse(
            "https://user:pw@reg.example:5000/v2/a/blobs/uploads/x?_state=SECRET&digest=sha256:ab&flag",
        )
        .unwrap();
        let s = redact_url(&u);
        assert_eq!(
            s,
            "https://reg.example:5000/v2/a/blobs/uploads/x?_state=REDACTED&digest=REDACTED&flag"
        );
        assert!(!s.contains("SECRET") && !s.contains("pw"));
    }

    #[test]
    fn unparsable_text_is_cut() {
        assert_eq!(redact_url_str("not a url?X-Amz-Signature=abc"), "not a url");
        assert_eq!(
            redact_url_str("https://u:p@h/x?sig=1"),
            "https://h/x?sig=REDACTED"
        );
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn sanitize_strips_control_and_caps() {
        assert_eq!(sanitize("a\nb\x1b[31m", 100), "a b [31m");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }
}
