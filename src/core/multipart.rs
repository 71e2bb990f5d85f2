//! `multipart/mixed` for media over federation (spec: server-server-api, "Content
//! Repository": `GET /_matrix/federation/v1/media/download/{mediaId}` and `/thumbnail/…`
//! answer with exactly two parts, a JSON metadata object and then either the bytes or a
//! `Location` header; RFC 2046 §5.1 for the framing).
//!
//! The writer produces what Synapse produces (and parses): the boundary unquoted and last in
//! the `Content-Type` (Synapse takes everything after `boundary=`), the metadata part's only
//! header `Content-Type: application/json` (Synapse asserts it is the first header value), the
//! media part with `Content-Type` and then `Content-Disposition` (in that order: Synapse's
//! parser reads the media part's first header value as its content type). The parser takes any RFC 2046
//! framing (preamble, quoted boundary, transport padding, bare LF line ends) and never panics:
//! answers come from other servers.

use serde_json::{Map, Value};

/// Most header bytes of one part.
pub const MAX_PART_HEADER_BYTES: usize = 16 * 1024;
/// Most parts looked at (the spec says two; a few more are tolerated and ignored).
pub const MAX_PARTS: usize = 8;
/// Largest metadata part (JSON).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Why an answer is not a valid multipart body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartError {
    /// The `Content-Type` is not `multipart/*` with a usable `boundary`.
    NoBoundary,
    /// No delimiter line anywhere.
    MissingDelimiter,
    /// A part without the delimiter that ends it (or no close delimiter): cut short.
    Truncated,
    /// A part's headers are unreadable or too long, or too many parts.
    BadPart,
    /// Not the two parts the spec asks for: metadata (a JSON object) and the media.
    BadShape(&'static str),
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultipartError::NoBoundary => write!(f, "not multipart with a boundary"),
            MultipartError::MissingDelimiter => write!(f, "no multipart delimiter"),
            MultipartError::Truncated => write!(f, "multipart body cut short"),
            MultipartError::BadPart => write!(f, "unreadable multipart part"),
            MultipartError::BadShape(why) => write!(f, "unexpected multipart shape: {why}"),
        }
    }
}

/// One part: its headers (names lower-cased) and its body, borrowed from the whole body.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl Part<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The boundary of a `multipart/…; boundary=…` content type (quoted or not), if it is a valid
/// RFC 2046 boundary (1–70 characters of its set).
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let essence = params.next()?.trim();
    let (top, _) = essence.split_once('/')?;
    if !top.trim().eq_ignore_ascii_case("multipart") {
        return None;
    }
    let value = params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then_some(v.trim())
    })?;
    let value = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => value,
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    (!value.is_empty() && value.len() <= 70 && value.chars().all(ok_char) && !value.ends_with(' ')).then(|| value.to_owned())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// What follows a `--boundary` at `at`: `Some(true)` the close delimiter, `Some(false)` a
/// part follows (the index after the line end is returned separately), `None` not a
/// delimiter line (the boundary string followed by something else).
fn after_delimiter(body: &[u8], at: usize) -> Option<(bool, usize)> {
    let rest = body.get(at..)?;
    if rest.starts_with(b"--") {
        return Some((true, at + 2));
    }
    // Transport padding (RFC 2046: linear white space before the line end).
    let pad = rest.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    let rest = rest.get(pad..)?;
    if rest.starts_with(b"\r\n") {
        Some((false, at + pad + 2))
    } else if rest.starts_with(b"\n") {
        Some((false, at + pad + 1))
    } else {
        None
    }
}

/// The next delimiter line at or after `from`: (index of the line break before `--`, or of
/// `--` itself at the very start; whether it closes; index after it).
fn next_delimiter(body: &[u8], dash_boundary: &[u8], from: usize) -> Option<(usize, bool, usize)> {
    let mut search = from;
    loop {
        let at = find(body, dash_boundary, search)?;
        let line_start = if at == 0 {
            Some(0)
        } else if at >= 2 && body.get(at - 2..at) == Some(b"\r\n") {
            Some(at - 2)
        } else if body.get(at - 1) == Some(&b'\n') {
            Some(at - 1)
        } else {
            None
        };
        if let Some(start) = line_start.filter(|s| *s >= from || at == 0) {
            if let Some((close, next)) = after_delimiter(body, at + dash_boundary.len()) {
                return Some((start, close, next));
            }
        }
        search = at + 1;
    }
}

fn parse_headers(raw: &[u8]) -> Option<Vec<(String, String)>> {
    if raw.len() > MAX_PART_HEADER_BYTES {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header (obsolete, but legal in MIME).
            let (_, v) = headers.last_mut()?;
            v.push(' ');
            v.push_str(line.trim());
            continue;
        }
        let (k, v) = line.split_once(':')?;
        let k = k.trim();
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    Some(headers)
}

/// Splits a multipart body into its parts. Errors on a missing first delimiter, a part not
/// ended by a delimiter, no close delimiter, unreadable headers or more than [`MAX_PARTS`].
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let dash_boundary = [b"--".as_slice(), boundary.as_bytes()].concat();
    let (_, mut close, mut pos) = next_delimiter(body, &dash_boundary, 0).ok_or(MultipartError::MissingDelimiter)?;
    let mut parts = Vec::new();
    while !close {
        if parts.len() >= MAX_PARTS {
            return Err(MultipartError::BadPart);
        }
        let (end, next_close, next_pos) = next_delimiter(body, &dash_boundary, pos).ok_or(MultipartError::Truncated)?;
        let raw = body.get(pos..end).ok_or(MultipartError::Truncated)?;
        // Headers end at the first empty line; a part may start with it (no headers).
        let (head, content) = if let Some(rest) = raw.strip_prefix(b"\r\n") {
            (&[][..], rest)
        } else if let Some(rest) = raw.strip_prefix(b"\n") {
            (&[][..], rest)
        } else {
            match (find(raw, b"\r\n\r\n", 0), find(raw, b"\n\n", 0)) {
                (Some(a), Some(b)) if b < a => (raw.get(..b).unwrap_or_default(), raw.get(b + 2..).unwrap_or_default()),
                (Some(a), _) => (raw.get(..a).unwrap_or_default(), raw.get(a + 4..).unwrap_or_default()),
                (None, Some(b)) => (raw.get(..b).unwrap_or_default(), raw.get(b + 2..).unwrap_or_default()),
                (None, None) => return Err(MultipartError::BadPart),
            }
        };
        let headers = parse_headers(head).ok_or(MultipartError::BadPart)?;
        parts.push(Part { headers, body: content });
        close = next_close;
        pos = next_pos;
    }
    Ok(parts)
}

/// A federation media answer, parsed.
#[derive(Debug, PartialEq)]
pub enum MediaAnswer<'a> {
    /// The bytes, with the part's `Content-Type` and `Content-Disposition` if given.
    Content { metadata: Map<String, Value>, content_type: Option<String>, disposition: Option<String>, bytes: &'a [u8] },
    /// Fetch the media from this `http(s)` URL (not to be cached: it may expire).
    Redirect { metadata: Map<String, Value>, location: String },
}

/// Parses the answer of `/_matrix/federation/v1/media/download` or `/thumbnail`, given its
/// `Content-Type` header.
pub fn parse_media<'a>(content_type: &str, body: &'a [u8]) -> Result<MediaAnswer<'a>, MultipartError> {
    let b = boundary(content_type).ok_or(MultipartError::NoBoundary)?;
    let parts = parse(body, &b)?;
    let mut parts = parts.into_iter();
    let (Some(meta), Some(media)) = (parts.next(), parts.next()) else {
        return Err(MultipartError::BadShape("fewer than two parts"));
    };
    let json_type = meta.header("content-type").map(|c| c.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json"));
    if json_type != Some(true) {
        return Err(MultipartError::BadShape("first part is not application/json"));
    }
    if meta.body.len() > MAX_METADATA_BYTES {
        return Err(MultipartError::BadShape("metadata too large"));
    }
    let metadata = match serde_json::from_slice::<Value>(meta.body) {
        Ok(Value::Object(m)) => m,
        _ => return Err(MultipartError::BadShape("metadata is not a JSON object")),
    };
    if let Some(location) = media.header("location") {
        let lower = location.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(MultipartError::BadShape("Location is not an http(s) URL"));
        }
        return Ok(MediaAnswer::Redirect { metadata, location: location.to_owned() });
    }
    Ok(MediaAnswer::Content {
        metadata,
        content_type: media.header("content-type").map(str::to_owned),
        disposition: media.header("content-disposition").map(str::to_owned),
        bytes: media.body,
    })
}

/// The `Content-Type` of a media answer with this boundary.
pub fn media_content_type(boundary: &str) -> String {
    format!("multipart/mixed; boundary={boundary}")
}

/// What goes before and after the media bytes in a federation media answer: the empty
/// metadata object (the spec's "currently always an empty object"), then the media part's
/// headers; the tail is the close delimiter. `content_type` and `disposition` must already be
/// header-safe (normalised, sanitised file names).
pub fn media_envelope(boundary: &str, content_type: &str, disposition: &str) -> (Vec<u8>, Vec<u8>) {
    let head = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    (head.into_bytes(), tail.into_bytes())
}

/// The file name of a `Content-Disposition` value (`filename*=utf-8''…` preferred, then
/// `filename=`), percent-decoded, if any.
pub fn disposition_filename(disposition: &str) -> Option<String> {
    let params: Vec<(String, String)> =
        disposition.split(';').skip(1).filter_map(|p| p.split_once('=').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))).collect();
    if let Some((_, v)) = params.iter().find(|(k, _)| k == "filename*") {
        let (charset, rest) = v.split_once('\'')?;
        let (_, encoded) = rest.split_once('\'')?;
        if charset.eq_ignore_ascii_case("utf-8") {
            return percent_decode(encoded);
        }
    }
    let (_, v) = params.iter().find(|(k, _)| k == "filename")?;
    let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
    Some(v.to_owned()).filter(|s| !s.is_empty())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/mixed; boundary=6067d4698f8d40a0a794ea7d7379d53a";
    const B: &str = "6067d4698f8d40a0a794ea7d7379d53a";

    /// What Synapse's `MultipartFileConsumer` writes (a leading CRLF before the first
    /// delimiter, `{}` metadata, the bytes, the close delimiter).
    fn synapse_like(bytes: &[u8]) -> Vec<u8> {
        let mut v = format!("\r\n--{B}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{B}\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=a.png\r\n\r\n").into_bytes();
        v.extend_from_slice(bytes);
        v.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
        v
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary(CT).as_deref(), Some(B));
        assert_eq!(boundary("Multipart/Mixed; charset=x; BOUNDARY=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary("multipart/mixed"), None);
        assert_eq!(boundary("multipart/mixed; boundary="), None);
        assert_eq!(boundary("multipart/mixed; boundary=\"abc"), None);
        assert_eq!(boundary("application/json; boundary=abc"), None);
        assert_eq!(boundary(&format!("multipart/mixed; boundary={}", "a".repeat(71))), None);
        assert_eq!(boundary("multipart/mixed; boundary=a\r\nb"), None);
        assert_eq!(boundary(""), None);
        assert_eq!(boundary(";;=;"), None);
    }

    #[test]
    fn parses_synapse_answer_with_binary_body() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).chain(b"\r\n--6067".iter().copied()).collect();
        let body = synapse_like(&data);
        match parse_media(CT, &body).unwrap() {
            MediaAnswer::Content { metadata, content_type, disposition, bytes } => {
                assert!(metadata.is_empty());
                assert_eq!(content_type.as_deref(), Some("image/png"));
                assert_eq!(disposition.as_deref(), Some("inline; filename=a.png"));
                assert_eq!(bytes, data.as_slice());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_trips_our_envelope() {
        let (head, tail) = media_envelope(B, "text/plain", "attachment; filename=x.txt");
        for data in [&b""[..], b"hello", b"--", b"\r\n"] {
            let body = [head.as_slice(), data, tail.as_slice()].concat();
            let MediaAnswer::Content { bytes, content_type, .. } = parse_media(&media_content_type(B), &body).unwrap() else { panic!() };
            assert_eq!((bytes, content_type.as_deref()), (data, Some("text/plain")));
        }
    }

    #[test]
    fn redirects() {
        let body = format!("--{B}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{B}\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--{B}--");
        assert_eq!(
            parse_media(CT, body.as_bytes()).unwrap(),
            MediaAnswer::Redirect { metadata: Map::new(), location: "https://cdn.example/x".into() }
        );
        let bad = body.replace("https://cdn.example/x", "file:///etc/passwd");
        assert_eq!(parse_media(CT, bad.as_bytes()), Err(MultipartError::BadShape("Location is not an http(s) URL")));
    }

    #[test]
    fn tolerates_preamble_padding_and_bare_lf() {
        let body =
            format!("preamble\n--{B}  \nContent-Type: application/json\n\n{{\"a\":1}}\n--{B}\nContent-Type: text/plain\n\nhi\n--{B}--\nepilogue");
        let MediaAnswer::Content { metadata, bytes, .. } = parse_media(CT, body.as_bytes()).unwrap() else { panic!() };
        assert_eq!((metadata.get("a"), bytes), (Some(&serde_json::json!(1)), &b"hi"[..]));
    }

    #[test]
    fn a_boundary_prefix_inside_content_is_not_a_delimiter() {
        let body = format!("--{B}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{B}\r\n\r\nx\r\n--{B}X not it\r\ny\r\n--{B}--");
        let parts = parse(body.as_bytes(), B).unwrap();
        assert_eq!(parts.get(1).map(|p| p.body), Some(format!("x\r\n--{B}X not it\r\ny").as_bytes()));
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        let good = synapse_like(b"payload");
        // Every truncation of a valid answer is an error (never a shorter "success"), bar
        // the ones that only cut the final line break after the close delimiter.
        for n in 0..good.len() {
            let cut = good.get(..n).unwrap();
            let r = parse_media(CT, cut);
            if n >= good.len() - 2 {
                assert!(r.is_ok(), "{n}");
            } else {
                assert!(r.is_err(), "a truncation at {n} parsed: {r:?}");
            }
        }
        assert_eq!(parse_media("multipart/mixed", &good), Err(MultipartError::NoBoundary));
        assert_eq!(parse_media("multipart/mixed; boundary=other", &good), Err(MultipartError::MissingDelimiter));
        assert_eq!(parse_media(CT, b""), Err(MultipartError::MissingDelimiter));
        assert_eq!(parse_media(CT, format!("--{B}--").as_bytes()), Err(MultipartError::BadShape("fewer than two parts")));
        // One part only, not closed.
        assert_eq!(parse_media(CT, format!("--{B}\r\nContent-Type: application/json\r\n\r\n{{}}").as_bytes()), Err(MultipartError::Truncated));
        // Metadata not JSON / not an object / wrong type.
        for meta in ["nope", "[1]", "{"] {
            let body = format!("--{B}\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{B}\r\n\r\nx\r\n--{B}--");
            assert!(matches!(parse_media(CT, body.as_bytes()), Err(MultipartError::BadShape(_))), "{meta}");
        }
        let body = format!("--{B}\r\nContent-Type: text/plain\r\n\r\n{{}}\r\n--{B}\r\n\r\nx\r\n--{B}--");
        assert!(matches!(parse_media(CT, body.as_bytes()), Err(MultipartError::BadShape(_))));
        // Unreadable headers: no colon, non-UTF-8, a fold with nothing to continue, huge.
        for head in ["NoColon", "Bad\u{0}Name: x", " folded: first"] {
            let body = format!("--{B}\r\n{head}\r\n\r\n{{}}\r\n--{B}\r\n\r\nx\r\n--{B}--");
            assert_eq!(parse_media(CT, body.as_bytes()), Err(MultipartError::BadPart), "{head:?}");
        }
        let mut body = format!("--{B}\r\nX: ").into_bytes();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(format!("\r\n\r\n{{}}\r\n--{B}--").as_bytes());
        assert_eq!(parse_media(CT, &body), Err(MultipartError::BadPart));
        let huge = format!("--{B}\r\nX: {}\r\n\r\n{{}}\r\n--{B}--", "a".repeat(MAX_PART_HEADER_BYTES));
        assert_eq!(parse_media(CT, huge.as_bytes()), Err(MultipartError::BadPart));
        // A part with no empty line at all.
        assert_eq!(parse(format!("--{B}\r\nContent-Type: x\r\n--{B}--").as_bytes(), B), Err(MultipartError::BadPart));
        // Too many parts.
        let many = format!("--{B}\r\n") + &format!("\r\nx\r\n--{B}\r\n").repeat(MAX_PARTS + 1) + &format!("\r\n\r\n--{B}--");
        assert_eq!(parse(many.as_bytes(), B), Err(MultipartError::BadPart));
        // Delimiters only, garbage after the boundary, lone dashes.
        for junk in [&b"--"[..], b"----", b"\r\n--", b"\n\n\n", &[0xffu8; 64][..]] {
            assert!(parse_media(CT, junk).is_err());
        }
        assert!(parse(format!("--{B}garbage").as_bytes(), B).is_err());
    }

    #[test]
    fn filenames_from_dispositions() {
        assert_eq!(disposition_filename("inline; filename=a.png").as_deref(), Some("a.png"));
        assert_eq!(disposition_filename("attachment; filename=\"b c.txt\"").as_deref(), Some("b c.txt"));
        assert_eq!(disposition_filename("attachment; filename*=utf-8''%E2%82%AC.txt; filename=x").as_deref(), Some("€.txt"));
        assert_eq!(disposition_filename("attachment; filename*=utf-8''%E2%8").as_deref(), None);
        assert_eq!(disposition_filename("attachment; filename*=utf-8''%FF").as_deref(), None);
        assert_eq!(disposition_filename("inline"), None);
        assert_eq!(disposition_filename("inline; filename="), None);
    }
}
