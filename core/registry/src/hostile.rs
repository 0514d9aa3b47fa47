//! Property tests: every parser of what a registry sends (headers, token answers, error bodies,
//! manifests, indexes) returns a value or an error for any input, never a panic (issue 13). A
//! registry is untrusted input, and fspack often runs as root on every host of a fleet.
//!
//! Cases per property: proptest's default (256), or `PROPTEST_CASES` (CI sets it to bound the
//! time).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use crate::ErrorKind;
use crate::auth::challenge::parse_challenges;
use crate::auth::token::{parse_token_answer, token_expiry};
use crate::download::parse_content_range;
use crate::manifest::{ImageIndex, ImageManifest};
use crate::response::error_summary;
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::upload::{next_offset, parse_range_end};

/// Decimal numbers of any size, also beyond `u64`, sometimes signed or padded.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{1,40}",
        " ?[+-]?[0-9]{0,25} ?",
    ]
}

/// A field that is mostly in range, sometimes any number.
fn field(max: u32) -> impl Strategy<Value = String> {
    prop_oneof![3 => (0..=max).prop_map(|n| format!("{n:02}")), 1 => number()]
}

/// Text that looks like an HTTP-date, with any field (the year above all) out of range.
fn http_date() -> impl Strategy<Value = String> {
    (
        "(Sun|Mon|Xyz)",
        field(31),
        "(Jan|Feb|Dec|Foo)",
        number(),
        field(23),
        field(59),
        field(60),
    )
        .prop_map(|(wd, d, mon, y, h, m, s)| format!("{wd}, {d} {mon} {y} {h}:{m}:{s} GMT"))
}

/// A JSON document of arbitrary shape, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        "sha256:[0-9a-f]{0,70}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("schemaVersion".to_string()),
                    Just("mediaType".to_string()),
                    Just("config".to_string()),
                    Just("layers".to_string()),
                    Just("manifests".to_string()),
                    Just("digest".to_string()),
                    Just("size".to_string()),
                    Just("errors".to_string()),
                    Just("code".to_string()),
                    Just("message".to_string()),
                    Just("token".to_string()),
                    Just("expires_in".to_string()),
                    ".{0,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A manifest that parses as JSON, with a digest that may be malformed.
fn manifest_with_digest() -> impl Strategy<Value = (Vec<u8>, bool)> {
    (
        prop_oneof![
            "sha256:[0-9a-f]{64}",
            "sha256:[0-9a-fA-F./]{0,70}",
            "[a-z0-9]{0,10}:[ -~]{0,70}",
            ".{0,80}",
        ],
        any::<u64>(),
    )
        .prop_map(|(digest, size)| {
            let ok = crate::parse_digest(&digest).is_ok();
            let m = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
                "layers": [{"mediaType": "x", "digest": digest, "size": size}],
            });
            (serde_json::to_vec(&m).unwrap(), ok)
        })
}

proptest! {
    #[test]
    fn retry_after_never_panics_and_waits_are_capped(
        v in prop_oneof![number(), http_date(), ".{0,60}"],
        now_secs in 0u64..(1u64 << 40),
        retry in any::<u32>(),
    ) {
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let ra = parse_retry_after(&v, now);
        let p = RetryPolicy::new(5, Some(Duration::from_millis(100)));
        prop_assert!(p.delay(retry.max(1), ra) <= Duration::from_secs(60));
    }

    #[test]
    fn content_range_never_panics_and_is_ordered(
        v in prop_oneof![
            (number(), number(), prop_oneof![number(), Just("*".to_string())])
                .prop_map(|(a, b, t)| format!("bytes {a}-{b}/{t}")),
            ".{0,60}",
        ],
    ) {
        if let Some((a, b, _)) = parse_content_range(&v) {
            prop_assert!(a <= b);
        }
    }

    #[test]
    fn upload_range_never_panics(v in prop_oneof![number().prop_map(|n| format!("0-{n}")), ".{0,40}"], believed in any::<u64>()) {
        if let Some(end) = parse_range_end(&v) {
            let next = next_offset(end, believed);
            prop_assert!(next >= end.min(believed));
        }
    }

    #[test]
    fn auth_challenges_never_panic(v in prop_oneof![
        ".{0,200}",
        "(Bearer|Basic|bearer) ([a-z]{1,6}=(\"[ -~]{0,20}\"|[a-z0-9]{0,8}),? ?){0,5}",
    ]) {
        for c in parse_challenges(&v) {
            prop_assert!(!c.scheme.is_empty());
        }
    }

    #[test]
    fn token_answers_never_panic_and_lifetimes_are_bounded(
        body in prop_oneof![
            json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            (json(), ".{1,20}").prop_map(|(e, t)| serde_json::to_vec(&serde_json::json!({"token": t, "expires_in": e})).unwrap()),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
        raw_lifetime in any::<u64>(),
    ) {
        let now = Instant::now();
        if let Ok((token, lifetime)) = parse_token_answer(&body) {
            prop_assert!(!token.is_empty());
            prop_assert!((60..=24 * 3600).contains(&lifetime));
        }
        // Whatever the lifetime, the expiry is a valid instant no more than a day ahead.
        let e = token_expiry(now, raw_lifetime);
        prop_assert!(e >= now && e <= now + Duration::from_secs(24 * 3600));
    }

    #[test]
    fn error_bodies_give_a_short_line(
        body in prop_oneof![
            json().prop_map(|v| serde_json::to_vec(&serde_json::json!({"errors": [v]})).unwrap()),
            json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            prop::collection::vec(any::<u8>(), 0..300),
        ],
        status in 100u16..600,
    ) {
        let s = reqwest::StatusCode::from_u16(status).unwrap();
        let line = error_summary(s, &body);
        prop_assert!(line.chars().count() < 64 + 300, "{line}");
        prop_assert!(!line.contains('\n'));
    }

    #[test]
    fn manifests_and_indexes_never_panic(v in json(), bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let body = serde_json::to_vec(&v).unwrap();
        for b in [&body, &bytes] {
            if let Err(e) = ImageManifest::from_slice(b) {
                prop_assert_eq!(e.kind(), ErrorKind::Integrity);
            }
            if let Err(e) = ImageIndex::from_slice(b) {
                prop_assert_eq!(e.kind(), ErrorKind::Integrity);
            }
        }
    }

    /// A malformed digest inside a registry's manifest is the registry's fault: an integrity
    /// error (exit 6), never a usage error (exit 2).
    #[test]
    fn malformed_digests_in_manifests_are_integrity_errors((body, ok) in manifest_with_digest()) {
        match ImageManifest::from_slice(&body) {
            Ok(_) => prop_assert!(ok),
            Err(e) => {
                prop_assert!(!ok, "{e}");
                prop_assert_eq!(e.kind(), ErrorKind::Integrity, "{}", e);
            }
        }
    }
}

#[test]
fn the_examples_of_issue_13_do_not_panic() {
    let now = SystemTime::now();
    // A year that overflowed the day count and the `SystemTime` addition.
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 99999999999999 08:49:37 GMT", now),
        None
    );
    assert_eq!(parse_content_range("bytes 5-4/10"), None);
    assert_eq!(
        parse_content_range("bytes 0-18446744073709551615/*"),
        Some((0, u64::MAX, None))
    );
    assert_eq!(next_offset(u64::MAX, 7), u64::MAX);
    let (_, lifetime) =
        parse_token_answer(br#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
    assert_eq!(lifetime, 24 * 3600);
    let _ = token_expiry(Instant::now(), u64::MAX);
}
