//! Storage for `/sync` and the per-user and ephemeral streams, one module per table or
//! stream. Every read a sync makes covers all of the user's rooms in one statement (or one per
//! chunk of rooms), never one per room. Everything is re-exported here, so callers name
//! `store::sync::…` whichever table it reads.

mod account_data;
mod filters;
mod presence;
mod push;
mod receipts;
mod rooms;
mod sliding;
mod snapshot;
mod timeline;
mod typing;

pub use account_data::*;
pub use filters::*;
pub use presence::*;
pub use push::*;
pub use receipts::*;
pub use rooms::*;
pub use sliding::*;
pub use snapshot::*;
pub use timeline::*;
pub use typing::*;

use serde_json::Value;

/// D1 allows 100 bound parameters per statement.
pub(crate) const MAX_PARAMS: usize = 90;

pub(crate) fn num(v: &Value) -> u64 {
    v.as_f64().unwrap_or(0.0) as u64
}

pub(crate) fn values_clause(n: usize, width: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; n].join(", ")
}
