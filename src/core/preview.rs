//! URL previews: which URLs the server may fetch, and the OpenGraph data of a page.
//!
//! Spec (v1.19): `GET /_matrix/client/v1/media/preview_url` ("The OpenGraph data for the
//! URL, which may be empty"). The fetch itself is in `api::client::media`; this module holds
//! the pure parts:
//! - [`check_url`]: only `http`/`https`, and never a host that is `localhost` or an IP literal
//!   in a loopback, private, link-local, unique-local, CGNAT, multicast or otherwise
//!   special-purpose range. The Worker cannot resolve names itself, so hostnames are checked
//!   by name only; every redirect target is checked again (the caller follows redirects by
//!   hand).
//! - [`parse_opengraph`]: `og:*` meta tags, with `<title>` and `description` as fall-backs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};
use url::{Host, Url};

/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 5;
/// Most bytes of a page read.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Longest a value (title, description, ...) may be.
const MAX_VALUE_CHARS: usize = 2000;
/// Most `og:*` properties kept.
const MAX_PROPERTIES: usize = 50;

/// Parses `raw` and checks it may be fetched. `allow_ips` are IP literals exempted from the
/// address checks (configuration, for tests and private deployments). Errors are messages
/// for the client.
pub fn check_url(raw: &str, allow_ips: &[IpAddr]) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "Invalid URL")?;
    check_parsed(&url, allow_ips)?;
    Ok(url)
}

/// The checks of [`check_url`] on a parsed URL (also used for redirect targets).
pub fn check_parsed(url: &Url, allow_ips: &[IpAddr]) -> Result<(), &'static str> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err("Only http and https URLs can be previewed");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials cannot be previewed");
    }
    check_host(url, allow_ips).map_err(|e| match e {
        HostRefusal::NoHost => "URL has no host",
        HostRefusal::LocalName => "This host cannot be previewed",
        HostRefusal::PrivateAddress => "This address cannot be previewed",
    })
}

/// Why [`check_host`] refused a URL's host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostRefusal {
    NoHost,
    /// `localhost`, a single-label name or a local-only suffix (`.local`, `.internal`, …).
    LocalName,
    /// An IP literal outside the public unicast ranges (see [`is_public_ip`]).
    PrivateAddress,
}

/// Whether the server may send a request to `url`'s host: never a local name, never an IP
/// literal outside the public unicast ranges unless it is in `allow_ips`. Shared by URL
/// previews and push gateways (anything the server fetches on a user's say-so).
pub fn check_host(url: &Url, allow_ips: &[IpAddr]) -> Result<(), HostRefusal> {
    match url.host() {
        None => Err(HostRefusal::NoHost),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d.is_empty() || d == "localhost" || d.ends_with(".localhost") || !d.contains('.') {
                return Err(HostRefusal::LocalName);
            }
            if d.ends_with(".local") || d.ends_with(".internal") || d.ends_with(".home.arpa") {
                return Err(HostRefusal::LocalName);
            }
            Ok(())
        }
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), allow_ips),
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), allow_ips),
    }
}

/// Whether `url`'s host is an IP literal in `allow_ips`.
pub fn is_allowlisted(url: &Url, allow_ips: &[IpAddr]) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => allow_ips.contains(&IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => allow_ips.contains(&IpAddr::V6(ip)),
        _ => false,
    }
}

fn check_ip(ip: IpAddr, allow_ips: &[IpAddr]) -> Result<(), HostRefusal> {
    if allow_ips.contains(&ip) || is_public_ip(ip) {
        Ok(())
    } else {
        Err(HostRefusal::PrivateAddress)
    }
}

/// Whether `ip` is a globally routable unicast address (not loopback, private, link-local,
/// unique-local, CGNAT, multicast, documentation, benchmarking or reserved). IPv6 forms that
/// embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0                               // "this network"
        || a == 10                                     // private
        || a == 127                                    // loopback
        || (a == 100 && (64..128).contains(&b))        // CGNAT 100.64/10
        || (a == 169 && b == 254)                      // link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b))         // private
        || (a == 192 && b == 0 && c == 0)              // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)              // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)            // 6to4 relay anycast
        || (a == 192 && b == 168)                      // private
        || (a == 198 && (18..20).contains(&b))         // benchmarking
        || (a == 198 && b == 51 && c == 100)           // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)            // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible (deprecated) ::a.b.c.d, excluding :: and ::1.
    if [s0, s1, s2, s3, s4, s5] == [0; 6] {
        return !ip.is_unspecified() && !ip.is_loopback() && is_public_v4(v4(s6, s7));
    }
    // NAT64 64:ff9b::/96 and 64:ff9b:1::/48.
    if s0 == 0x64 && s1 == 0xff9b {
        return is_public_v4(v4(s6, s7));
    }
    // 6to4 2002::/16 embeds the IPv4 address in bits 16..48.
    if s0 == 0x2002 {
        return is_public_v4(v4(s1, s2));
    }
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || (s0 & 0xfe00) == 0xfc00  // unique local fc00::/7
        || (s0 & 0xffc0) == 0xfe80  // link-local fe80::/10
        || (s0 & 0xffc0) == 0xfec0  // site-local (deprecated) fec0::/10
        || (s0 & 0xff00) == 0xff00  // multicast
        || (s0 == 0x2001 && s1 == 0x0db8) // documentation
        || (s0 == 0x2001 && s1 < 0x200)   // Teredo, benchmarking, ORCHID and other IETF assignments
        || s0 == 0x0100 && [s1, s2, s3] == [0, 0, 0]; // discard-only 100::/64
    !special
}

/// Parses a comma-separated list of IP literals (configuration).
pub fn parse_ip_list(raw: &str) -> Result<Vec<IpAddr>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().map_err(|_| format!("not an IP address: {s:?}")))
        .collect()
}

/// Resolves a redirect's `Location` against the URL that answered with it.
pub fn redirect_target(from: &Url, location: &str) -> Option<Url> {
    from.join(location.trim()).ok()
}

/// Whether a response `Content-Type` is a page we parse.
pub fn is_html(content_type: Option<&str>) -> bool {
    let ct = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct == "text/html" || ct == "application/xhtml+xml"
}

/// The OpenGraph properties of an HTML document: every `<meta property="og:…" content="…">`
/// (first occurrence wins), plus `og:title` from `<title>` and `og:description` from
/// `<meta name="description">` when the page has none. `og:image` (and the other URL
/// properties) are made absolute against `base`. Values are entity-decoded and capped.
///
/// The page is remote text: it is only cut with `str::get` at positions found by searching
/// for ASCII markers, never indexed (a panic would kill the isolate).
pub fn parse_opengraph(html: &str, base: &Url) -> Map<String, Value> {
    let mut og = Map::new();
    let mut description = None;
    // ASCII lower-casing keeps every byte offset, so positions in `lower` are positions in
    // `html` (and on character boundaries, as the markers are ASCII).
    let lower = html.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(start) = find_from(&lower, pos, "<meta").map(|i| i + "<meta".len()) {
        let Some(end) = find_from(&lower, start, ">") else { break };
        let attrs = parse_attributes(html.get(start..end).unwrap_or(""));
        pos = end;
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(content) = get("content") else { continue };
        let content = cap(&decode_entities(content));
        if let Some(prop) = get("property").or_else(|| get("name")) {
            let prop = prop.trim().to_ascii_lowercase();
            if prop.starts_with("og:") && prop.len() <= 64 && og.len() < MAX_PROPERTIES && !og.contains_key(&prop) {
                og.insert(prop, Value::String(content));
            } else if prop == "description" && description.is_none() {
                description = Some(content);
            }
        }
    }
    if !og.contains_key("og:title") {
        if let Some(t) = title(html, &lower) {
            og.insert("og:title".into(), Value::String(t));
        }
    }
    if !og.contains_key("og:description") {
        if let Some(d) = description {
            og.insert("og:description".into(), Value::String(d));
        }
    }
    for key in ["og:image", "og:image:url", "og:image:secure_url", "og:url"] {
        if let Some(Value::String(v)) = og.get(key) {
            match base.join(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {
                    og.insert(key.into(), Value::String(u.to_string()));
                }
                _ => {
                    og.remove(key);
                }
            }
        }
    }
    for key in ["og:image:width", "og:image:height"] {
        if let Some(Value::String(v)) = og.get(key) {
            match v.trim().parse::<u64>() {
                Ok(n) => og.insert(key.into(), Value::from(n)),
                Err(_) => og.remove(key),
            };
        }
    }
    og
}

/// The byte position of `needle` in `s` at or after `from`.
fn find_from(s: &str, from: usize, needle: &str) -> Option<usize> {
    s.get(from..)?.find(needle).map(|i| from + i)
}

fn title(html: &str, lower: &str) -> Option<String> {
    let i = lower.find("<title")?;
    let open_end = find_from(lower, i, ">")? + 1;
    let close = find_from(lower, open_end, "</title")?;
    let t = decode_entities(html.get(open_end..close)?.trim());
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty()).then(|| cap(&t))
}

/// Drops control characters (but newlines) and keeps at most [`MAX_VALUE_CHARS`] characters.
fn cap(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || *c == '\n').take(MAX_VALUE_CHARS).collect()
}

/// Attributes of a tag (`name="v"`, `name='v'`, `name=v`), names lower-cased. Reads the text
/// character by character, so any UTF-8 is fine.
fn parse_attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_ascii_whitespace() || *c == '/').is_some() {}
        let mut name = String::new();
        while let Some(c) = it.next_if(|c| !c.is_ascii_whitespace() && *c != '=' && *c != '/') {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() {
            // An `=` without a name (skipped), or the end.
            if it.next().is_none() {
                break;
            }
            continue;
        }
        while it.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if it.next_if_eq(&'=').is_none() {
            out.push((name, String::new()));
            continue;
        }
        while it.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut value = String::new();
        match it.next_if(|c| *c == '"' || *c == '\'') {
            Some(quote) => {
                for c in it.by_ref() {
                    if c == quote {
                        break;
                    }
                    value.push(c);
                }
            }
            None => {
                while let Some(c) = it.next_if(|c| !c.is_ascii_whitespace()) {
                    value.push(c);
                }
            }
        }
        out.push((name, value));
    }
    out
}

/// Longest entity name looked at (`#x10FFFF` is 8).
const MAX_ENTITY_CHARS: usize = 10;

/// Decodes the common named entities and numeric character references (`&#65;`, `&#x41;`).
/// Anything else, including an entity without its `;` (at the end of the text, say), is
/// kept as it is.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some((before, after)) = rest.split_once('&') {
        out.push_str(before);
        match decode_entity(after) {
            Some((c, tail)) => {
                out.push(c);
                rest = tail;
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character of the entity `s` starts with (the text after a `&`) and the text after
/// its `;`.
fn decode_entity(s: &str) -> Option<(char, &str)> {
    // Only the first few characters are searched for the `;`, so a page full of bare `&`s
    // stays linear.
    let semi = s.char_indices().take(MAX_ENTITY_CHARS + 1).find(|(_, c)| *c == ';').map(|(i, _)| i)?;
    let (name, tail) = s.split_at_checked(semi)?;
    let tail = tail.strip_prefix(';')?;
    let digits = |d: &str, radix: u32| -> Option<char> {
        if d.is_empty() || !d.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u32::from_str_radix(d, radix).ok().and_then(char::from_u32)
    };
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        _ => match name.strip_prefix('#') {
            Some(hex) if hex.starts_with(['x', 'X']) => digits(hex.get(1..)?, 16)?,
            Some(dec) => digits(dec, 10)?,
            None => return None,
        },
    };
    Some((c, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(u: &str) -> bool {
        check_url(u, &[]).is_err()
    }

    #[test]
    fn only_public_http() {
        assert!(check_url("https://matrix.org/blog", &[]).is_ok());
        assert!(check_url("http://93.184.216.34:8080/x", &[]).is_ok());
        assert!(check_url("http://[2606:4700::1111]/", &[]).is_ok());
        for u in [
            "file:///etc/passwd",
            "ftp://example.org/",
            "javascript:alert(1)",
            "gopher://example.org/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://foo.localhost/",
            "http://intranet/",
            "http://127.0.0.1/",
            "http://127.1.2.3:8787/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[ff02::1]/",
            "http://user:pass@example.org/",
            "not a url",
        ] {
            assert!(refused(u), "{u} should be refused");
        }
        assert!(check_url("http://172.32.0.1/", &[]).is_ok());
        assert!(check_url("http://100.128.0.1/", &[]).is_ok());
    }

    #[test]
    fn allow_list_and_redirects() {
        let allow = parse_ip_list("127.0.0.1, [::1]").unwrap();
        assert!(check_url("http://127.0.0.1:9000/", &allow).is_ok());
        assert!(check_url("http://[::1]:9000/", &allow).is_ok());
        assert!(check_url("http://127.0.0.2/", &allow).is_err());
        assert!(check_url("http://localhost/", &allow).is_err());
        assert!(parse_ip_list("nope").is_err());
        let from = Url::parse("https://example.org/a/b").unwrap();
        let to = redirect_target(&from, "http://169.254.169.254/").unwrap();
        assert!(check_parsed(&to, &[]).is_err());
        let to = redirect_target(&from, "/c?d").unwrap();
        assert_eq!(to.as_str(), "https://example.org/c?d");
        assert!(check_parsed(&to, &[]).is_ok());
    }

    #[test]
    fn opengraph() {
        let html = r#"<!doctype html><html><head>
            <title>  Fallback   title </title>
            <meta property="og:title" content="Matrix &amp; friends">
            <META PROPERTY='og:description' CONTENT='A &quot;really&quot; cool post &#x2014; yes'>
            <meta property="og:image" content="/img/logo.png" />
            <meta property="og:image:width" content="48"><meta property="og:image:height" content="x">
            <meta property="og:title" content="second title ignored">
            <meta name="description" content="plain description">
            <meta property="og:url" content="javascript:alert(1)">
            </head><body>hi</body></html>"#;
        let base = Url::parse("https://matrix.org/blog/post").unwrap();
        let og = parse_opengraph(html, &base);
        assert_eq!(og["og:title"], "Matrix & friends");
        assert_eq!(og["og:description"], "A \"really\" cool post \u{2014} yes");
        assert_eq!(og["og:image"], "https://matrix.org/img/logo.png");
        assert_eq!(og["og:image:width"], 48);
        assert!(!og.contains_key("og:image:height"));
        assert!(!og.contains_key("og:url"));

        let og = parse_opengraph("<html><title>Just &lt;a&gt; title</title><meta name=description content=words></html>", &base);
        assert_eq!(og["og:title"], "Just <a> title");
        assert_eq!(og["og:description"], "words");
        assert!(parse_opengraph("no tags <meta", &base).is_empty());
        assert!(is_html(Some("text/html; charset=utf-8")));
        assert!(!is_html(Some("image/png")));
    }

    /// Remote pages are any UTF-8: multi-byte text next to `&` (or anywhere) must neither
    /// panic nor be mangled.
    #[test]
    fn entities_next_to_multibyte_text() {
        // Byte 12 after the `&` falls inside an `é` (the old 12-byte window panicked).
        assert_eq!(decode_entities("&éééééééé;"), "&éééééééé;");
        assert_eq!(decode_entities("a&éééé…"), "a&éééé…");
        assert_eq!(decode_entities("&\u{1F600}\u{1F600}\u{1F600};x"), "&\u{1F600}\u{1F600}\u{1F600};x");
        assert_eq!(decode_entities("&#x1F600;"), "\u{1F600}");
        assert_eq!(decode_entities("&#128512; ok"), "\u{1F600} ok");
        assert_eq!(decode_entities("&#X41;&#39;&apos;&nbsp;"), "A''\u{a0}");
        // Truncated or malformed entities stay as they are.
        for kept in ["&#x1F600", "&", "x&", "&amp", "&#", "&#x", "&#x;", "&#;", "&#+65;", "&#x+41;", "&#xD800;", "&#99999999999;", "&unknown;", "é&é"]
        {
            assert_eq!(decode_entities(kept), kept, "{kept}");
        }
        assert_eq!(decode_entities("&&amp;&"), "&&&");
        assert_eq!(decode_entities("caf\u{e9} &amp; cr\u{e8}me"), "caf\u{e9} & cr\u{e8}me");
    }

    #[test]
    fn opengraph_with_multibyte_text() {
        let base = Url::parse("https://example.org/").unwrap();
        let html = "<html><head><title>\u{1F600} Caf\u{e9} &éééééééé; &#x1F600</title>\
                    <meta property=og:description content=\"\u{1F389}&amp;\u{e9}\"/>\
                    <meta prop\u{e9}rty=\"og:x\" content=\u{e9}\u{e9}>\
                    <meta \u{1F600}=\u{1F600} property='og:site_name' content='\u{e9}t\u{e9}&#x2014;'><meta";
        let og = parse_opengraph(html, &base);
        assert_eq!(og["og:title"], "\u{1F600} Caf\u{e9} &éééééééé; &#x1F600");
        assert_eq!(og["og:description"], "\u{1F389}&\u{e9}");
        assert_eq!(og["og:site_name"], "\u{e9}t\u{e9}\u{2014}");
        assert!(!og.contains_key("og:x"));
        // A title cut off at the end of the page, or a tag with only multi-byte text.
        assert!(parse_opengraph("<title>\u{e9}\u{e9}\u{e9}", &base).is_empty());
        assert!(parse_opengraph("<meta \u{e9}\u{e9}\u{e9}", &base).is_empty());
        assert!(parse_opengraph("<title\u{e9}>x</title>", &base).get("og:title").is_some());
        // Values are capped by characters, not bytes.
        let long = "\u{1F600}".repeat(MAX_VALUE_CHARS + 5);
        let og = parse_opengraph(&format!("<meta property=og:title content={long}>"), &base);
        assert_eq!(og["og:title"].as_str().unwrap().chars().count(), MAX_VALUE_CHARS);
    }

    #[test]
    fn attributes() {
        let a = parse_attributes(r#" A="1" b='2' c=3 d / e = "x y" ="z" f"#);
        let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(a, vec![("a", "1"), ("b", "2"), ("c", "3"), ("d", ""), ("e", "x y"), ("\"z\"", ""), ("f", "")]);
        assert_eq!(parse_attributes("x=\"unterminated \u{e9}"), vec![("x".to_string(), "unterminated \u{e9}".to_string())]);
    }
}
