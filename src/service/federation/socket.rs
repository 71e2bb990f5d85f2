//! Federation requests over an outbound TCP socket (Workers `connect()`), for ports other
//! than 443: a deployed Worker's `fetch()` silently sends `https://host:8448/` to port 443
//! (`wrangler dev` honours the port, so local runs do not show it). TLS is the runtime's
//! (`secureTransport: "on"`, SNI and certificate checks for the hostname connected to);
//! HTTP/1.1 is written and parsed by [`crate::core::federation::http1`].
//!
//! A caller that talks to one server again and again from one Durable Object (the
//! `Destination` sender) keeps its connection open between requests ([`Kept`]): a new
//! TCP and TLS handshake per transaction was most of a message's time on the wire. Sockets
//! cannot outlive the request of a plain Worker invocation, but an object's requests share
//! its I/O context, so the object can hold one.

use std::cell::RefCell;
use std::pin::Pin;

use futures_util::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use worker::{SecureTransport, Socket};

use crate::core::federation::discovery::Destination;
use crate::core::federation::http1::{self, Parsed};
use crate::core::time::now_ms;
use crate::service::deadline::before;

/// A kept connection is reused only this soon after its last request (servers close idle
/// connections; a stale one costs a failed attempt before a new connection).
const KEEP_IDLE_MS: u64 = 30_000;

/// One kept-alive connection (per [`Destination`] address and TLS mode), for
/// [`send_kept`]. Held by a Durable Object; never shared between objects.
#[derive(Default)]
pub struct Kept {
    slot: RefCell<Option<KeptConn>>,
}

struct KeptConn {
    key: (String, u16, bool),
    sock: Socket,
    last_used: u64,
}

impl Kept {
    /// The kept connection to `key`, if fresh enough; a connection to another address or an
    /// idle one is closed.
    async fn take(&self, key: &(String, u16, bool), deadline: u64) -> Option<Socket> {
        let mut conn = self.slot.borrow_mut().take()?;
        if &conn.key == key && now_ms().saturating_sub(conn.last_used) < KEEP_IDLE_MS {
            return Some(conn.sock);
        }
        let _ = before(deadline, conn.sock.close()).await;
        None
    }

    async fn put(&self, key: (String, u16, bool), sock: Socket, deadline: u64) {
        let old = self.slot.borrow_mut().replace(KeptConn { key, sock, last_used: now_ms() });
        if let Some(mut old) = old {
            let _ = before(deadline, old.sock.close()).await;
        }
    }
}

/// Like [`send`] over `kept`'s connection when it has one to `dest` (`request` must then be
/// written with keep-alive), else over a new one that is kept afterwards if the response
/// allows ([`http1::reusable`]). A kept connection that fails before any byte of the
/// response arrived (the server closed it meanwhile) is replaced by a new one and the request
/// sent again: the requests sent this way are idempotent (transactions, by their ID).
pub async fn send_kept(
    kept: &Kept,
    dest: &Destination,
    tls: bool,
    request: &[u8],
    deadline: u64,
    max_body: usize,
) -> Result<http1::Response, String> {
    let key = (dest.host.clone(), dest.port, tls);
    if let Some(mut sock) = kept.take(&key, deadline).await {
        let out = exchange(&mut sock, request, deadline, max_body).await;
        match out {
            Ok(r) => {
                keep_or_close(kept, key, sock, &r, deadline).await;
                return Ok(r);
            }
            Err(f) => {
                let _ = before(deadline, sock.close()).await;
                if f.answered {
                    return Err(f.why);
                }
            }
        }
    }
    let mut sock = open(dest, tls)?;
    match exchange(&mut sock, request, deadline, max_body).await {
        Ok(r) => {
            keep_or_close(kept, key, sock, &r, deadline).await;
            Ok(r)
        }
        Err(f) => {
            let _ = before(deadline, sock.close()).await;
            Err(f.why)
        }
    }
}

async fn keep_or_close(kept: &Kept, key: (String, u16, bool), mut sock: Socket, r: &http1::Response, deadline: u64) {
    if http1::reusable(r) {
        kept.put(key, sock, deadline).await;
    } else {
        let _ = before(deadline, sock.close()).await;
    }
}

fn open(dest: &Destination, tls: bool) -> Result<Socket, String> {
    let transport = if tls { SecureTransport::On } else { SecureTransport::Off };
    crate::service::meter::outbound();
    Socket::builder().secure_transport(transport).connect(dest.host.clone(), dest.port).map_err(|e| format!("connect: {e}"))
}

/// Why an exchange failed, and whether any of the response had arrived.
struct Failure {
    why: String,
    answered: bool,
}

impl From<&str> for Failure {
    fn from(why: &str) -> Self {
        Failure { why: why.into(), answered: false }
    }
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Failure { why, answered: false }
    }
}

/// Sends `request` (a complete HTTP/1.1 request with `Connection: close`) and reads the
/// response, all before `deadline` (ms since the epoch). `tls: false` is the development
/// mode without TLS.
pub async fn send(dest: &Destination, tls: bool, request: &[u8], deadline: u64, max_body: usize) -> Result<http1::Response, String> {
    let mut sock = open(dest, tls)?;
    let out = exchange(&mut sock, request, deadline, max_body).await.map_err(|f| f.why);
    // Closing is best effort; the runtime reclaims the socket with the request anyway.
    let _ = before(deadline, sock.close()).await;
    out
}

async fn exchange(sock: &mut Socket, request: &[u8], deadline: u64, max_body: usize) -> Result<http1::Response, Failure> {
    before(deadline, sock.opened()).await.ok_or("connect timed out")?.map_err(|e| format!("connect: {e}"))?;
    let mut written = 0;
    while written < request.len() {
        let chunk = request.get(written..).unwrap_or_default();
        let n = before(deadline, poll_fn(|cx| Pin::new(&mut *sock).poll_write(cx, chunk)))
            .await
            .ok_or("write timed out")?
            .map_err(|e| format!("write: {e}"))?;
        if n == 0 {
            return Err("connection closed while writing".into());
        }
        written += n;
    }
    before(deadline, poll_fn(|cx| Pin::new(&mut *sock).poll_flush(cx))).await.ok_or("write timed out")?.map_err(|e| format!("write: {e}"))?;

    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
        let answered = !buf.is_empty();
        let n = {
            let mut rb = ReadBuf::new(&mut tmp);
            let read = before(deadline, poll_fn(|cx| Pin::new(&mut *sock).poll_read(cx, &mut rb))).await;
            match read {
                Some(Ok(())) => rb.filled().len(),
                Some(Err(e)) => return Err(Failure { why: format!("read: {e}"), answered }),
                // A timeout is final: the server may be working on it.
                None => return Err(Failure { why: "read timed out".into(), answered: true }),
            }
        };
        let eof = n == 0;
        buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
        let answered = !buf.is_empty();
        if buf.len() > max_body.saturating_add(http1::MAX_HEAD_BYTES + 64 * 1024) {
            return Err(Failure { why: "response too large".into(), answered });
        }
        // Re-parsing after every read costs a walk over the head and the chunk headers only.
        match http1::parse(&buf, eof, max_body) {
            Parsed::Done(r) => return Ok(r),
            Parsed::Invalid(e) => return Err(Failure { why: e, answered }),
            Parsed::Incomplete if eof => return Err(Failure { why: "connection closed early".into(), answered }),
            Parsed::Incomplete => {}
        }
    }
}
