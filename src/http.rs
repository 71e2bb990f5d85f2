//! Plain request/response types, so routing, body parsing and error rendering are tested
//! natively. `entry.rs` converts from and to the Worker's types.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::err;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    pub fn parse(m: &str) -> Method {
        match m.to_ascii_uppercase().as_str() {
            // HEAD is answered like GET; the runtime drops the body.
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The query string as sent (still percent-encoded), without the `?`: federation request
    /// signatures cover the URI exactly as sent.
    pub raw_query: Option<String>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's address as the edge saw it (`CF-Connecting-IP`).
    pub client_ip: Option<String>,
    /// Media uploads only: the body, not yet read (then `body` is empty). See
    /// [`crate::router::streams_body`].
    pub body_stream: Option<BodyStream>,
}

/// A body that is streamed instead of held in memory: on wasm32 a JS `ReadableStream` (an
/// upload's request body, or an R2 object served as a response); natively it cannot be built.
#[derive(Clone, Debug)]
pub struct BodyStream(
    #[cfg(target_arch = "wasm32")] pub worker::web_sys::ReadableStream,
    #[cfg(not(target_arch = "wasm32"))] std::convert::Infallible,
);

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The path and query as sent (`/_matrix/…?a=b`), as federation signatures cover them.
    pub fn uri(&self) -> String {
        match &self.raw_query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The access token from `Authorization: Bearer` or the deprecated `access_token`
    /// query parameter (spec: client-server-api, "Using access tokens").
    pub fn access_token(&self) -> Option<&str> {
        if let Some(h) = self.header("authorization") {
            // Split on the first space rather than at byte 7: the header is arbitrary client
            // text, and a byte offset can fall inside a multi-byte character.
            let (scheme, token) = h.trim().split_once(' ')?;
            let token = token.trim();
            return (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token);
        }
        self.query("access_token")
    }

    /// The body as a JSON object, for endpoints whose request body is required (the
    /// OpenAPI's `requestBody.required`): an empty body is `M_NOT_JSON`, as Synapse answers,
    /// rather than a silent `{}`. Not JSON: `M_NOT_JSON`; JSON but not an object: `M_BAD_JSON`.
    pub fn json_value(&self) -> Result<Value> {
        if self.body_is_empty() {
            return Err(err!(NotJson, "A JSON request body is required."));
        }
        self.parse_object()
    }

    /// Like [`Request::json_value`], but an empty body counts as `{}`: for endpoints that
    /// clients call without one (`/join`, `/leave`, receipts, and the first request of a
    /// user-interactive auth exchange such as `DELETE /devices/{id}`).
    pub fn json_value_or_empty(&self) -> Result<Value> {
        if self.body_is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        self.parse_object()
    }

    /// The body deserialised into `T`, an empty body counting as `{}`.
    pub fn json_or_empty<T: DeserializeOwned>(&self) -> Result<T> {
        parse_json(self.json_value_or_empty()?)
    }

    fn body_is_empty(&self) -> bool {
        self.body.iter().all(|b| b.is_ascii_whitespace())
    }

    fn parse_object(&self) -> Result<Value> {
        let v: Value = serde_json::from_slice(&self.body).map_err(|_| err!(NotJson, "Content not JSON."))?;
        if !v.is_object() {
            return Err(err!(BadJson, "Content must be a JSON object."));
        }
        Ok(v)
    }

    /// The body deserialised into `T`; shape errors are `M_BAD_JSON` naming the problem.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        parse_json(self.json_value()?)
    }
}

/// Deserialises a JSON value, mapping shape errors to `M_BAD_JSON`.
pub fn parse_json<T: DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| err!(BadJson, "Invalid request body: {e}"))
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When set, the body is this stream and `body` is ignored (media downloads).
    pub stream: Option<BodyStream>,
}

/// The headers the spec asks for so that browser clients can call any endpoint
/// (spec: client-server-api, "Web Browser Clients").
pub const CORS_HEADERS: &[(&str, &str)] = &[
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    ("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization, Date"),
    ("Access-Control-Expose-Headers", "ETag, Retry-After"),
];

impl Response {
    pub fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("a Value serialises"),
            stream: None,
        }
    }

    pub fn ok(body: Value) -> Response {
        Response::json(200, &body)
    }

    pub fn from_error(e: &Error) -> Response {
        let (status, body) = e.to_response();
        let mut r = Response::json(status, &body);
        if let Some(ms) = body.get("retry_after_ms").and_then(Value::as_u64) {
            r.headers.push(("Retry-After".into(), ms.div_ceil(1000).to_string()));
        }
        r
    }

    pub fn html(status: u16, body: String) -> Response {
        Response { status, headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())], body: body.into_bytes(), stream: None }
    }

    /// A byte body with the given headers (media).
    pub fn bytes(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
        Response { status, headers, body, stream: None }
    }

    pub fn with_cors(mut self) -> Response {
        for (k, v) in CORS_HEADERS {
            if !self.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
                self.headers.push((k.to_string(), v.to_string()));
            }
        }
        self
    }
}

impl From<Result<Response>> for Response {
    fn from(r: Result<Response>) -> Response {
        r.unwrap_or_else(|e| Response::from_error(&e))
    }
}

/// Parses a query string into decoded pairs (`+` is a space, as in forms).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> Request {
        Request {
            method: Method::Post,
            path: "/".into(),
            query: vec![],
            raw_query: None,
            headers: vec![],
            body: body.as_bytes().to_vec(),
            client_ip: None,
            body_stream: None,
        }
    }

    #[test]
    fn json_errors() {
        assert_eq!(req("{bad").json_value().unwrap_err().kind().errcode(), "M_NOT_JSON");
        assert_eq!(req("[1]").json_value().unwrap_err().kind().errcode(), "M_BAD_JSON");
        assert_eq!(req("").json_value().unwrap_err().kind().errcode(), "M_NOT_JSON");
        assert_eq!(req(" \n").json_value().unwrap_err().kind().errcode(), "M_NOT_JSON");
        assert_eq!(req("").json_value_or_empty().unwrap(), serde_json::json!({}));
        assert_eq!(req("[]").json_value_or_empty().unwrap_err().kind().errcode(), "M_BAD_JSON");
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            x: u32,
        }
        assert_eq!(req(r#"{"x":"s"}"#).json::<B>().unwrap_err().kind().errcode(), "M_BAD_JSON");
        assert_eq!(req(r#"{}"#).json::<B>().unwrap_err().kind().errcode(), "M_BAD_JSON");
    }

    #[test]
    fn uri_is_the_path_and_query_as_sent() {
        let mut r = req("");
        r.path = "/_matrix/federation/v1/query/profile".into();
        assert_eq!(r.uri(), "/_matrix/federation/v1/query/profile");
        r.raw_query = Some("user_id=%40a%3Ab&field=displayname".into());
        assert_eq!(r.uri(), "/_matrix/federation/v1/query/profile?user_id=%40a%3Ab&field=displayname");
    }

    #[test]
    fn tokens_from_header_or_query() {
        let mut r = req("");
        r.query = parse_query("access_token=abc%2B1&x=y+z");
        assert_eq!(r.access_token(), Some("abc+1"));
        assert_eq!(r.query("x"), Some("y z"));
        r.headers.push(("authorization".into(), "Bearer tok".into()));
        assert_eq!(r.access_token(), Some("tok"));
    }

    #[test]
    fn malformed_authorization_headers_do_not_panic() {
        for h in ["Bearer", "Bearer ", "bearer  tok ", "Basic abc", "Beareré tok", "Bearéé", "ééééééé", "Bearer\u{202e}x", "é"] {
            let mut r = req("");
            r.headers.push(("authorization".into(), h.into()));
            let t = r.access_token();
            assert!(t.is_none() || h.to_ascii_lowercase().starts_with("bearer "), "{h:?} gave {t:?}");
        }
        let mut r = req("");
        r.headers.push(("authorization".into(), "bearer  tok ".into()));
        assert_eq!(r.access_token(), Some("tok"));
    }

    #[test]
    fn errors_carry_retry_after_and_cors() {
        let e = crate::err!(crate::ErrorKind::LimitExceeded { retry_after_ms: 1500 }, "slow");
        let r = Response::from_error(&e).with_cors();
        assert_eq!(r.status, 429);
        assert!(r.headers.iter().any(|(k, v)| k == "Retry-After" && v == "2"));
        assert!(r.headers.iter().any(|(k, v)| k == "Access-Control-Allow-Origin" && v == "*"));
    }
}
