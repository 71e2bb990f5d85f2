//! Federation protocol logic (spec: server-server-api), native and unit-tested: the
//! `X-Matrix` authorization header, server-name resolution, remote key documents and the
//! checks a PDU from another server goes through.
//! checks a PDU from another server goes through; the outbound queue's rules (`queue`:
//! destinations, transactions, backoff, catch-up).
pub mod acl;
pub mod device_list;
pub mod discovery;
pub mod http1;
pub mod keys;
pub mod membership;
pub mod pdu;
pub mod queue;
pub mod server_view;
pub mod xmatrix;

/// Percent-encodes a path segment or query value of a federation request (room, event and
/// user IDs, aliases): everything but RFC 3986's unreserved characters. Requests are signed
/// over the URI as sent, so one encoding everywhere keeps them predictable.
pub fn uri_component(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn uri_component_keeps_only_unreserved_characters() {
        assert_eq!(super::uri_component("!a-b.c_d~e:x.org"), "%21a-b.c_d~e%3Ax.org");
        assert_eq!(super::uri_component("$ab/cd+ef="), "%24ab%2Fcd%2Bef%3D");
        assert_eq!(super::uri_component("@ü:x"), "%40%C3%BC%3Ax");
    }
}
