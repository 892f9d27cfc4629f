//! Every answer is the JSON error shape, even to requests hyper cannot parse.
//!
//! hyper answers a request head it refuses by itself, before any handler runs, with a bare
//! 400, 414 or 431 and no body, then closes the connection. [`Guard`] sits between the socket
//! and hyper and checks each HTTP/1 request head by the rules hyper applies (the same httparse
//! with the same 100 header slots, the same `http` parsers for method and target, hyper's
//! Content-Length and Transfer-Encoding rules) before hyper sees it. A head hyper would refuse
//! is replaced by a small request of our own that carries the verdict in a header keyed with a
//! secret of this process; [`refusal`] reads it back in the handler, which answers with the
//! JSON error and `connection: close`. Ordering, keep-alive and shutdown stay hyper's: the
//! answer is queued behind any response still in flight, as every answer is.
//!
//! To find the next head on a kept-alive connection the guard follows the body: it counts a
//! Content-Length, or scans a chunked body for its end. After a request that asks for an
//! upgrade it stops checking (the handler closes the connection when it declines one).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use udc_core::{ApiError, OsRandom, Random};

/// hyper's limits: header fields per request (its `DEFAULT_MAX_HEADERS`) and request-target
/// bytes (its `MAX_URI_LEN`).
const MAX_HEADERS: usize = 100;
const MAX_URI_LEN: usize = u16::MAX as usize - 1;
/// The largest head the guard buffers: below hyper's read buffer (8 KiB + 400 KiB), so hyper's
/// own "head too large" can never answer first.
const MAX_HEAD: usize = 400 * 1024;
/// After a refusal, how long the socket is drained before it closes: unread request bytes would
/// turn the close into a reset that destroys the answer on its way.
const LINGER: Duration = Duration::from_secs(2);
const MARKER: &str = "x-udc-protocol-error";

/// The listener for `axum::serve`: each accepted connection wrapped in a [`Guard`].
pub struct GuardedListener(pub TcpListener);

impl axum::serve::Listener for GuardedListener {
    type Io = Guard;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guard, SocketAddr) {
        // axum's own accept loop: retries, and backs off when out of file descriptors.
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (Guard::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// What the guard found wrong with a request head, if `headers` are those of its stand-in.
/// A client that sends the header itself does not know the secret and gets nothing from it.
pub fn refusal(headers: &HeaderMap) -> Option<ApiError> {
    let (key, n) = headers.get(MARKER)?.to_str().ok()?.split_once('.')?;
    if key != secret() {
        return None;
    }
    Refusal::ALL
        .get(n.parse::<usize>().ok()?)
        .map(|r| r.error())
}

/// Random for each process and never sent anywhere: only the guard can make a valid marker.
fn secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut bytes = [0u8; 16];
        // Without the OS's randomness the marker is still unguessable enough to be harmless:
        // at worst a client crafts a request that is answered with an error.
        let _ = OsRandom.fill(&mut bytes);
        hex::encode(bytes)
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    UriTooLong,
    HeadTooLarge,
    TooManyHeaders,
    Malformed,
    ContentLength,
    TransferEncoding,
    BodyTooLarge,
}

impl Refusal {
    /// Indexed by the marker: `ALL[r as usize] == r`.
    const ALL: [Refusal; 7] = [
        Refusal::UriTooLong,
        Refusal::HeadTooLarge,
        Refusal::TooManyHeaders,
        Refusal::Malformed,
        Refusal::ContentLength,
        Refusal::TransferEncoding,
        Refusal::BodyTooLarge,
    ];

    fn error(self) -> ApiError {
        let too_large = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        let (status, code, message) = match self {
            Refusal::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "the request target is longer than 65534 bytes",
            ),
            Refusal::HeadTooLarge => (
                too_large,
                "headers_too_large",
                "the request head is larger than 400 KiB",
            ),
            Refusal::TooManyHeaders => (
                too_large,
                "headers_too_large",
                "the request has more than 100 header fields",
            ),
            Refusal::Malformed => (
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "the request line or a header is not valid HTTP/1.1 (the target must be a valid URI)",
            ),
            Refusal::ContentLength => (
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "Content-Length must be one non-negative decimal integer",
            ),
            Refusal::TransferEncoding => (
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "Transfer-Encoding needs HTTP/1.1 and must end in chunked",
            ),
            Refusal::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body too large",
            ),
        };
        ApiError::new(status, code, message)
    }
}

/// A refused head: why, and what its stand-in must look like for hyper to answer it the same
/// way (no body for HEAD, an HTTP/1.0 status line for 1.0).
#[derive(Debug, PartialEq, Eq)]
struct Refused {
    why: Refusal,
    head: bool,
    http10: bool,
}

impl Refused {
    fn stand_in(&self) -> Vec<u8> {
        format!(
            "{} / HTTP/1.{}\r\nconnection: close\r\n{MARKER}: {}.{}\r\n\r\n",
            if self.head { "HEAD" } else { "GET" },
            if self.http10 { 0 } else { 1 },
            secret(),
            self.why as usize,
        )
        .into_bytes()
    }
}

/// Checks the request head at the start of `buf` as hyper's server parser does. `Ok(None)`:
/// not complete yet. Otherwise the head's length and how what follows it is read.
fn inspect(buf: &[u8]) -> Result<Option<(usize, Mode)>, Refused> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(buf);
    let refused = |why| Refused {
        why,
        head: req.method == Some("HEAD"),
        http10: req.version == Some(0),
    };
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) if req.path.is_none() => {
            return Err(refused(Refusal::UriTooLong))
        }
        Ok(httparse::Status::Partial) => return Err(refused(Refusal::HeadTooLarge)),
        Err(httparse::Error::TooManyHeaders) => return Err(refused(Refusal::TooManyHeaders)),
        Err(_) => return Err(refused(Refusal::Malformed)),
    };
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_URI_LEN {
        return Err(refused(Refusal::UriTooLong));
    }
    if Method::from_bytes(method.as_bytes()).is_err() || http::Uri::try_from(target).is_err() {
        return Err(refused(Refusal::Malformed));
    }
    let http11 = req.version == Some(1);
    let mut upgrade = method == "CONNECT";
    let (mut chunked, mut length) = (None::<bool>, None::<u64>);
    for h in req.headers.iter() {
        if http::HeaderName::from_bytes(h.name.as_bytes()).is_err()
            || http::HeaderValue::from_bytes(h.value).is_err()
        {
            return Err(refused(Refusal::Malformed));
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(refused(Refusal::TransferEncoding));
            }
            // The last coding decides, across every Transfer-Encoding line.
            chunked = Some(ends_in_chunked(h.value));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = decimal(h.value).ok_or_else(|| refused(Refusal::ContentLength))?;
            if length.is_some_and(|prev| prev != n) {
                return Err(refused(Refusal::ContentLength));
            }
            // hyper keeps the top two values for itself (and answers a bare 431 to them).
            if n > u64::MAX - 2 {
                return Err(refused(Refusal::BodyTooLarge));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= http11;
        }
    }
    let next = match (chunked, length) {
        (Some(false), _) => return Err(refused(Refusal::TransferEncoding)),
        _ if upgrade => Mode::Passthrough,
        // Transfer-Encoding wins over Content-Length, as in hyper.
        (Some(true), _) => Mode::Chunked(Chunk::Size(0, false)),
        (None, Some(n)) if n > 0 => Mode::Body(n),
        (None, _) => Mode::Head,
    };
    Ok(Some((len, next)))
}

/// hyper reads Content-Length as digits only: no sign, no spaces, no overflow.
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// hyper reads the value as visible ASCII (else it refuses the request with a bare 400).
fn ends_in_chunked(v: &[u8]) -> bool {
    v.is_ascii()
        && std::str::from_utf8(v).is_ok_and(|s| {
            s.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
}

/// Where a chunked body's scan stands (RFC 9112 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size(u64, bool),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
    /// Not a chunked body after all: hyper will refuse it and close; stop looking.
    Broken,
}

impl Chunk {
    /// Scans `bytes`; how many of them belong to the body (all, unless it ends inside them).
    fn scan(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() && !matches!(self, Chunk::Done | Chunk::Broken) {
            if let Chunk::Data(left) = *self {
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                *self = if take == left {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - take)
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            *self = match (*self, b) {
                (Chunk::Size(n, _), b) if b.is_ascii_hexdigit() => {
                    let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                    match n.checked_mul(16).and_then(|n| n.checked_add(digit)) {
                        Some(n) => Chunk::Size(n, true),
                        None => Chunk::Broken,
                    }
                }
                (Chunk::Size(n, true), b';' | b' ' | b'\t') => Chunk::Extension(n),
                (Chunk::Size(n, true), b'\r') | (Chunk::Extension(n), b'\r') => Chunk::SizeLf(n),
                (Chunk::Extension(n), _) => Chunk::Extension(n),
                (Chunk::SizeLf(0), b'\n') => Chunk::TrailerStart,
                (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Size(0, false),
                (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
                (Chunk::TrailerLine, b'\r') => Chunk::TrailerLf,
                (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
                (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
                (Chunk::EndLf, b'\n') => Chunk::Done,
                _ => Chunk::Broken,
            };
        }
        i
    }
}

/// What the guard does with the bytes it reads next.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Head,
    /// A Content-Length body: this many bytes pass unchecked.
    Body(u64),
    Chunked(Chunk),
    /// After an upgrade was asked for: what follows may not be HTTP.
    Passthrough,
    /// Hyper is reading the stand-in of a refused head (from this offset).
    StandIn(Vec<u8>, usize),
    /// After a refusal: everything the client still sends is dropped.
    Discard,
}

/// One connection, its request heads checked before hyper reads them.
pub struct Guard {
    io: TcpStream,
    /// Read from the socket, not yet handed to hyper; the first `vetted` bytes are checked.
    buf: Vec<u8>,
    vetted: usize,
    mode: Mode,
    linger: Option<Pin<Box<Sleep>>>,
}

impl Guard {
    fn new(io: TcpStream) -> Guard {
        Guard {
            io,
            buf: Vec::new(),
            vetted: 0,
            mode: Mode::Head,
            linger: None,
        }
    }

    /// Reads more of the socket into `buf`; `Ok(false)` at the end of the stream.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut chunk = [0u8; 16 * 1024];
        let mut read = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        self.buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(!read.filled().is_empty()))
    }

    fn refused(&self) -> bool {
        matches!(self.mode, Mode::StandIn(..) | Mode::Discard)
    }
}

impl AsyncRead for Guard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.vetted > 0 {
                let n = this.vetted.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.vetted -= n;
                return Poll::Ready(Ok(()));
            }
            match &mut this.mode {
                Mode::Head => {
                    if !this.buf.is_empty() {
                        match inspect(&this.buf) {
                            Ok(Some((len, next))) => {
                                this.vetted = len;
                                this.mode = next;
                                continue;
                            }
                            Ok(None) => {}
                            Err(refused) => {
                                this.buf.clear();
                                this.mode = Mode::StandIn(refused.stand_in(), 0);
                                continue;
                            }
                        }
                    }
                    if !ready!(this.fill(cx))? {
                        // The client stopped mid-head (or between requests): hyper sees the
                        // same end of stream and answers nothing, as for any closed connection.
                        this.vetted = this.buf.len();
                        this.mode = Mode::Passthrough;
                        if this.vetted == 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
                Mode::Body(left) => {
                    if !this.buf.is_empty() {
                        let take = (*left).min(this.buf.len() as u64);
                        this.vetted = take as usize;
                        *left -= take;
                    } else {
                        // Body bytes go straight to hyper's buffer.
                        let limit = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(out.remaining());
                        let mut direct = ReadBuf::new(out.initialize_unfilled_to(limit));
                        ready!(Pin::new(&mut this.io).poll_read(cx, &mut direct))?;
                        let n = direct.filled().len();
                        out.advance(n);
                        *left -= n as u64;
                        if *left == 0 {
                            this.mode = Mode::Head;
                        }
                        return Poll::Ready(Ok(()));
                    }
                    if *left == 0 {
                        this.mode = Mode::Head;
                    }
                }
                Mode::Chunked(chunk) => {
                    let mut chunk = *chunk;
                    if this.buf.is_empty() {
                        if !ready!(this.fill(cx))? {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    this.vetted = chunk.scan(&this.buf);
                    this.mode = match chunk {
                        Chunk::Done => Mode::Head,
                        Chunk::Broken => {
                            this.vetted = this.buf.len();
                            Mode::Passthrough
                        }
                        _ => Mode::Chunked(chunk),
                    };
                }
                Mode::Passthrough => {
                    if !this.buf.is_empty() {
                        this.vetted = this.buf.len();
                        continue;
                    }
                    return Pin::new(&mut this.io).poll_read(cx, out);
                }
                Mode::StandIn(bytes, at) => {
                    let n = (bytes.len() - *at).min(out.remaining());
                    out.put_slice(&bytes[*at..*at + n]);
                    *at += n;
                    if *at == bytes.len() {
                        this.mode = Mode::Discard;
                    }
                    return Poll::Ready(Ok(()));
                }
                Mode::Discard => {
                    // Never an end of stream: hyper would take it for a client gone mid-request
                    // and drop the answer it is writing. It closes once that answer is out.
                    while ready!(this.fill(cx))? {
                        this.buf.clear();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for Guard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.refused() {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        }
        // A lingering close: send the end of the answer, then drain what the client still
        // sends (for a while), so the close does not reset the connection under the answer.
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        loop {
            match this.fill(cx) {
                Poll::Ready(Ok(true)) => this.buf.clear(),
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    if let Some(linger) = this.linger.as_mut() {
                        ready!(linger.as_mut().poll(cx));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(head: &[u8]) -> Result<Option<(usize, Mode)>, Refusal> {
        inspect(head).map_err(|r| r.why)
    }

    #[test]
    fn heads_hyper_would_refuse_are_refused_with_its_reason() {
        let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
        assert_eq!(verdict(long.as_bytes()), Err(Refusal::UriTooLong));
        let many: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(verdict(many.as_bytes()), Err(Refusal::TooManyHeaders));
        for bad in [
            &b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n"[..],
            b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(verdict(bad), Err(Refusal::Malformed), "{bad:?}");
        }
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\ncontent-length: -5\r\n\r\n"),
            Err(Refusal::ContentLength)
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"),
            Err(Refusal::ContentLength)
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n"),
            Err(Refusal::TransferEncoding)
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n"),
            Err(Refusal::TransferEncoding)
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\ntransfer-encoding: \xc3\xa9, chunked\r\n\r\n"),
            Err(Refusal::TransferEncoding)
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\ncontent-length: 18446744073709551614\r\n\r\n"),
            Err(Refusal::BodyTooLarge)
        );
        let endless = format!("GET /{}", "a".repeat(MAX_HEAD));
        assert_eq!(verdict(endless.as_bytes()), Err(Refusal::UriTooLong));
    }

    #[test]
    fn good_heads_pass_with_their_framing() {
        let get = b"GET /devices HTTP/1.1\r\nhost: x\r\n\r\nGET";
        assert_eq!(verdict(get), Ok(Some((get.len() - 3, Mode::Head))));
        assert_eq!(verdict(b"GET /devices HTTP/1.1\r\nhos"), Ok(None));
        let put = b"PUT /udc-files/k HTTP/1.1\r\ncontent-length: 8388608\r\n\r\n";
        assert_eq!(verdict(put), Ok(Some((put.len(), Mode::Body(8 << 20)))));
        let chunked =
            b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        assert_eq!(
            verdict(chunked),
            Ok(Some((chunked.len(), Mode::Chunked(Chunk::Size(0, false)))))
        );
        let ws = b"GET /realtime HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
        assert_eq!(verdict(ws), Ok(Some((ws.len(), Mode::Passthrough))));
    }

    #[test]
    fn a_chunked_body_ends_where_its_last_chunk_and_trailers_end() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nx-trailer: 1\r\n\r\nGET / HTTP/1.1";
        let mut chunk = Chunk::Size(0, false);
        // Fed in pieces, as a socket would deliver it.
        let mut seen = 0;
        for piece in body.chunks(3) {
            seen += chunk.scan(piece);
            if chunk == Chunk::Done {
                break;
            }
        }
        assert_eq!((chunk, seen), (Chunk::Done, body.len() - 14));
        let mut broken = Chunk::Size(0, false);
        broken.scan(b"zz\r\n");
        assert_eq!(broken, Chunk::Broken);
    }

    #[test]
    fn only_the_guard_can_mark_a_request_refused() {
        let refused = Refused {
            why: Refusal::UriTooLong,
            head: false,
            http10: false,
        };
        let stand_in = refused.stand_in();
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&stand_in).unwrap();
        let mut map = HeaderMap::new();
        for h in req.headers.iter() {
            map.insert(
                http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        assert_eq!(
            refusal(&map).map(|e| e.status),
            Some(StatusCode::URI_TOO_LONG)
        );
        map.insert(MARKER, http::HeaderValue::from_static("guess.0"));
        assert!(refusal(&map).is_none());
    }
}
