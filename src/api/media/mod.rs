//! The content repository (spec v1.19: client-server-api, "Content repository"; MSC3916
//! authenticated media, in the spec since v1.11). Serving rules (local lookup, thumbnails,
//! remote media over federation) are in [`crate::service::media`]; storage in
//! [`crate::store::media`]; the pure rules (types, dispositions, file names, thumbnail sizes,
//! preview URL checks) in [`crate::core::media`], [`crate::core::thumbnail`] and
//! [`crate::core::preview`].

pub mod admin;
pub mod download;
pub mod preview;
pub mod thumbnail;
pub mod upload;

use crate::error::{Error, ErrorKind, Result};
use crate::http::Response;

/// A remote fetch's outcome as the client sees it (as Synapse answers): remote media over the
/// size limit is 502 `M_TOO_LARGE` (the spec's 502 of the federation endpoints), not the 413
/// of an upload; a remote that cannot be reached or sent something unusable (our
/// `M_UNKNOWN`) is 502 `M_UNKNOWN`, a bad gateway rather than a bad request; every other error
/// (404 `M_NOT_FOUND`…) as usual.
fn remote_answer(r: Result<Response>) -> Result<Response> {
    match r {
        Err(Error::Matrix(ErrorKind::TooLarge, msg)) => Err(Error::Matrix(ErrorKind::RemoteTooLarge, msg)),
        Err(Error::Matrix(ErrorKind::Unknown, msg)) => Err(Error::Matrix(ErrorKind::BadGateway, msg)),
        other => other,
    }
}
