//! When and how long to wait before trying again: which statuses and transport errors are
//! transient, exponential backoff with jitter, and `Retry-After` (RFC 9110 §10.2.3, seconds or an
//! HTTP-date). Tests zero the delays with `FSPACK_RETRY_BASE_MS=0` or `ClientOptions::retry_base`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;

/// The longest we honour a `Retry-After`; a registry asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest computed backoff step.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Bounded exponential backoff.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff step.
    pub base: Duration,
}

impl RetryPolicy {
    /// `base` if given, else `FSPACK_RETRY_BASE_MS`, else 200 ms.
    pub(crate) fn new(max_retries: u32, base: Option<Duration>) -> Self {
        let base =
            base.unwrap_or_else(|| env_millis("FSPACK_RETRY_BASE_MS", Duration::from_millis(200)));
        RetryPolicy { max_retries, base }
    }

    /// The wait before retry number `retry` (1-based): `Retry-After` if the server sent one,
    /// else base·2^(retry-1), capped, with the upper half jittered.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(MAX_RETRY_AFTER);
        }
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let exp = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(MAX_BACKOFF);
        let half = exp / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Whether a status is worth retrying: 408, 429 and 5xx other than 501/505.
pub(crate) fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT
        || s == StatusCode::TOO_MANY_REQUESTS
        || (s.is_server_error()
            && s != StatusCode::NOT_IMPLEMENTED
            && s != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// Whether a transport error is worth retrying (connect, timeout, reset, cut body).
pub(crate) fn retryable_transport(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_redirect() || e.is_decode() {
        return false;
    }
    // A TLS handshake failure will not fix itself.
    !looks_like_tls_error(e)
}

/// Whether the error chain mentions a TLS failure.
pub(crate) fn looks_like_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    causes(e).any(|err| {
        let s = err.to_string();
        s.contains("InvalidContentType")
            || s.contains("corrupt message")
            || s.contains("certificate")
            || s.contains("HandshakeFailure")
            || s.contains("tls handshake")
    })
}

/// Whether the TLS failure means the server answered in plain HTTP.
pub(crate) fn looks_like_plain_http_server(e: &(dyn std::error::Error + 'static)) -> bool {
    causes(e).any(|err| {
        let s = err.to_string();
        s.contains("InvalidContentType") || s.contains("corrupt message")
    })
}

/// `e`, then each of its causes in turn (what `Error::sources` will give once it is stable).
pub(crate) fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// A duration in milliseconds from the environment variable `name`, else `default` (also for
/// a value that is not a whole number).
pub(crate) fn env_millis(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(default, Duration::from_millis)
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (a past date means "now").
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_http_date(v)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires senders
/// to use.
pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    let (_, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u32
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // The year is bounded because it comes from the network: a huge one overflows the day count
    // and the `SystemTime` addition (issue 13). RFC 9110 dates have four digits.
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 || !(1970..=9999).contains(&year)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days as u64 * 86400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:39 GMT", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO),
            "past dates mean now"
        );
        for bad in [
            "soon",
            "-1",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn http_dates_match_known_epochs() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_835_438_400))
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy::new(5, Some(Duration::from_millis(100)));
        let d1 = p.delay(1, None);
        assert!(
            d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
            "{d1:?}"
        );
        let d3 = p.delay(3, None);
        assert!(
            d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
            "{d3:?}"
        );
        assert!(p.delay(30, None) <= MAX_BACKOFF);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), MAX_RETRY_AFTER);
        let zero = RetryPolicy::new(5, Some(Duration::ZERO));
        assert_eq!(zero.delay(4, None), Duration::ZERO);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 416, 501, 505] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
