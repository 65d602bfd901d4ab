//! Zero-copy serving of `/images` and `/files`: the kernel sends the file (sendfile(2), page
//! cache → socket) instead of hyper copying it through user space in 64 KiB chunks.
//!
//! Owns the fast path for the requests that move gigabytes. The accept loop hands every new
//! connection to [`serve`] first: it peeks at the request head without consuming it, and
//! [`decide`] (pure, table-tested) says whether it is a plain `GET`/`HEAD` of a file under
//! `/images/` or `/files/` with at most one satisfiable byte range. Those are answered here with
//! the same status and headers tower-http's `ServeDir` gives (RFC 9110 §14 for ranges) and
//! counted in the same transfer table. Anything else is left unread and the connection goes to
//! hyper: PnP, the dashboard, the API, configs, percent-escapes, `..` or dot-files, conditional
//! requests, several or unsatisfiable ranges, a missing file, a head not complete in the first
//! segment. `ServeDir` then answers as it always has (404, 416, refusing traversal).
//!
//! A connection hyper holds comes back here too: hyper reads it through [`UntilFile`], which
//! ends hyper's part (a clean end of stream between two requests) when the next request is one
//! this path takes. So a router that fetches its image on the connection its PnP agent keeps
//! alive still gets it by sendfile, on the download threads: through hyper, the copy ran on the
//! threads that answer PnP and took their CPU (the paced benchmark's tail, BENCHMARKS.md
//! 2026-12-02). How IOS-XE holds its connections was never captured
//! (`docs/pnp-protocol.md` §3.1). As at the head of a connection, a request head not complete
//! in the first segment stays with hyper.
//!
//! Bodies are sent from a separate runtime ([`bulk_runtime`]): a router's PnP exchange never
//! waits in a task queue behind a hundred downloads (on loopback, a sendfile call also pays the
//! receiver's TCP processing, milliseconds per call).
//!
//! sendfile reads the file synchronously; a staging box serves one or two images that stay in
//! the page cache after the first download, so the worker thread is not held on disk reads.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::files::transfers::Transfers;

/// Longest request head looked at; longer heads go to hyper.
const HEAD_MAX: usize = 8 << 10;
/// Most bytes asked of one sendfile call (the socket buffer usually takes less).
const SEND_MAX: usize = 4 << 20;

/// Which directory a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// `/images/…`
    Images,
    /// `/files/…`
    Files,
}

/// A `Range` header this path serves (RFC 9110 §14.1.2 `int-range` / `suffix-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// `bytes=a-`
    From(u64),
    /// `bytes=a-b`
    FromTo(u64, u64),
    /// `bytes=-n`
    Suffix(u64),
}

/// A file request the fast path answers (once the file is found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRequest {
    /// Bytes of the request head, consumed once we answer.
    pub(crate) head_len: usize,
    /// `HEAD`: headers only.
    pub(crate) head_only: bool,
    /// Directory named.
    pub(crate) dir: Dir,
    /// Path inside it, `/`-separated plain names.
    pub(crate) name: String,
    /// Request path as sent (for the transfer table and logs).
    pub(crate) path: String,
    /// Range asked for.
    pub(crate) range: Option<RangeSpec>,
    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    pub(crate) keep_alive: bool,
}

/// What to do with the bytes at the head of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Serve it here.
    Serve(FileRequest),
    /// Leave it to hyper.
    HandOff,
}

/// Classifies a request head (possibly followed by more bytes, possibly incomplete).
pub(crate) fn decide(buf: &[u8]) -> Decision {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = req.parse(buf) else {
        return Decision::HandOff;
    };
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Decision::HandOff,
    };
    let (Some(path), Some(version)) = (req.path, req.version) else {
        return Decision::HandOff;
    };
    // A per-job URL serves the same file (the transfer table reads its tag).
    let file_path = match crate::domain::job::download_parts(path) {
        Some((serial, tag, rest)) if plain_name(serial) && plain_name(tag) => {
            &path[path.len() - rest.len() - 1..]
        }
        Some(_) => return Decision::HandOff,
        None => path,
    };
    let (dir, name) = if let Some(n) = file_path.strip_prefix("/images/") {
        (Dir::Images, n)
    } else if let Some(n) = file_path.strip_prefix("/files/") {
        (Dir::Files, n)
    } else {
        return Decision::HandOff;
    };
    if !plain_name(name) {
        return Decision::HandOff;
    }
    let (mut close, mut keep) = (false, false);
    let mut range = None;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Decision::HandOff;
        };
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    close |= token.eq_ignore_ascii_case("close");
                    keep |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            "range" => {
                if range.is_some() {
                    return Decision::HandOff;
                }
                match parse_range(value) {
                    Some(r) => range = Some(r),
                    None => return Decision::HandOff,
                }
            }
            // A body, or semantics ServeDir implements and this path does not.
            "content-length" if value.trim() == "0" => {}
            "content-length"
            | "transfer-encoding"
            | "expect"
            | "upgrade"
            | "if-modified-since"
            | "if-unmodified-since"
            | "if-match"
            | "if-none-match"
            | "if-range" => {
                return Decision::HandOff;
            }
            _ => {}
        }
    }
    Decision::Serve(FileRequest {
        head_len,
        head_only,
        dir,
        name: name.to_string(),
        path: path.to_string(),
        range,
        // HTTP/1.1 persists unless told to close; HTTP/1.0 only when asked to keep alive.
        keep_alive: !close && (version == 1 || keep),
    })
}

/// `/`-separated names of letters, digits and `._+-~`, none empty, none starting with a dot
/// (so never `.` or `..`). Anything else, percent-escapes included, is ServeDir's to judge.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b))
        })
}

/// A single range in the strict form ServeDir (http-range-header) accepts: no whitespace, no
/// leading zeros, no `+`. Several ranges or anything odd: `None` (handed off).
fn parse_range(value: &str) -> Option<RangeSpec> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let ok = !s.is_empty()
            && s.bytes().all(|c| c.is_ascii_digit())
            && (s.len() == 1 || !s.starts_with('0'));
        if ok { s.parse().ok() } else { None }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, false) => num(b).map(RangeSpec::Suffix),
        (false, true) => num(a).map(RangeSpec::From),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(RangeSpec::FromTo(a, b))
        }
        (true, true) => None,
    }
}

/// First and last byte for `range` of a `len`-byte file, when satisfiable and served the way
/// ServeDir serves it (an end past the file is clamped; a suffix longer than the file, a start
/// at or past its end, or any range of an empty file are left to ServeDir's 416).
pub(crate) fn resolve(range: RangeSpec, len: u64) -> Option<(u64, u64)> {
    let last = len.checked_sub(1)?;
    match range {
        RangeSpec::From(a) if a <= last => Some((a, last)),
        RangeSpec::FromTo(a, b) if a <= last => Some((a, b.min(last))),
        RangeSpec::Suffix(n) if n >= 1 && n <= len => Some((len - n, last)),
        _ => None,
    }
}

/// The response head for a file of `len` bytes; `span` is the resolved range, if any.
pub(crate) fn response_head(
    req: &FileRequest,
    len: u64,
    span: Option<(u64, u64)>,
    modified: Option<SystemTime>,
    now: SystemTime,
) -> String {
    let mime = mime_guess::from_path(&req.name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let mut h = String::with_capacity(256);
    let (status, length) = match span {
        Some((a, b)) => ("206 Partial Content", b - a + 1),
        None => ("200 OK", len),
    };
    h.push_str("HTTP/1.1 ");
    h.push_str(status);
    h.push_str("\r\ncontent-type: ");
    h.push_str(mime);
    h.push_str("\r\naccept-ranges: bytes\r\n");
    if let Some(m) = modified {
        h.push_str(&format!(
            "last-modified: {}\r\n",
            httpdate::fmt_http_date(m)
        ));
    }
    if let Some((a, b)) = span {
        h.push_str(&format!("content-range: bytes {a}-{b}/{len}\r\n"));
    }
    h.push_str(&format!("content-length: {length}\r\n"));
    h.push_str(if req.keep_alive {
        "connection: keep-alive\r\n"
    } else {
        "connection: close\r\n"
    });
    h.push_str(&format!("date: {}\r\n\r\n", httpdate::fmt_http_date(now)));
    h
}

/// Directories served and the transfer table fed.
#[derive(Clone)]
pub(crate) struct FastFiles {
    /// `images/`
    pub(crate) images: PathBuf,
    /// `files/`
    pub(crate) files: PathBuf,
    /// Live download progress.
    pub(crate) transfers: Transfers,
    /// Runtime whose threads send file bodies ([`bulk_runtime`]), so downloads never queue
    /// ahead of PnP exchanges on the main runtime; `None`: sent on the caller's runtime.
    pub(crate) bulk: Option<tokio::runtime::Handle>,
    /// How long a connection may stay silent before its next request ([limits] idle-timeout).
    pub(crate) idle_timeout: std::time::Duration,
}

impl FastFiles {
    fn open(&self, req: &FileRequest) -> Option<(std::fs::File, std::fs::Metadata)> {
        let dir: &Path = match req.dir {
            Dir::Images => &self.images,
            Dir::Files => &self.files,
        };
        // A symlink out of the folder: left to the slow path, which refuses it with a WARN.
        if !super::confined(dir, &req.name) {
            return None;
        }
        let file = std::fs::File::open(dir.join(&req.name)).ok()?;
        let meta = file.metadata().ok()?;
        meta.is_file().then_some((file, meta))
    }
}

/// The runtime that sends file bodies: two worker threads (`bulk`), normal priority (at nice 10
/// a download client sharing the CPU took ~15 % of the throughput; BENCHMARKS.md).
pub(crate) fn bulk_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bulk")
        .enable_all()
        .build()
}

/// Answers file requests at the head of `stream` for as long as they come; returns the stream
/// untouched at the first request that is not one (for hyper), or `None` once it is closed.
pub(crate) async fn serve(
    mut stream: TcpStream,
    fast: &FastFiles,
    ip: IpAddr,
    cancel: &CancellationToken,
) -> Option<TcpStream> {
    let mut buf = vec![0u8; HEAD_MAX];
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return None,
            // Silent for too long: closed (an idle connection holds a descriptor).
            _ = tokio::time::sleep(fast.idle_timeout) => return None,
            r = stream.peek(&mut buf) => match r {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            },
        };
        let Decision::Serve(req) = decide(&buf[..n]) else {
            return Some(stream);
        };
        let Some((file, meta)) = fast.open(&req) else {
            return Some(stream);
        };
        let len = meta.len();
        let span = match req.range {
            None => None,
            Some(r) => match resolve(r, len) {
                Some(s) => Some(s),
                None => return Some(stream),
            },
        };
        // The head was only peeked at: consume it now that we answer it.
        if stream.read_exact(&mut buf[..req.head_len]).await.is_err() {
            return None;
        }
        let head = response_head(&req, len, span, meta.modified().ok(), SystemTime::now());
        tracing::debug!(%ip, path = %req.path, head_only = req.head_only, "file request (sendfile)");
        if stream.write_all(head.as_bytes()).await.is_err() {
            return None;
        }
        if !req.head_only {
            let (start, end) = match span {
                Some((a, b)) => (a, b + 1),
                None => (0, len),
            };
            let sent = match &fast.bulk {
                None => send_body(&stream, &file, start, end, fast, ip, &req.path).await,
                Some(bulk) => {
                    let (std, ok) =
                        on_bulk(bulk, stream, file, start, end, fast.clone(), ip, req.path).await?;
                    stream = TcpStream::from_std(std).ok()?;
                    ok
                }
            };
            if !sent {
                return None;
            }
        }
        if !req.keep_alive {
            let _ = stream.shutdown().await;
            return None;
        }
    }
}

/// The connection as hyper reads it: before each read it peeks at what is waiting, and a whole
/// request head that [`decide`] serves here reads as the end of the stream, so hyper finishes
/// (nothing unread in its buffer) and [`UntilFile::into_stream`] gives the connection back to
/// [`serve`]. The request hyper was handed the connection at is always hyper's (it is one
/// [`serve`] declined, e.g. a missing file), so the two never pass one request back and forth.
/// A head that looks like a file request inside a request body ends that connection (hyper
/// reports the body cut short), nobody else's.
pub(crate) struct UntilFile {
    stream: TcpStream,
    /// Hyper has read its first bytes: from now on a file request ends its part.
    started: bool,
    /// The stream ended here because a file request waits.
    file_next: bool,
}

impl UntilFile {
    pub(crate) fn new(stream: TcpStream) -> UntilFile {
        UntilFile {
            stream,
            started: false,
            file_next: false,
        }
    }

    /// The connection, when hyper's part ended at a file request (`None`: the client closed it).
    pub(crate) fn into_stream(self) -> Option<TcpStream> {
        self.file_next.then_some(self.stream)
    }
}

impl tokio::io::AsyncRead for UntilFile {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.file_next {
            return Poll::Ready(Ok(()));
        }
        if this.started {
            // Not zeroed: this runs before every read of every PnP request.
            let mut head = [std::mem::MaybeUninit::<u8>::uninit(); HEAD_MAX];
            let mut peeked = tokio::io::ReadBuf::uninit(&mut head);
            match this.stream.poll_peek(cx, &mut peeked) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(_)) => {}
            }
            let waiting = peeked.filled();
            // Only a GET or HEAD is worth parsing (a PnP POST is not).
            let file_like = waiting.starts_with(b"GET ") || waiting.starts_with(b"HEAD ");
            if file_like && matches!(decide(waiting), Decision::Serve(_)) {
                this.file_next = true;
                return Poll::Ready(Ok(()));
            }
        }
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.started = true;
        }
        r
    }
}

impl tokio::io::AsyncWrite for UntilFile {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// [`send_body`] on the `bulk` runtime: the connection moves there for the body and comes back
/// (`None` when it cannot be moved, or the bulk runtime is shutting down).
#[allow(clippy::too_many_arguments)]
async fn on_bulk(
    bulk: &tokio::runtime::Handle,
    stream: TcpStream,
    file: std::fs::File,
    start: u64,
    end: u64,
    fast: FastFiles,
    ip: IpAddr,
    path: String,
) -> Option<(std::net::TcpStream, bool)> {
    let std = stream.into_std().ok()?;
    bulk.spawn(async move {
        let stream = TcpStream::from_std(std).ok()?;
        let ok = send_body(&stream, &file, start, end, &fast, ip, &path).await;
        Some((stream.into_std().ok()?, ok))
    })
    .await
    .ok()
    .flatten()
}

/// Sends bytes `start..end` of `file`, counted in the transfer table; false when the
/// connection cannot go on (router gone, or the file shrank under us).
async fn send_body(
    stream: &TcpStream,
    file: &std::fs::File,
    start: u64,
    end: u64,
    fast: &FastFiles,
    ip: IpAddr,
    path: &str,
) -> bool {
    let id = fast
        .transfers
        .start(ip, path.to_string(), Some(end - start));
    let mut offset = start;
    while offset < end {
        let count = usize::try_from(end - offset)
            .unwrap_or(SEND_MAX)
            .min(SEND_MAX);
        let sent = stream
            .async_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream.as_fd(), file.as_fd(), Some(&mut offset), count)
                    .map_err(io::Error::from)
            })
            .await;
        match sent {
            Ok(0) => {
                let serial = fast.transfers.serial_of(id);
                tracing::warn!(serial, %ip, %path, offset, "file got shorter while being served (replaced on disk?): closing the connection; the router's md5 check will catch it");
                fast.transfers.end(id, false);
                return false;
            }
            Ok(n) => fast.transfers.add(id, n),
            Err(_) => {
                fast.transfers.end(id, false);
                return false;
            }
        }
    }
    fast.transfers.end(id, true);
    true
}

#[cfg(test)]
mod tests;
