//! The provider's HTML pages: login, registration, "continue as", errors, and the account
//! management pages (MSC4191). Every value that reaches a page goes through [`escape`].

use crate::http::Response;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1b1d22}\
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1rem}.error{color:#b00020}.muted{color:#666;font-size:.9rem}table{width:100%;border-collapse:collapse}\
td,th{text-align:left;padding:.3rem;border-bottom:1px solid #ddd}nav a{margin-right:.8rem}";

/// A whole page. `body` must already be escaped HTML.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// An HTML response with headers that keep it out of frames and caches.
pub fn response(status: u16, html: String, extra_headers: Vec<(String, String)>) -> Response {
    let mut r = Response::html(status, html);
    r.headers.push(("Cache-Control".into(), "no-store".into()));
    r.headers.push(("X-Frame-Options".into(), "DENY".into()));
    r.headers.push(("Content-Security-Policy".into(), "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'".into()));
    r.headers.push(("Referrer-Policy".into(), "no-referrer".into()));
    r.headers.extend(extra_headers);
    r
}

fn hidden(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v))).collect()
}

fn error_line(error: Option<&str>) -> String {
    error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default()
}

/// Who is asking, shown above the login and registration forms.
#[derive(Default)]
pub struct ClientInfo<'a> {
    pub name: Option<&'a str>,
    pub uri: Option<&'a str>,
}

fn client_line(c: &ClientInfo) -> String {
    let name = escape(c.name.unwrap_or("An application"));
    match c.uri {
        Some(u) => format!("<p><a href=\"{}\" rel=\"noopener noreferrer\">{name}</a> wants to access your Matrix account.</p>", escape(u)),
        None => format!("<p>{name} wants to access your Matrix account.</p>"),
    }
}

/// The login form. `fields` are the hidden fields (sealed request, CSRF token).
pub fn login_page(
    server: &str,
    action: &str,
    fields: &[(&str, &str)],
    client: &ClientInfo,
    error: Option<&str>,
    username: &str,
    register_url: Option<&str>,
) -> String {
    let register = register_url.map(|u| format!("<p class=\"muted\">No account? <a href=\"{}\">Create one</a>.</p>", escape(u))).unwrap_or_default();
    let cancel = if client.name.is_some() || client.uri.is_some() {
        "<button type=\"submit\" name=\"action\" value=\"cancel\" formnovalidate>Cancel</button>"
    } else {
        ""
    };
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to {server}</h1>{client}{error}<form method=\"post\" action=\"{action}\">{hidden}\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\" name=\"action\" value=\"login\">Sign in</button> {cancel}</form>{register}",
            server = escape(server),
            client = if client.name.is_some() || client.uri.is_some() { client_line(client) } else { String::new() },
            error = error_line(error),
            action = escape(action),
            hidden = hidden(fields),
            username = escape(username),
        ),
    )
}

/// The registration form (`prompt=create`). `token` asks for a registration token.
#[allow(clippy::too_many_arguments)]
pub fn register_page(
    server: &str,
    action: &str,
    fields: &[(&str, &str)],
    client: &ClientInfo,
    error: Option<&str>,
    username: &str,
    token: bool,
    login_url: &str,
) -> String {
    let token_field = if token {
        "<label for=\"token\">Registration token</label><input type=\"text\" id=\"token\" name=\"registration_token\" required>"
    } else {
        ""
    };
    page(
        "Create account",
        &format!(
            "<h1>Create an account on {server}</h1>{client}{error}<form method=\"post\" action=\"{action}\">{hidden}\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" required>\
<label for=\"password2\">Repeat password</label><input type=\"password\" id=\"password2\" name=\"password2\" autocomplete=\"new-password\" required>\
{token_field}<button type=\"submit\" name=\"action\" value=\"register\">Create account</button></form>\
<p class=\"muted\">Have an account? <a href=\"{login}\">Sign in</a>.</p>",
            server = escape(server),
            client = client_line(client),
            error = error_line(error),
            action = escape(action),
            hidden = hidden(fields),
            username = escape(username),
            login = escape(login_url),
        ),
    )
}

/// "Continue as @user" for a browser that is already signed in.
pub fn consent_page(server: &str, action: &str, fields: &[(&str, &str)], client: &ClientInfo, user_id: &str) -> String {
    page(
        "Continue",
        &format!(
            "<h1>{server}</h1>{client}<p>Signed in as <strong>{user}</strong>.</p><form method=\"post\" action=\"{action}\">{hidden}\
<button type=\"submit\" name=\"action\" value=\"consent\">Continue</button> \
<button type=\"submit\" name=\"action\" value=\"switch\">Use another account</button> \
<button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button></form>",
            server = escape(server),
            client = client_line(client),
            user = escape(user_id),
            action = escape(action),
            hidden = hidden(fields),
        ),
    )
}

pub fn error_page(title: &str, message: &str) -> String {
    page(title, &format!("<h1>{}</h1><p class=\"error\">{}</p>", escape(title), escape(message)))
}

/// The account pages' navigation and sign-out form.
fn account_nav(base: &str, csrf: &str) -> String {
    format!(
        "<nav><a href=\"{b}?action=org.matrix.profile\">Profile</a><a href=\"{b}?action=org.matrix.devices_list\">Sessions</a></nav>\
<form method=\"post\" action=\"{b}\">{h}<button type=\"submit\" name=\"action\" value=\"signout\">Sign out of this page</button></form>",
        b = escape(base),
        h = hidden(&[("csrf", csrf)])
    )
}

pub fn account_profile(base: &str, csrf: &str, user_id: &str, displayname: Option<&str>, notice: Option<&str>) -> String {
    page(
        "Profile",
        &format!(
            "<h1>Profile</h1>{nav}{notice}<p>User ID: <strong>{user}</strong></p><form method=\"post\" action=\"{b}\">{h}\
<label for=\"displayname\">Display name</label><input type=\"text\" id=\"displayname\" name=\"displayname\" value=\"{name}\" maxlength=\"256\">\
<button type=\"submit\" name=\"action\" value=\"org.matrix.profile\">Save</button></form>",
            nav = account_nav(base, csrf),
            notice = notice.map(|n| format!("<p role=\"status\">{}</p>", escape(n))).unwrap_or_default(),
            user = escape(user_id),
            b = escape(base),
            h = hidden(&[("csrf", csrf)]),
            name = escape(displayname.unwrap_or("")),
        ),
    )
}

/// One device (session) row for the account pages.
pub struct DeviceInfo<'a> {
    pub device_id: &'a str,
    pub display_name: Option<&'a str>,
    pub last_seen_ip: Option<&'a str>,
    pub last_seen_ts: Option<i64>,
}

fn device_url(base: &str, action: &str, device_id: &str) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("action", action).append_pair("device_id", device_id);
    format!("{base}?{}", ser.finish())
}

pub fn account_devices(base: &str, csrf: &str, devices: &[DeviceInfo], notice: Option<&str>) -> String {
    let rows: String = devices
        .iter()
        .map(|d| {
            format!(
                "<tr><td><a href=\"{view}\">{id}</a></td><td>{name}</td><td><a href=\"{end}\">Sign out</a></td></tr>",
                view = escape(&device_url(base, "org.matrix.device_view", d.device_id)),
                end = escape(&device_url(base, "org.matrix.device_delete", d.device_id)),
                id = escape(d.device_id),
                name = escape(d.display_name.unwrap_or("")),
            )
        })
        .collect();
    page(
        "Sessions",
        &format!(
            "<h1>Sessions</h1>{nav}{notice}<table><thead><tr><th>Device</th><th>Name</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
            nav = account_nav(base, csrf),
            notice = notice.map(|n| format!("<p role=\"status\">{}</p>", escape(n))).unwrap_or_default(),
        ),
    )
}

/// A device's details, with the button that ends it (`confirm` shows the question first).
pub fn account_device(base: &str, csrf: &str, d: &DeviceInfo, confirm: bool) -> String {
    let question = if confirm { "<p><strong>Sign out this session?</strong> Its access will end at once.</p>" } else { "" };
    page(
        "Session",
        &format!(
            "<h1>Session {id}</h1>{nav}<table><tr><th>Device ID</th><td>{id}</td></tr><tr><th>Name</th><td>{name}</td></tr>\
<tr><th>Last seen from</th><td>{ip}</td></tr><tr><th>Last seen (ms since epoch)</th><td>{ts}</td></tr></table>{question}\
<form method=\"post\" action=\"{b}\">{h}<button type=\"submit\" name=\"action\" value=\"org.matrix.device_delete\">Sign out this session</button></form>",
            nav = account_nav(base, csrf),
            id = escape(d.device_id),
            name = escape(d.display_name.unwrap_or("")),
            ip = escape(d.last_seen_ip.unwrap_or("")),
            ts = d.last_seen_ts.map(|t| t.to_string()).unwrap_or_default(),
            b = escape(base),
            h = hidden(&[("csrf", csrf), ("device_id", d.device_id)]),
        ),
    )
}

/// The identity-reset approval: the question, or (`done`) the confirmation.
pub fn account_cross_signing_reset(base: &str, csrf: &str, session: &str, done: bool) -> String {
    let body = if done {
        "<p role=\"status\">Identity reset approved. Go back to your app to finish it.</p>".to_owned()
    } else {
        format!(
            "<p><strong>Reset your cryptographic identity?</strong> Your other sessions and the people you verified \
will have to verify you again. Only approve this if you started the reset in your app just now.</p>\
<form method=\"post\" action=\"{b}\">{h}<button type=\"submit\" name=\"action\" value=\"org.matrix.cross_signing_reset\">Approve the reset</button></form>",
            b = escape(base),
            h = hidden(&[("csrf", csrf), ("session", session)]),
        )
    };
    page("Reset identity", &format!("<h1>Reset identity</h1>{nav}{body}", nav = account_nav(base, csrf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let evil = "\"><script>alert(1)</script>";
        let html = login_page(evil, evil, &[("req", evil)], &ClientInfo { name: Some(evil), uri: Some(evil) }, Some(evil), evil, Some(evil));
        assert!(!html.contains("<script>"), "{html}");
        let html = register_page(evil, evil, &[("req", evil)], &ClientInfo { name: Some(evil), uri: None }, Some(evil), evil, true, evil);
        assert!(!html.contains("<script>"));
        assert!(html.contains("registration_token"));
        let html = consent_page(evil, evil, &[], &ClientInfo::default(), evil);
        assert!(!html.contains("<script>"));
        let d = DeviceInfo { device_id: evil, display_name: Some(evil), last_seen_ip: Some(evil), last_seen_ts: Some(1) };
        assert!(!account_devices("/account", evil, std::slice::from_ref(&d), Some(evil)).contains("<script>"));
        assert!(!account_device("/account", evil, &d, true).contains("<script>"));
        assert!(!account_profile("/account", evil, evil, Some(evil), Some(evil)).contains("<script>"));
        assert!(!error_page(evil, evil).contains("<script>"));
    }

    #[test]
    fn forms_carry_hidden_fields() {
        let html = login_page("hs", "/oauth/authorize", &[("req", "abc.def")], &ClientInfo { name: Some("App"), uri: None }, None, "", None);
        assert!(html.contains("name=\"req\" value=\"abc.def\""));
        assert!(html.contains("value=\"login\""));
        assert!(html.contains("App"));
        let r = response(200, html, vec![]);
        assert!(r.headers.iter().any(|(k, v)| k == "X-Frame-Options" && v == "DENY"));
    }
}
