//! Media IDs, content types, file names and the headers media is served with.
//!
//! Spec (v1.19): client-server-api, "Content repository": "Matrix Content (`mxc://`)
//! URIs", "Security considerations" and "Serving inline content"; and the
//! `Content-Disposition` rules of `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`.

use sha2::{Digest, Sha256};

use super::crypto::{hex, random_alpha};

/// R2 key of content: the hex SHA-256 of the bytes, so identical uploads are stored once.
pub fn content_key(sha256_hex: &str) -> String {
    format!("sha256/{sha256_hex}")
}

/// R2 key of a cached thumbnail of the content with hash `sha256_hex`.
pub fn thumbnail_key(sha256_hex: &str, width: u32, height: u32, method: &str) -> String {
    format!("thumb/{sha256_hex}/{width}x{height}-{method}")
}

/// R2 key of a cached thumbnail of remote media, as the remote made it (keyed by the
/// request; remote thumbnails are asked for, not generated here). `server` is a valid server
/// name and `media_id` a [`valid_media_id`], so the key has no `..` or stray separators.
pub fn remote_thumbnail_key(server: &str, media_id: &str, width: u32, height: u32, method: &str) -> String {
    format!("remote_thumb/{server}/{media_id}/{width}x{height}-{method}")
}

/// A fresh media ID: 24 letters and digits (spec: only `A-Za-z0-9`, `_`, `-`).
pub fn new_media_id() -> String {
    random_alpha(24)
}

/// Whether `id` is an acceptable media ID: non-empty, at most 255 bytes, only `A-Za-z0-9_-`
/// (spec: "Security considerations", the directory-traversal rule).
pub fn valid_media_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The types that may be served with `Content-Disposition: inline`
/// (spec: "Serving inline content").
pub const INLINE_SAFE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// The recommended policy (spec: "Content repository").
pub const CONTENT_SECURITY_POLICY: &str =
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

pub const OCTET_STREAM: &str = "application/octet-stream";

fn is_token_char(c: char) -> bool {
    // RFC 9110 `token`.
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Normalises an uploaded `Content-Type` for storage and serving: `type/subtype` in lower
/// case plus a `charset` parameter if it is a plain token; anything malformed (or absent)
/// becomes `application/octet-stream`. The result never contains a control character,
/// quote or comma, so it is safe as a header value.
pub fn normalise_content_type(raw: Option<&str>) -> String {
    let Some(raw) = raw else { return OCTET_STREAM.into() };
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let Some((ty, sub)) = essence.split_once('/') else { return OCTET_STREAM.into() };
    if ty.is_empty() || sub.is_empty() || !ty.chars().all(is_token_char) || !sub.chars().all(is_token_char) {
        return OCTET_STREAM.into();
    }
    if essence.len() > 127 {
        return OCTET_STREAM.into();
    }
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty() && v.len() <= 40 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')).then(|| v.to_ascii_lowercase())
    });
    match charset {
        Some(cs) if ty == "text" => format!("{essence}; charset={cs}"),
        _ => essence,
    }
}

/// The `type/subtype` part of a (normalised) content type.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Whether content of this type may be served `inline`.
pub fn is_inline_safe(content_type: &str) -> bool {
    let e = essence(content_type);
    INLINE_SAFE_TYPES.iter().any(|t| t.eq_ignore_ascii_case(e))
}

/// Cleans a client-given file name: drops control characters (CR/LF included), path
/// separators and quotes, trims dots and spaces at the ends, caps the length at 255 bytes.
/// `None` if nothing usable is left.
pub fn sanitise_filename(raw: &str) -> Option<String> {
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_control() || matches!(c, '/' | '\\' | '"' | '\u{2028}' | '\u{2029}' | '\u{feff}') {
            continue;
        }
        if out.len() + c.len_utf8() > 255 {
            break;
        }
        out.push(c);
    }
    let t = out.trim_matches(|c: char| c == '.' || c.is_whitespace());
    (!t.is_empty()).then(|| t.to_owned())
}

/// `Content-Disposition` for serving: `inline` for inline-safe types, else `attachment`;
/// with the file name when there is one. ASCII names go in a quoted `filename`; others as
/// RFC 6266 / RFC 8187 `filename*=utf-8''…` (percent-encoded) with no raw non-ASCII byte.
pub fn content_disposition(content_type: &str, filename: Option<&str>) -> String {
    let kind = if is_inline_safe(content_type) { "inline" } else { "attachment" };
    disposition(kind, filename)
}

/// `Content-Disposition` of the given kind (`inline` or `attachment`).
pub fn disposition(kind: &str, filename: Option<&str>) -> String {
    match filename.and_then(sanitise_filename) {
        None => kind.to_owned(),
        Some(name) if name.bytes().all(|b| (0x20..0x7f).contains(&b)) => format!("{kind}; filename=\"{name}\""),
        Some(name) => {
            const ATTR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                .remove(b'!')
                .remove(b'#')
                .remove(b'$')
                .remove(b'&')
                .remove(b'+')
                .remove(b'-')
                .remove(b'.')
                .remove(b'^')
                .remove(b'_')
                .remove(b'`')
                .remove(b'|')
                .remove(b'~');
            format!("{kind}; filename*=utf-8''{}", percent_encoding::utf8_percent_encode(&name, ATTR))
        }
    }
}

/// The headers every piece of served media carries, besides its type and disposition.
pub fn safety_headers() -> [(&'static str, &'static str); 3] {
    [("X-Content-Type-Options", "nosniff"), ("Content-Security-Policy", CONTENT_SECURITY_POLICY), ("Cross-Origin-Resource-Policy", "cross-origin")]
}

/// Headers for serving content: type, disposition, the safety headers and the length.
pub fn serving_headers(content_type: &str, disposition: String, len: Option<u64>) -> Vec<(String, String)> {
    let mut h = vec![
        ("Content-Type".to_owned(), content_type.to_owned()),
        ("Content-Disposition".to_owned(), disposition),
        ("Cache-Control".to_owned(), "private, max-age=86400".to_owned()),
    ];
    h.extend(safety_headers().iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if let Some(n) = len {
        h.push(("Content-Length".into(), n.to_string()));
    }
    h
}

/// Counts, hashes and splits an upload as its chunks arrive (used by
/// `store::media::store_content`). Parts are exactly `part_bytes` long, as R2 multipart
/// uploads want every part but the last to be the same size; a part is only cut once more
/// than `part_bytes` are buffered, so a body of at most one part never becomes multipart and
/// the last part is never empty.
pub struct UploadSplitter {
    hasher: Sha256,
    total: u64,
    limit: u64,
    part_bytes: usize,
    buf: Vec<u8>,
}

/// More than the limit has arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct OverLimit;

impl UploadSplitter {
    pub fn new(limit: u64, part_bytes: usize) -> Self {
        UploadSplitter { hasher: Sha256::new(), total: 0, limit, part_bytes: part_bytes.max(1), buf: Vec::new() }
    }

    /// Takes a chunk; returns the parts now complete. `Err` as soon as the bytes received
    /// exceed the limit (whatever `Content-Length` said).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, OverLimit> {
        self.total += chunk.len() as u64;
        if self.total > self.limit {
            return Err(OverLimit);
        }
        self.buf.extend_from_slice(chunk);
        let mut parts = Vec::new();
        while self.buf.len() > self.part_bytes {
            let rest = self.buf.split_off(self.part_bytes);
            let part = std::mem::replace(&mut self.buf, rest);
            // Parts are hashed as they leave, so content that fits in one part is never
            // hashed here (see `into_single`).
            self.hasher.update(&part);
            parts.push(part);
        }
        Ok(parts)
    }

    /// Ends the upload: the hex SHA-256, the total size and the bytes not yet in a part.
    pub fn finish(mut self) -> (String, u64, Vec<u8>) {
        self.hasher.update(&self.buf);
        (hex(&self.hasher.finalize()), self.total, self.buf)
    }

    /// Ends an upload that never filled a part: the whole content, not hashed yet, so the
    /// caller can hash it natively (on Workers, WebCrypto is several times faster than this
    /// crate's SHA-256 compiled to wasm). `None` once a part has left.
    pub fn into_single(self) -> Option<Vec<u8>> {
        (self.total == self.buf.len() as u64).then_some(self.buf)
    }
}

/// Whether a `Content-Length` header value declares more than `limit` bytes. A number too
/// big for a `u64` is more than any limit (it must not be taken as "no length").
pub fn declared_length_exceeds(value: &str, limit: u64) -> bool {
    let v = value.trim();
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<u64>().map_or(true, |n| n > limit)
}

/// A download's `Range` request (RFC 9110 §14), resolved against the content's size.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// No (usable) range: the whole content, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// A well-formed range outside the content, 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range. Several ranges, other units and malformed values are
/// ignored (the whole content is served), as RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return ByteRange::Full };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return ByteRange::Full };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> { (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten() };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => ByteRange::Full,
        (true, false) => match num(b) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial { start: size.saturating_sub(n), end: size - 1 },
        },
        (false, _) => {
            let Some(start) = num(a) else { return ByteRange::Full };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return ByteRange::Full,
                }
            };
            if start >= size {
                return ByteRange::Unsatisfiable;
            }
            ByteRange::Partial { start, end: end.unwrap_or(size - 1).min(size - 1) }
        }
    }
}

/// Whether a header value is safe to send (no CR, LF or other control characters).
pub fn header_safe(v: &str) -> bool {
    !v.chars().any(|c| c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids() {
        let id = new_media_id();
        assert!(valid_media_id(&id));
        assert_eq!(id.len(), 24);
        assert!(!valid_media_id(""));
        assert!(!valid_media_id("../etc/passwd"));
        assert!(!valid_media_id("a.b"));
        assert!(!valid_media_id("a%2e"));
        assert!(!valid_media_id("é"));
        assert!(valid_media_id("abc_DEF-123"));
    }

    #[test]
    fn content_types() {
        assert_eq!(normalise_content_type(None), OCTET_STREAM);
        assert_eq!(normalise_content_type(Some("IMAGE/PNG")), "image/png");
        assert_eq!(normalise_content_type(Some("text/plain; charset=UTF-8")), "text/plain; charset=utf-8");
        assert_eq!(normalise_content_type(Some("image/png; charset=utf-8")), "image/png");
        assert_eq!(normalise_content_type(Some("text/html\r\nSet-Cookie: a=b")), OCTET_STREAM);
        assert_eq!(normalise_content_type(Some("text/plain; charset=\"x\r\ny\"")), "text/plain");
        assert_eq!(normalise_content_type(Some("nonsense")), OCTET_STREAM);
        assert_eq!(normalise_content_type(Some("a/b c")), OCTET_STREAM);
        assert_eq!(normalise_content_type(Some("/png")), OCTET_STREAM);
        assert!(header_safe(&normalise_content_type(Some("text/plain;\u{0}x"))));
    }

    #[test]
    fn inline_only_for_safe_types() {
        assert!(is_inline_safe("image/png"));
        assert!(is_inline_safe("text/plain; charset=utf-8"));
        assert!(!is_inline_safe("text/html"));
        assert!(!is_inline_safe("image/svg+xml"));
        assert!(!is_inline_safe("application/javascript"));
        assert_eq!(content_disposition("text/html", None), "attachment");
        assert_eq!(content_disposition("image/png", Some("cat.png")), "inline; filename=\"cat.png\"");
    }

    #[test]
    fn hostile_file_names() {
        assert_eq!(sanitise_filename("a\r\nSet-Cookie: x=y.txt").as_deref(), Some("aSet-Cookie: x=y.txt"));
        assert_eq!(sanitise_filename("../../etc/passwd").as_deref(), Some("etcpasswd"));
        assert_eq!(sanitise_filename("\"quoted\".txt").as_deref(), Some("quoted.txt"));
        assert_eq!(sanitise_filename("..."), None);
        assert_eq!(sanitise_filename("\r\n"), None);
        assert_eq!(sanitise_filename(&"x".repeat(1000)).unwrap().len(), 255);
        let d = content_disposition("text/html", Some("evil\"; filename=\"x.html\r\nX: y"));
        assert!(header_safe(&d));
        assert_eq!(d, "attachment; filename=\"evil; filename=x.htmlX: y\"");
        let d = content_disposition("image/png", Some("kätzchen \"1\".png"));
        assert_eq!(d, "inline; filename*=utf-8''k%C3%A4tzchen%201.png");
        assert!(d.is_ascii());
    }

    #[test]
    fn upload_splitting() {
        // Within one part: no part is cut; the hash is of all bytes.
        let mut s = UploadSplitter::new(100, 10);
        assert!(s.push(b"01234").unwrap().is_empty());
        assert!(s.push(b"56789").unwrap().is_empty());
        let (h, n, rest) = s.finish();
        assert_eq!((n, rest.as_slice()), (10, &b"0123456789"[..]));
        assert_eq!(h, hex(&Sha256::digest(b"0123456789")));
        // Past one part: equal parts, a non-empty remainder.
        let mut s = UploadSplitter::new(100, 10);
        let mut parts = s.push(&[7u8; 25]).unwrap();
        parts.extend(s.push(&[8u8; 5]).unwrap());
        let (_, n, rest) = s.finish();
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10]);
        assert_eq!((n, rest.len()), (30, 10));
        // The limit counts bytes received, chunk by chunk.
        let mut s = UploadSplitter::new(12, 10);
        assert!(s.push(&[0; 12]).is_ok());
        assert_eq!(s.push(&[0; 1]), Err(OverLimit));
        let mut s = UploadSplitter::new(0, 10);
        assert!(s.push(b"").is_ok());
        assert_eq!(s.finish().1, 0);
        // Hashing part by part is the hash of all bytes, whatever the chunks.
        let all: Vec<u8> = (0..=255u8).cycle().take(97).collect();
        for (part, chunk) in [(10, 1), (10, 7), (10, 33), (96, 5), (97, 97), (1000, 10)] {
            let mut s = UploadSplitter::new(1000, part);
            let mut got = Vec::new();
            for c in all.chunks(chunk) {
                got.extend(s.push(c).unwrap().concat());
            }
            let (h, n, rest) = s.finish();
            got.extend(rest);
            assert_eq!((h, n, got.as_slice()), (hex(&Sha256::digest(&all)), 97, all.as_slice()), "part {part} chunk {chunk}");
        }
        // One part: the content back, unhashed; past one part: refused.
        let mut s = UploadSplitter::new(100, 10);
        s.push(b"0123456789").unwrap();
        assert_eq!(s.into_single().as_deref(), Some(&b"0123456789"[..]));
        let mut s = UploadSplitter::new(100, 10);
        assert_eq!(s.push(b"0123456789a").unwrap().len(), 1);
        assert!(s.into_single().is_none());
    }

    #[test]
    fn declared_lengths() {
        assert!(!declared_length_exceeds("1000", 1000));
        assert!(declared_length_exceeds("1001", 1000));
        assert!(declared_length_exceeds(" 1001 ", 1000));
        assert!(declared_length_exceeds("99999999999999999999999999", u64::MAX));
        assert!(!declared_length_exceeds("", 0));
        assert!(!declared_length_exceeds("abc", 0));
        assert!(!declared_length_exceeds("-5", 0));
        assert!(!declared_length_exceeds("\u{e9}1", 0));
    }

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Partial { start: 0, end: 4 });
        assert_eq!(parse_range(Some("bytes=5-"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=4-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Full);
    }

    #[test]
    fn serving_headers_are_safe() {
        let h = serving_headers("text/html", content_disposition("text/html", Some("x.html")), Some(3));
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("X-Content-Type-Options"), Some("nosniff"));
        assert!(get("Content-Security-Policy").unwrap().starts_with("sandbox"));
        assert_eq!(get("Content-Disposition"), Some("attachment; filename=\"x.html\""));
        assert_eq!(get("Content-Length"), Some("3"));
        assert_eq!(content_key("ab"), "sha256/ab");
    }
}
