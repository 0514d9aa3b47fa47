//! A fault proxy in front of the real registry: it forwards every request unchanged and corrupts
//! blob `Range` responses on demand, so the tests see what a flaky disk or a broken cache between
//! fspack and the registry would do. Faults only; the registry behind it is real.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does to `206 Partial Content` answers to blob GETs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything as is.
    None,
    /// Flip one byte in the middle of the first `n` such bodies of at least 64 KiB (data
    /// pieces, not the small chunk-index fetches).
    FlipFirst(u64),
    /// Flip one byte in the middle of every such body of at least 64 KiB.
    FlipAlways,
    /// As `FlipFirst`, for whole-blob `200 OK` bodies too (a blob whose index is a blob of its
    /// own is fetched without `Range` when it is small).
    FlipFirstAny(u64),
}

/// Counters of what went through.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bodies of blob GETs (200 or 206) forwarded, in bytes.
    pub blob_bytes: AtomicU64,
    /// Blob GET requests.
    pub blob_gets: AtomicU64,
    /// Bytes flipped.
    pub flips: AtomicU64,
    /// Upload sessions opened (`POST .../blobs/uploads/`).
    pub upload_posts: AtomicU64,
    /// Blob existence checks (`HEAD .../blobs/<digest>`).
    pub blob_heads: AtomicU64,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:port` to use in references.
    pub addr: String,
    /// What it has seen.
    pub counters: Arc<Counters>,
    fault: Arc<Mutex<Fault>>,
    stop: Arc<AtomicBool>,
    delay: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`host:port`) with `fault`.
    pub fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let fault = Arc::new(Mutex::new(fault));
        let delay = Arc::new(AtomicU64::new(0));
        let (c, s, up, f, d) = (
            counters.clone(),
            stop.clone(),
            upstream.to_string(),
            fault.clone(),
            delay.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (c, up, d) = (c.clone(), up.clone(), d.clone());
                let fault = *f.lock().unwrap();
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, fault, &c, &d);
                });
            }
        });
        FaultProxy {
            addr,
            counters,
            fault,
            stop,
            delay,
        }
    }

    /// Holds every blob body back for `ms` milliseconds per MiB before sending it (a slow link,
    /// so a test sees a lazy mount while its fill is still running); 0 turns it off.
    pub fn set_delay_ms_per_mib(&self, ms: u64) {
        self.delay.store(ms, Ordering::Relaxed);
    }

    /// Changes the fault for connections accepted from now on.
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Reads one request head (through the blank line); `None` at a clean end of the connection.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(if head.is_empty() { None } else { Some(head) });
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            return Ok(Some(head));
        }
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// One client connection: each request goes upstream on a fresh connection that closes after
/// the answer, so the whole answer can be read, changed and sent back.
fn serve(
    conn: TcpStream,
    upstream: &str,
    fault: Fault,
    c: &Counters,
    delay: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut client = conn;
    // One request per connection: the upstream closes after its answer, and so does this side
    // (the client opens a new connection for its next request).
    if let Some(head) = read_head(&mut reader)? {
        let text = String::from_utf8_lossy(&head).into_owned();
        let len: usize = header(&text, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let first = text.lines().next().unwrap_or("").to_string();
        let is_blob_get = first.starts_with("GET ") && first.contains("/blobs/sha256:");
        if first.starts_with("POST ") && first.contains("/blobs/uploads/") {
            c.upload_posts.fetch_add(1, Ordering::Relaxed);
        }
        if first.starts_with("HEAD ") && first.contains("/blobs/sha256:") {
            c.blob_heads.fetch_add(1, Ordering::Relaxed);
        }
        let mut rewritten = String::new();
        for (i, l) in text.split("\r\n").enumerate() {
            if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
                continue;
            }
            if l.is_empty() {
                continue;
            }
            rewritten.push_str(l);
            rewritten.push_str("\r\n");
            if i == 0 {
                rewritten.push_str("Connection: close\r\n");
            }
        }
        rewritten.push_str("\r\n");
        let mut up = TcpStream::connect(upstream)?;
        up.write_all(rewritten.as_bytes())?;
        up.write_all(&body)?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(answer.len());
        let status = String::from_utf8_lossy(&answer[..split.min(answer.len())])
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        if is_blob_get && (status.contains(" 200") || status.contains(" 206")) {
            c.blob_gets.fetch_add(1, Ordering::Relaxed);
            c.blob_bytes
                .fetch_add((answer.len() - split) as u64, Ordering::Relaxed);
        }
        let any = matches!(fault, Fault::FlipFirstAny(_));
        let flippable = status.contains(" 206") || (any && status.contains(" 200"));
        if is_blob_get && flippable && answer.len() > split {
            let flip = match fault {
                Fault::None => false,
                Fault::FlipAlways => answer.len() - split >= 64 << 10,
                Fault::FlipFirst(n) | Fault::FlipFirstAny(n) => {
                    answer.len() - split >= 64 << 10
                        && c.flips
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                                (f < n).then_some(f + 1)
                            })
                            .is_ok()
                }
            };
            if flip {
                let at = split + (answer.len() - split) / 2;
                answer[at] ^= 0x5a;
                if fault == Fault::FlipAlways {
                    c.flips.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let ms = delay.load(Ordering::Relaxed);
        if is_blob_get && ms > 0 {
            let mib = (answer.len() - split) as f64 / f64::from(1u32 << 20);
            std::thread::sleep(std::time::Duration::from_millis((ms as f64 * mib) as u64));
        }
        client.write_all(&answer)?;
    }
    Ok(())
}
