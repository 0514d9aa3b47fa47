//! A token issuer for the registry's bearer-token auth (the distribution "token" auth scheme):
//! the real registry is configured to trust its certificate, and it hands out ES256 JWTs to a
//! client that presents the right basic credentials. In-process, because docker-registry ships
//! no issuer; the signing is the `p256` crate's.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};

/// The `service` and `issuer` the registry is configured with.
pub const SERVICE: &str = "fspack-test-service";
pub const ISSUER: &str = "fspack-test-issuer";

/// A running issuer: `realm` is its token URL, `cert` the root certificate bundle for the
/// registry's `rootcertbundle`.
pub struct TokenIssuer {
    pub realm: String,
    pub cert: PathBuf,
}

impl TokenIssuer {
    /// Starts an issuer in `dir` that grants tokens to `user`/`password` only (others get 401).
    /// `None` (after saying why) without openssl, which makes the certificate.
    pub fn start(dir: &Path, user: &str, password: &str) -> Option<TokenIssuer> {
        if !super::trees::have_tool("openssl") {
            return None;
        }
        let (key, cert) = (dir.join("issuer.key"), dir.join("issuer.crt"));
        let ok = |c: &mut Command| assert!(c.output().unwrap().status.success(), "{c:?}");
        ok(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .arg("-out")
            .arg(&key));
        ok(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-subj",
                "/CN=fspack-test-issuer",
                "-days",
                "2",
            ])
            .arg("-key")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let signing = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut authorized = false;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    let (name, value) = line.split_once(':').unwrap_or(("", ""));
                    authorized |=
                        name.eq_ignore_ascii_case("authorization") && value.trim() == basic;
                    line.clear();
                }
                let mut stream = stream;
                let reply = if authorized {
                    let body = format!(r#"{{"token":"{}"}}"#, jwt(&signing));
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Some(TokenIssuer { realm, cert })
    }

    /// The `auth:` section of a registry config that trusts this issuer.
    pub fn registry_auth(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.cert.display()
        )
    }
}

/// A token granting no repository access (enough for `GET /v2/`), signed ES256 and naming its key
/// by the libtrust key ID the registry derives from the certificate.
fn jwt(key: &SigningKey) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = format!(
        r#"{{"typ":"JWT","alg":"ES256","kid":"{}"}}"#,
        libtrust_key_id(key)
    );
    let claims = format!(
        r#"{{"iss":"{ISSUER}","sub":"alice","aud":"{SERVICE}","exp":{},"nbf":{},"iat":{now},"jti":"{now}","access":[]}}"#,
        now + 300,
        now - 10
    );
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// docker/libtrust's key ID: the first 240 bits of the sha256 of the public key's DER, in
/// base32, in groups of four joined by `:`.
fn libtrust_key_id(key: &SigningKey) -> String {
    use sha2::Digest as _;
    let der = key.verifying_key().to_public_key_der().unwrap();
    let hash = sha2::Sha256::digest(der.as_bytes());
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = String::new();
    for b in &hash[..30] {
        bits.push_str(&format!("{b:08b}"));
    }
    let b32: Vec<u8> = bits
        .as_bytes()
        .chunks(5)
        .map(|c| ABC[usize::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()])
        .collect();
    b32.chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}
