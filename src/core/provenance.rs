//! Which code this is (issue 18, "A verified deploy"): the commit and dirty flag that
//! `scripts/build.sh` passes to the compiler (`STRATUS_COMMIT`, `STRATUS_DIRTY`), so the
//! running server can say what it was built from (`/_matrix/federation/v1/version`,
//! `GET /_stratus/admin/v1/provenance`) and `scripts/verify-deploy.sh` can rebuild it.
//! Hashes of the build cannot be baked into the build itself: they are in
//! `build/provenance.json`, which `make deploy` hands to the Worker as the
//! `STRATUS_PROVENANCE` var.

/// The commit built (40 hex digits), if the build knew it.
pub fn commit() -> Option<&'static str> {
    option_env!("STRATUS_COMMIT").filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The working tree had changes the commit does not have.
pub fn dirty() -> bool {
    option_env!("STRATUS_DIRTY") == Some("1")
}

/// `server.version`: the crate version with the commit as SemVer build metadata
/// (`0.1.0+<commit>`, `+<commit>.dirty` for a dirty tree), or the crate version alone.
pub fn server_version() -> String {
    version_string(env!("CARGO_PKG_VERSION"), commit(), dirty())
}

fn version_string(version: &str, commit: Option<&str>, dirty: bool) -> String {
    match commit {
        Some(c) if dirty => format!("{version}+{c}.dirty"),
        Some(c) => format!("{version}+{c}"),
        None => version.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(version_string("0.1.0", Some(c), false), format!("0.1.0+{c}"));
        assert_eq!(version_string("0.1.0", Some(c), true), format!("0.1.0+{c}.dirty"));
        assert_eq!(version_string("0.1.0", None, true), "0.1.0");
        assert!(server_version().starts_with(env!("CARGO_PKG_VERSION")));
    }
}
