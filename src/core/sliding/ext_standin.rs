//! Stand-in for `core::sliding::extensions` (written on another branch) until it is merged:
//! the agreed interface, with nothing behind it.

#[derive(serde::Deserialize, Default, Clone)]
pub struct ExtensionsRequest {}

#[derive(serde::Serialize, Default)]
pub struct ExtensionsResponse {}

impl ExtensionsResponse {
    pub fn is_empty(&self) -> bool {
        true
    }
}
