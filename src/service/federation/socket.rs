//! Federation requests over an outbound TCP socket (Workers `connect()`), for ports other
//! than 443: a deployed Worker's `fetch()` silently sends `https://host:8448/` to port 443
//! (`wrangler dev` honours the port, so local runs do not show it). TLS is the runtime's
//! (`secureTransport: "on"`, SNI and certificate checks for the hostname connected to);
//! HTTP/1.1 is written and parsed by [`crate::core::federation::http1`].

use std::pin::Pin;

use futures_util::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use worker::{SecureTransport, Socket};

use crate::core::federation::discovery::Destination;
use crate::core::federation::http1::{self, Parsed};
use crate::service::deadline::before;

/// Sends `request` (a complete HTTP/1.1 request with `Connection: close`) and reads the
/// response, all before `deadline` (ms since the epoch). `tls: false` is the development
/// mode without TLS.
pub async fn send(dest: &Destination, tls: bool, request: &[u8], deadline: u64, max_body: usize) -> Result<http1::Response, String> {
    let transport = if tls { SecureTransport::On } else { SecureTransport::Off };
    let mut sock = Socket::builder().secure_transport(transport).connect(dest.host.clone(), dest.port).map_err(|e| format!("connect: {e}"))?;
    let out = exchange(&mut sock, request, deadline, max_body).await;
    // Closing is best effort; the runtime reclaims the socket with the request anyway.
    let _ = before(deadline, sock.close()).await;
    out
}

async fn exchange(sock: &mut Socket, request: &[u8], deadline: u64, max_body: usize) -> Result<http1::Response, String> {
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
        let n = {
            let mut rb = ReadBuf::new(&mut tmp);
            before(deadline, poll_fn(|cx| Pin::new(&mut *sock).poll_read(cx, &mut rb)))
                .await
                .ok_or("read timed out")?
                .map_err(|e| format!("read: {e}"))?;
            rb.filled().len()
        };
        let eof = n == 0;
        buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
        if buf.len() > max_body.saturating_add(http1::MAX_HEAD_BYTES + 64 * 1024) {
            return Err("response too large".into());
        }
        // Re-parsing after every read costs a walk over the head and the chunk headers only.
        match http1::parse(&buf, eof, max_body) {
            Parsed::Done(r) => return Ok(r),
            Parsed::Invalid(e) => return Err(e),
            Parsed::Incomplete if eof => return Err("connection closed early".into()),
            Parsed::Incomplete => {}
        }
    }
}
