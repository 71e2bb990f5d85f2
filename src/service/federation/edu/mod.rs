//! EDUs from other servers (spec: server-server-api, "EDUs" and the sections of each type):
//! the `edus` of a `/send` transaction, each handed to the module of its type. An EDU is
//! never worth failing a transaction over: one that is malformed, of a type we do not know,
//! or about users or rooms its origin has no say in is dropped (and logged), and the others
//! still apply.
//!
//! Each module checks that the origin may speak for what the EDU names (typing and receipts:
//! the user is the origin's and the origin has a user in the room; to-device and device
//! lists: the sender/user is the origin's).

use ruma::ServerName;
use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::Result;

pub mod device_list;
pub mod presence;
pub mod receipt;
pub mod signing_key;
pub mod to_device;
pub mod typing;

/// Applies the EDUs of one transaction from `origin`, in order.
pub async fn receive(ctx: &Ctx, origin: &ServerName, edus: &[Value]) {
    for edu in edus {
        let kind = edu.get("edu_type").and_then(Value::as_str).unwrap_or_default();
        let Some(content) = edu.get("content").filter(|c| c.is_object()) else {
            worker::console_warn!("EDU {kind:?} from {origin} without an object content: dropped");
            continue;
        };
        if let Err(e) = receive_one(ctx, origin, kind, content).await {
            worker::console_warn!("EDU {kind} from {origin}: {e}");
        }
    }
}

async fn receive_one(ctx: &Ctx, origin: &ServerName, kind: &str, content: &Value) -> Result<()> {
    match kind {
        "m.typing" => typing::receive(ctx, origin, content).await,
        "m.receipt" => receipt::receive(ctx, origin, content).await,
        "m.presence" => presence::receive(ctx, origin, content).await,
        "m.direct_to_device" => to_device::receive(ctx, origin, content).await,
        "m.device_list_update" => device_list::receive(ctx, origin, content).await,
        "m.signing_key_update" => signing_key::receive(ctx, origin, content).await,
        _ => Ok(()),
    }
}
