//! Rules of the admin API that need no I/O (Synapse's admin API shapes): query flags, paging,
//! the media a room's events reference, and the server-notices system user.

/// The localpart of the user that sends server notices. Clients cannot register it: a
/// localpart may not begin with `_` (`ids::validate_new_localpart`).
pub const NOTICES_LOCALPART: &str = "_server";

/// Synapse's boolean query values: `true`/`false` (also `1`/`0`). `None`: absent; `Err` for
/// anything else.
pub fn query_bool(v: Option<&str>) -> Result<Option<bool>, String> {
    match v {
        None => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(other) => Err(format!("not a boolean: {other}")),
    }
}

/// `from`/`limit` paging: `from` an offset (Synapse's `next_token` is one), `limit` defaulting
/// to `default_limit` and capped at `max`.
pub fn paging(from: Option<&str>, limit: Option<&str>, default_limit: u32, max: u32) -> Result<(u64, u32), String> {
    let from = match from {
        Some(f) => f.parse::<u64>().map_err(|_| "from must be a non-negative integer".to_owned())?,
        None => 0,
    };
    let limit = match limit {
        Some(l) => l.parse::<u32>().map_err(|_| "limit must be a non-negative integer".to_owned())?,
        None => default_limit,
    };
    Ok((from, limit.min(max)))
}

/// The `next_token` of a page: the next offset when there are more rows.
pub fn next_token(from: u64, returned: usize, total: u64) -> Option<String> {
    let next = from + returned as u64;
    (returned > 0 && next < total).then(|| next.to_string())
}

/// Every `mxc://server/media_id` in a JSON text (an event's content: `url`, `info.thumbnail_url`,
/// `file.url`, avatars), as `(server, media_id)`, in order, without repeats.
pub fn mxc_uris(json: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = json;
    while let Some((_, after)) = rest.split_once("mxc://") {
        let end = after.find(|c: char| c == '"' || c == '\\' || c.is_whitespace()).unwrap_or(after.len());
        let (uri, tail) = after.split_at(end);
        rest = tail;
        let Some((server, media_id)) = uri.split_once('/') else { continue };
        let ok_id = !media_id.is_empty() && media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if server.is_empty() || !ok_id {
            continue;
        }
        let item = (server.to_owned(), media_id.to_owned());
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools() {
        assert_eq!(query_bool(None), Ok(None));
        assert_eq!(query_bool(Some("true")), Ok(Some(true)));
        assert_eq!(query_bool(Some("0")), Ok(Some(false)));
        assert!(query_bool(Some("yes")).is_err());
    }

    #[test]
    fn pages() {
        assert_eq!(paging(None, None, 100, 1000), Ok((0, 100)));
        assert_eq!(paging(Some("20"), Some("5000"), 100, 1000), Ok((20, 1000)));
        assert!(paging(Some("-1"), None, 100, 1000).is_err());
        assert_eq!(next_token(0, 10, 25), Some("10".into()));
        assert_eq!(next_token(20, 5, 25), None);
        assert_eq!(next_token(0, 0, 25), None);
    }

    #[test]
    fn finds_mxc() {
        let j = r#"{"content":{"url":"mxc://a.org/AbC_1-2","info":{"thumbnail_url":"mxc://a.org/th"},"x":"mxc://a.org/AbC_1-2"}}"#;
        assert_eq!(mxc_uris(j), vec![("a.org".into(), "AbC_1-2".into()), ("a.org".into(), "th".into())]);
        assert!(mxc_uris(r#"{"url":"mxc://nothing"}"#).is_empty());
        assert!(mxc_uris(r#"{"url":"mxc:///x"}"#).is_empty());
        assert_eq!(mxc_uris(r#"see mxc://b.org:8448/q9 here"#), vec![("b.org:8448".into(), "q9".into())]);
    }
}
