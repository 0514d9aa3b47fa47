//! Where credentials come from and where `fspack login` puts them: the Docker `config.json`
//! (`auths` entries, `credHelpers`, `credsStore` through `docker-credential-<name> get`) and the
//! containers `auth.json` (`REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`).
//! Lookup order for a registry, as docker's: `credHelpers[host]`, else `credsStore`, else the
//! `auths` entry. `fspack login` writes where docker would: to that helper when one is
//! configured (the file keeps an empty `auths` entry, as docker leaves), else inline.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use crate::error::RegistryError;
use crate::redact::{Secret, sanitize};
use crate::reference::{DOCKER_HUB_REGISTRY, normalize_registry, validate_registry};

/// The key Docker uses for Docker Hub in `auths` and credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A credential for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// User name and password (or a personal access token).
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token, exchanged with `grant_type=refresh_token`.
    IdentityToken(Secret),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The Docker config file: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The containers auth file: `REGISTRY_AUTH_FILE` or `${XDG_RUNTIME_DIR}/containers/auth.json`.
fn containers_auth_path() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return Some(PathBuf::from(f));
    }
    std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers/auth.json"))
}

/// Keys under which a registry may appear in `auths` or `credHelpers`.
fn keys_for(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB_REGISTRY {
        return [
            DOCKER_HUB_KEY,
            "index.docker.io",
            "docker.io",
            DOCKER_HUB_REGISTRY,
        ]
        .map(String::from)
        .to_vec();
    }
    vec![registry.to_string()]
}

/// Reduces an `auths` key (`https://host:port/v1/`, `host:port`) to a normalised `host:port`.
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    normalize_registry(k)
}

/// Looks up a credential for `registry`: in `file` alone if given, else the Docker config, then
/// the containers auth file. `Ok(None)` means "go anonymous".
pub(crate) fn lookup(
    registry: &str,
    file: Option<&Path>,
) -> Result<Option<Credential>, RegistryError> {
    let files: Vec<PathBuf> = match file {
        Some(f) => vec![f.to_path_buf()],
        None => docker_config_path()
            .into_iter()
            .chain(containers_auth_path())
            .collect(),
    };
    for path in files {
        let Some(cfg) = read_config(&path)? else {
            continue;
        };
        if let Some(c) = lookup_in(&cfg, registry, &path)? {
            tracing::debug!(registry, file = %path.display(), "using stored credentials");
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, RegistryError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::io(
                format!("read credentials file {}", path.display()),
                e,
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        RegistryError::Config(format!(
            "credentials file {} is not valid JSON: {e}",
            path.display()
        ))
    })
}

fn lookup_in(
    cfg: &ConfigFile,
    registry: &str,
    path: &Path,
) -> Result<Option<Credential>, RegistryError> {
    let keys = keys_for(registry);
    let server = keys[0].clone();
    if let Some(helper) = helper_for(cfg, registry) {
        return from_helper(&helper, &server);
    }
    let want = normalize_registry(registry);
    let entry = keys.iter().find_map(|k| cfg.auths.get(k)).or_else(|| {
        cfg.auths
            .iter()
            .find(|(k, _)| key_host(k) == want)
            .map(|(_, v)| v)
    });
    if let Some(e) = entry {
        if let Some(t) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(Secret::new(t))));
        }
        if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
            return decode_auth(a).map(Some).map_err(|why| {
                RegistryError::Config(format!(
                    "credentials file {}: entry for {registry}: {why}",
                    path.display()
                ))
            });
        }
        if let (Some(u), Some(p)) = (&e.username, &e.password) {
            return Ok(Some(Credential::Basic {
                username: u.clone(),
                password: Secret::new(p.clone()),
            }));
        }
    }
    Ok(None)
}

/// The credential helper docker would use for `registry`: `credHelpers[host]`, else
/// `credsStore` (docker/cli `configfile.GetCredentialsStore`).
fn helper_for(cfg: &ConfigFile, registry: &str) -> Option<String> {
    keys_for(registry)
        .iter()
        .find_map(|k| cfg.cred_helpers.get(k))
        .or(cfg.creds_store.as_ref())
        .filter(|h| !h.is_empty())
        .cloned()
}

/// Where `fspack login` put a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Inline (base64 `auths` entry) in this config file, mode 0600.
    File(PathBuf),
    /// In the credential helper `docker-credential-<helper>`; `file` names it.
    Helper {
        /// The helper's name (`pass`, `secretservice`, `osxkeychain`, ...).
        helper: String,
        /// The config file that configures it.
        file: PathBuf,
    },
}

fn helper_bin(helper: &str) -> Result<String, RegistryError> {
    if !helper
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(RegistryError::Config(format!(
            "invalid credential helper name {helper:?}"
        )));
    }
    Ok(format!("docker-credential-{helper}"))
}

/// Starts the credential helper `bin` for `action`, with piped stdin, stdout and stderr.
///
/// Errors: [`RegistryError::Config`] when `bin` is not installed (it is named by the Docker
/// config file, so that is where the fix lies: s10 fresh-eyes pass, a bare "No such file or
/// directory" before); the spawn's I/O error otherwise.
fn spawn_helper(bin: &str, action: &str) -> Result<std::process::Child, RegistryError> {
    Command::new(bin)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RegistryError::Config(format!(
                "credential helper {bin} is not installed, though the Docker config file names it (credsStore or credHelpers)\nhint: install {bin}, or remove that entry from the config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json)"
            )),
            _ => RegistryError::io(format!("run credential helper {bin}"), e),
        })
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; fails unless it exits 0.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(), RegistryError> {
    let bin = helper_bin(helper)?;
    let mut child = spawn_helper(&bin, action)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RegistryError::io(format!("run credential helper {bin}"), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let msg = String::from_utf8_lossy(&out.stdout);
        let why = if err.trim().is_empty() { msg } else { err };
        return Err(RegistryError::Config(format!(
            "credential helper {bin} {action} failed ({}): {}",
            out.status,
            sanitize(&why, 200)
        )));
    }
    Ok(())
}

/// Decodes an `auth` field: base64 of `user:password` (padding optional).
fn decode_auth(a: &str) -> Result<Credential, String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let raw = engine
        .decode(a.trim())
        .map_err(|_| "the auth field is not base64".to_string())?;
    let s = String::from_utf8(raw).map_err(|_| "the auth field is not UTF-8".to_string())?;
    let (u, p) = s
        .split_once(':')
        .ok_or("the auth field has no ':' between user and password")?;
    Ok(Credential::Basic {
        username: u.to_string(),
        password: Secret::new(p),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the server on stdin.
fn from_helper(helper: &str, server: &str) -> Result<Option<Credential>, RegistryError> {
    let bin = helper_bin(helper)?;
    let mut child = spawn_helper(&bin, "get")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RegistryError::io(format!("run credential helper {bin}"), e))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout);
        if msg.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let why = if err.trim().is_empty() { msg } else { err };
        return Err(RegistryError::Config(format!(
            "credential helper {bin} failed for {server} ({}): {}",
            out.status,
            sanitize(&why, 200)
        )));
    }
    let a: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|_| {
        RegistryError::Config(format!(
            "credential helper {bin} printed something that is not its JSON answer"
        ))
    })?;
    if a.username == "<token>" {
        return Ok(Some(Credential::IdentityToken(Secret::new(a.secret))));
    }
    Ok(Some(Credential::Basic {
        username: a.username,
        password: Secret::new(a.secret),
    }))
}

/// Checks and normalises the registry a user names at login (`docker.io`, `host:5000`).
fn login_key(registry: &str) -> Result<String, RegistryError> {
    let host = key_host(registry.trim());
    validate_registry(&host).map_err(|why| RegistryError::InvalidReference {
        input: registry.into(),
        reason: why,
    })?;
    Ok(if host == DOCKER_HUB_REGISTRY {
        DOCKER_HUB_KEY.to_string()
    } else {
        host
    })
}

fn load_json(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, RegistryError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Default::default()),
        Ok(b) => match serde_json::from_slice::<serde_json::Value>(&b) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(RegistryError::Config(format!(
                "credentials file {} is not a JSON object; not touching it",
                path.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(RegistryError::io(
            format!("read credentials file {}", path.display()),
            e,
        )),
    }
}

/// Writes the file all or nothing (`fspack_atomic`), mode 0600 from its first byte.
fn store_json(
    path: &Path,
    doc: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), RegistryError> {
    let ctx = |what: &str| format!("{what} credentials file {}", path.display());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryError::io(ctx("create the directory of"), e))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut body = serde_json::to_vec_pretty(doc).expect("a JSON map serialises");
    body.push(b'\n');
    fspack_atomic::write_with(
        path,
        fspack_atomic::Options::durable_mode(0o600),
        |f, _| f.write_all(&body),
        |_, e| e,
    )
    .map_err(|e| RegistryError::io(ctx("write"), e))
}

/// Stores `username`/`password` for `registry` where docker would: in the credential helper the
/// Docker config file (`file`, or `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`)
/// configures for it (`credHelpers[host]`, else `credsStore`), leaving an empty `auths` entry;
/// otherwise inline in its `auths` table. The file is written with mode 0600 and its other
/// content kept.
///
/// Errors: `Config` for an unusable file, a user name with ':', or a failing helper.
pub fn login_store(
    registry: &str,
    username: &str,
    password: &str,
    file: Option<&Path>,
) -> Result<Stored, RegistryError> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => docker_config_path().ok_or_else(|| {
            RegistryError::Config(
                "cannot find the Docker config file: neither DOCKER_CONFIG nor HOME is set".into(),
            )
        })?,
    };
    if username.contains(':') {
        return Err(RegistryError::Config(
            "user names cannot contain ':'".into(),
        ));
    }
    let key = login_key(registry)?;
    let mut doc = load_json(&path)?;
    let helper = read_config(&path)?.and_then(|cfg| helper_for(&cfg, registry));
    if let Some(helper) = &helper {
        let body = serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
        run_helper(helper, "store", body.to_string().as_bytes())?;
    }
    let auths = doc
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let serde_json::Value::Object(auths) = auths else {
        return Err(RegistryError::Config(format!(
            "credentials file {}: \"auths\" is not an object",
            path.display()
        )));
    };
    if let Some(helper) = helper {
        // The secret lives in the helper; the file only remembers the login, as docker does.
        auths.insert(key, serde_json::json!({}));
        store_json(&path, &doc)?;
        return Ok(Stored::Helper { helper, file: path });
    }
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    auths.insert(key, serde_json::json!({ "auth": encoded }));
    store_json(&path, &doc)?;
    Ok(Stored::File(path))
}

/// Removes every `auths` entry for `registry` from the Docker config file (`file` or the default);
/// returns whether anything was removed.
pub fn logout(registry: &str, file: Option<&Path>) -> Result<bool, RegistryError> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => match docker_config_path() {
            Some(p) => p,
            None => return Ok(false),
        },
    };
    let key = login_key(registry)?;
    let want = key_host(&key);
    let mut erased = false;
    if let Some(helper) = read_config(&path)?.and_then(|cfg| helper_for(&cfg, registry)) {
        run_helper(&helper, "erase", key.as_bytes())?;
        erased = true;
    }
    let mut doc = load_json(&path)?;
    let Some(serde_json::Value::Object(auths)) = doc.get_mut("auths") else {
        return Ok(erased);
    };
    let before = auths.len();
    auths.retain(|k, _| key_host(k) != want);
    if auths.len() == before {
        return Ok(erased);
    }
    store_json(&path, &doc)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn auths_forms_and_docker_hub_keys() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "c.json",
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
                "https://Reg.Example:5000/v1/":{"username":"u2","password":"p2"},
                "tok.example":{"identitytoken":"refresh"},
                "bad.example":{"auth":"!!"}
            }}"#,
        );
        let basic = |u: &str, p: &str| Credential::Basic {
            username: u.into(),
            password: Secret::new(p),
        };
        assert_eq!(
            lookup(DOCKER_HUB_REGISTRY, Some(&f)).unwrap(),
            Some(basic("user", "pass"))
        );
        assert_eq!(
            lookup("reg.example:5000", Some(&f)).unwrap(),
            Some(basic("u2", "p2"))
        );
        assert_eq!(
            lookup("tok.example", Some(&f)).unwrap(),
            Some(Credential::IdentityToken(Secret::new("refresh")))
        );
        assert_eq!(lookup("other.example", Some(&f)).unwrap(), None);
        let e = lookup("bad.example", Some(&f)).unwrap_err().to_string();
        assert!(e.contains("not base64") && !e.contains("!!"), "{e}");
        assert_eq!(
            lookup("x.example", Some(&d.path().join("missing.json"))).unwrap(),
            None
        );
    }

    #[test]
    fn missing_helper_binary_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "c.json",
            r#"{"credHelpers":{"h.example":"fspack-test-missing-helper"}}"#,
        );
        let e = lookup("h.example", Some(&f)).unwrap_err().to_string();
        assert!(
            e.contains("docker-credential-fspack-test-missing-helper is not installed"),
            "{e}"
        );
        assert!(e.contains("hint: install"), "{e}");
    }

    #[test]
    fn login_then_logout_keeps_other_content_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub/config.json");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(
            &f,
            r#"{"credsStore":"","auths":{"keep.example":{"auth":"YTpi"}},"other":1}"#,
        )
        .unwrap();
        let written = login_store("localhost:5000", "alice", "s3cret", Some(&f)).unwrap();
        assert_eq!(written, Stored::File(f.clone()));
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            lookup("localhost:5000", Some(&f)).unwrap(),
            Some(Credential::Basic {
                username: "alice".into(),
                password: Secret::new("s3cret")
            })
        );
        login_store("docker.io", "bob", "pw", Some(&f)).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert!(doc["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        assert_eq!(doc["other"], 1);
        assert!(logout("localhost:5000", Some(&f)).unwrap());
        assert!(!logout("localhost:5000", Some(&f)).unwrap());
        assert_eq!(lookup("localhost:5000", Some(&f)).unwrap(), None);
        assert!(lookup("keep.example", Some(&f)).unwrap().is_some());
        // A new file is created 0600 too.
        let g = d.path().join("new/config.json");
        login_store("h.example", "u", "p", Some(&g)).unwrap();
        assert_eq!(
            std::fs::metadata(&g).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(login_store("bad host/x", "u", "p", Some(&g)).is_err());
    }
}
