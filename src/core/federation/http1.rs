//! A minimal HTTP/1.1 client codec for federation requests over a raw TCP (TLS) socket: a
//! deployed Worker's `fetch()` ignores ports other than 443, so those requests are written and
//! read by hand. Parsing never panics and never holds more than a size cap: a status line,
//! headers, then a body delimited by `Content-Length`, chunked encoding, or the end of the
//! connection. A request either closes the connection (`Connection: close`) or keeps it
//! for the next request ([`reusable`] tells whether the response allows that).

/// Most bytes of headers accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What [`parse`] made of the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed (and may still come).
    Incomplete,
    Done(Response),
    Invalid(String),
}

/// Writes a request. `host` is the `Host` header (the server name, spec "Resolving server
/// names"); `headers` are extra headers (`Authorization`, `Content-Type`); `keep_alive`
/// leaves the connection open for another request (HTTP/1.1's default) instead of asking
/// the server to close it.
pub fn request(method: &str, host: &str, path_and_query: &str, headers: &[(&str, &str)], body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = format!("{method} {path_and_query} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        // Header values we write are ours (server names, signatures): no line breaks, but
        // never let one through.
        if !v.contains(['\r', '\n']) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("User-Agent: Stratus\r\n");
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Parses a response from the bytes received so far. `eof`: the peer closed the connection,
/// so a body without a length ends here and anything short is truncated. `max` caps the
/// body; a larger one is `Invalid`.
pub fn parse(buf: &[u8], eof: bool, max: usize) -> Parsed {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD_BYTES {
            return Parsed::Invalid("response headers too large".into());
        }
        return if eof { Parsed::Invalid("connection closed before the headers ended".into()) } else { Parsed::Incomplete };
    };
    if head_end > MAX_HEAD_BYTES {
        return Parsed::Invalid("response headers too large".into());
    }
    let (Some(head), Some(rest)) = (buf.get(..head_end), buf.get(head_end + 4..)) else {
        return Parsed::Invalid("bad response".into());
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return Parsed::Invalid("response headers are not UTF-8".into());
    };
    let mut lines = head.split("\r\n");
    let status = match parse_status_line(lines.next().unwrap_or_default()) {
        Ok(s) => s,
        Err(e) => return Parsed::Invalid(e),
    };
    let mut headers = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Parsed::Invalid("malformed header line".into());
        };
        if k.is_empty() || k.contains([' ', '\t']) {
            return Parsed::Invalid("malformed header name".into());
        }
        headers.push((k.to_ascii_lowercase(), v.trim_matches([' ', '\t']).to_owned()));
    }
    let get = |name: &str| headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    // 1xx, 204 and 304 have no body.
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let chunked = get("transfer-encoding").iter().any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("chunked")));
    let body = if no_body {
        Vec::new()
    } else if chunked {
        match dechunk(rest, max) {
            Chunks::Done(b) => b,
            Chunks::Incomplete if !eof => return Parsed::Incomplete,
            Chunks::Incomplete => return Parsed::Invalid("connection closed inside a chunked body".into()),
            Chunks::Invalid(e) => return Parsed::Invalid(e),
        }
    } else if let Some(len) = get("content-length").first() {
        let lengths = get("content-length");
        if lengths.iter().any(|l| l != len) {
            return Parsed::Invalid("conflicting Content-Length".into());
        }
        let Ok(len) = len.parse::<usize>() else {
            return Parsed::Invalid("bad Content-Length".into());
        };
        if len > max {
            return Parsed::Invalid("response too large".into());
        }
        match rest.get(..len) {
            Some(b) => b.to_vec(),
            None if !eof => return Parsed::Incomplete,
            None => return Parsed::Invalid("connection closed before the body ended".into()),
        }
    } else {
        if rest.len() > max {
            return Parsed::Invalid("response too large".into());
        }
        if !eof {
            return Parsed::Incomplete;
        }
        rest.to_vec()
    };
    Parsed::Done(Response { status, headers, body })
}

/// Whether the connection can carry another request after `r`: the server did not ask to
/// close it, and the body had a known end (a body read to the end of the connection used it
/// up). RFC 9112 section 9.3.
pub fn reusable(r: &Response) -> bool {
    let close = r.header("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    let delimited = (100..200).contains(&r.status)
        || r.status == 204
        || r.status == 304
        || r.header("content-length").is_some()
        || r.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    !close && delimited
}

fn parse_status_line(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err("not an HTTP/1.x response".into());
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 {
        return Err("bad status code".into());
    }
    code.parse::<u16>().ok().filter(|c| (100..600).contains(c)).ok_or_else(|| "bad status code".to_string())
}

enum Chunks {
    Done(Vec<u8>),
    Incomplete,
    Invalid(String),
}

/// Walks the chunks without copying (the caller re-parses as bytes arrive, so a partial
/// body must cost only a walk over the chunk headers), then copies once complete.
fn dechunk(all: &[u8], max: usize) -> Chunks {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let (mut pos, mut total) = (0usize, 0usize);
    loop {
        let rest = all.get(pos..).unwrap_or_default();
        let Some(line_end) = find(rest, b"\r\n") else {
            return if rest.len() > 1024 { Chunks::Invalid("bad chunk size line".into()) } else { Chunks::Incomplete };
        };
        let Ok(line) = std::str::from_utf8(rest.get(..line_end).unwrap_or_default()) else {
            return Chunks::Invalid("bad chunk size line".into());
        };
        // Chunk extensions (`;name=value`) are ignored.
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16) else {
            return Chunks::Invalid("bad chunk size".into());
        };
        pos += line_end + 2;
        let rest = all.get(pos..).unwrap_or_default();
        if size == 0 {
            // Trailers, then an empty line; we only need to have seen the end.
            let complete = rest.starts_with(b"\r\n") || find(rest, b"\r\n\r\n").is_some();
            if !complete {
                return Chunks::Incomplete;
            }
            let mut body = Vec::with_capacity(total);
            for (start, len) in ranges {
                body.extend_from_slice(all.get(start..start + len).unwrap_or_default());
            }
            return Chunks::Done(body);
        }
        if size > max.saturating_sub(total) {
            return Chunks::Invalid("response too large".into());
        }
        let Some(crlf) = rest.get(size..size + 2) else {
            return Chunks::Incomplete;
        };
        if crlf != b"\r\n" {
            return Chunks::Invalid("chunk not followed by CRLF".into());
        }
        ranges.push((pos, size));
        total += size;
        pos += size + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(p: Parsed) -> Response {
        match p {
            Parsed::Done(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_requests() {
        let r = request("PUT", "b.org:8448", "/_matrix/x?y=1", &[("Authorization", "X-Matrix a"), ("Bad", "x\r\nEvil: 1")], b"{}", false);
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("PUT /_matrix/x?y=1 HTTP/1.1\r\nHost: b.org:8448\r\nAuthorization: X-Matrix a\r\n"));
        assert!(!s.contains("Evil"));
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(s.ends_with("\r\n\r\n{}"));
        let g = String::from_utf8(request("GET", "h", "/", &[], b"", false)).unwrap();
        assert!(!g.contains("Content-Length") && g.contains("Connection: close"));
        let k = String::from_utf8(request("GET", "h", "/", &[], b"", true)).unwrap();
        assert!(!k.contains("Connection"));
    }

    #[test]
    fn tells_reusable_connections() {
        let r = |raw: &str, eof| done(parse(raw.as_bytes(), eof, 100));
        assert!(reusable(&r("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false)));
        assert!(reusable(&r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", false)));
        assert!(reusable(&r("HTTP/1.1 204 No Content\r\n\r\n", false)));
        assert!(!reusable(&r("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\n{}", false)));
        // A body that ended with the connection used it up.
        assert!(!reusable(&r("HTTP/1.1 200 OK\r\n\r\n{}", true)));
    }

    #[test]
    fn content_length_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        for cut in 0..raw.len() {
            assert_eq!(parse(&raw[..cut], false, 100), Parsed::Incomplete, "{cut}");
        }
        let r = done(parse(raw, false, 100));
        assert_eq!((r.status, r.body.as_slice(), r.header("CONTENT-TYPE")), (200, &b"{\"a\":1}"[..], Some("application/json")));
        assert!(matches!(parse(&raw[..raw.len() - 1], true, 100), Parsed::Invalid(_)));
        assert!(matches!(parse(raw, false, 3), Parsed::Invalid(_)));
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse(&raw[..cut], false, 100), Parsed::Incomplete, "{cut}");
        }
        let r = done(parse(raw, false, 100));
        assert_eq!((r.status, r.body.as_slice()), (404, &b"{\"a\":1}"[..]));
        let trailers = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(done(parse(trailers, false, 100)).body, b"x");
        assert!(matches!(parse(raw, false, 5), Parsed::Invalid(_)));
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, 100), Parsed::Invalid(_)));
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxyz", false, 100), Parsed::Invalid(_)));
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n", true, 100), Parsed::Invalid(_)));
        // A huge size does not overflow.
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", false, 100), Parsed::Invalid(_)));
    }

    #[test]
    fn bodies_until_close_and_without_body() {
        let raw = b"HTTP/1.0 200 OK\r\n\r\nhello";
        assert_eq!(parse(raw, false, 100), Parsed::Incomplete);
        assert_eq!(done(parse(raw, true, 100)).body, b"hello");
        assert!(matches!(parse(raw, true, 2), Parsed::Invalid(_)));
        assert_eq!(done(parse(b"HTTP/1.1 204 No Content\r\n\r\n", false, 100)).body, b"");
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for raw in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 099 x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\n\xff: x\r\n\r\n",
            b"",
            b"\r\n\r\n",
        ] {
            assert!(matches!(parse(raw, true, 100), Parsed::Invalid(_)), "{:?}", String::from_utf8_lossy(raw));
        }
        let big = vec![b'a'; MAX_HEAD_BYTES + 10];
        assert!(matches!(parse(&big, false, 100), Parsed::Invalid(_)));
        assert_eq!(parse(b"HTTP/1.1 200", true, 100), Parsed::Invalid("connection closed before the headers ended".into()));
    }
}
