//! The rules of the admin API (`/_synapse/admin`, issue 18): user deactivation and password
//! resets, room deletion as a bounded resumable job, registration tokens shared with
//! `/register`, server notices, media deletion, shadow bans. Handlers in `api::admin`.

pub mod media;
pub mod notices;
pub mod rooms;
pub mod tokens;
pub mod users;

/// The version `GET /_synapse/admin/v1/server_version` reports: `Stratus <version>+<commit>`,
/// the same build identity as the federation `server.version` (`core::provenance`).
pub fn server_version() -> String {
    format!("Stratus {}", crate::core::provenance::server_version())
}

/// Logs an admin action: one console line with the admin, the action and its target (every
/// admin handler calls this before acting).
pub fn audit(admin: &str, action: &str, target: &str) {
    worker::console_log!("{}", serde_json::json!({ "admin_action": action, "admin": admin, "target": target }));
}
