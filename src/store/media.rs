//! Media storage: one D1 row per media ID (table `media`, migrations/0002_media.sql) and the
//! bytes in R2 under the SHA-256 of the content ([`content_key`]), so identical uploads are
//! stored once.
//!
//! Uploads are streamed. The body is read chunk by chunk while it is counted (and hashed part
//! by part once it outgrows a part); the
//! size limit is enforced on the bytes actually received, so a lying or missing
//! `Content-Length` does not matter. Memory stays bounded by [`PART_BYTES`]:
//! - a body that ends within one part is hashed by WebCrypto and put straight under its
//!   hash key (no existence check: the same bytes under the same key change nothing);
//! - a longer body goes to a temporary key (`tmp/<uuid>`) as an R2 multipart upload, one
//!   part per [`PART_BYTES`]. Once the hash is known the temporary object is copied to the
//!   hash key (streamed R2 → R2: R2 has no rename) unless that key already exists, and
//!   deleted. A failed or refused upload aborts the multipart upload, so nothing is left.

use futures_util::StreamExt;
use serde::Deserialize;
use worker::{Bucket, ByteStream, Data, FixedLengthStream, HttpMetadata, ResponseBody};

use crate::core::media::{content_key, UploadSplitter};
use crate::core::time::now_ms;
use crate::err;
use crate::error::{Error, Result};
use crate::http::BodyStream;
use crate::params;
use crate::store::db::Db;

/// R2 multipart part size: R2 wants at least 5 MiB for every part but the last, all equal.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct Media {
    pub media_id: String,
    pub user_id: String,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub size: Option<f64>,
    pub sha256: Option<String>,
    pub created_ts: f64,
    pub unused_expires_ts: Option<f64>,
    pub quarantined: i64,
}

const COLUMNS: &str = "media_id, user_id, content_type, filename, size, sha256, created_ts, uploaded_ts, unused_expires_ts, quarantined";

pub async fn get(db: &Db, media_id: &str) -> Result<Option<Media>> {
    db.first(&format!("SELECT {COLUMNS} FROM media WHERE media_id = ?"), params![media_id]).await
}

/// Records uploaded content under a new media ID.
pub async fn insert_uploaded(db: &Db, media_id: &str, user_id: &str, stored: &Stored, content_type: &str, filename: Option<&str>) -> Result<()> {
    let now = now_ms();
    db.run(
        "INSERT INTO media (media_id, user_id, content_type, filename, size, sha256, created_ts, uploaded_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params![media_id, user_id, content_type, filename, stored.size, stored.sha256, now, now],
    )
    .await?;
    Ok(())
}

/// Creates a media ID whose content comes later (`POST /_matrix/media/v1/create`).
pub async fn insert_pending(db: &Db, media_id: &str, user_id: &str, expires_ts: u64) -> Result<()> {
    db.run(
        "INSERT INTO media (media_id, user_id, created_ts, unused_expires_ts) VALUES (?, ?, ?, ?)",
        params![media_id, user_id, now_ms(), expires_ts],
    )
    .await?;
    Ok(())
}

/// Pending (created, not uploaded, unexpired) media IDs of a user.
pub async fn count_pending(db: &Db, user_id: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct N {
        n: f64,
    }
    let n: Option<N> = db
        .first("SELECT COUNT(*) AS n FROM media WHERE user_id = ? AND sha256 IS NULL AND unused_expires_ts > ?", params![user_id, now_ms()])
        .await?;
    Ok(n.map(|n| n.n as u64).unwrap_or(0))
}

/// Fills in a pending media ID. `Ok(false)` when someone else filled it first (the
/// `sha256 IS NULL` condition is the atomic guard).
pub async fn complete_pending(db: &Db, media_id: &str, stored: &Stored, content_type: &str, filename: Option<&str>) -> Result<bool> {
    let n = db
        .run(
            "UPDATE media SET sha256 = ?, size = ?, content_type = ?, filename = ?, uploaded_ts = ? WHERE media_id = ? AND sha256 IS NULL",
            params![stored.sha256, stored.size, content_type, filename, now_ms(), media_id],
        )
        .await?;
    Ok(n == 1)
}

pub async fn set_quarantined(db: &Db, media_id: &str, quarantined: bool) -> Result<bool> {
    let n = db.run("UPDATE media SET quarantined = ? WHERE media_id = ?", params![quarantined as i64, media_id]).await?;
    Ok(n == 1)
}

/// Content that is now in R2.
#[derive(Debug)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
}

fn r2_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("R2 {what}: {e}"))
}

fn too_large(limit: u64) -> Error {
    err!(TooLarge, "Upload is larger than the limit of {limit} bytes")
}

/// A body to store: bytes already in memory, or the request's stream.
pub enum Body {
    Bytes(Vec<u8>),
    Stream(BodyStream),
}

/// Streams `body` into R2 under its SHA-256, refusing it with 413 `M_TOO_LARGE` as soon as
/// more than `limit` bytes have arrived.
pub async fn store_content(bucket: &Bucket, body: Body, limit: u64) -> Result<Stored> {
    let mut chunks: std::pin::Pin<Box<dyn futures_util::Stream<Item = worker::Result<Vec<u8>>>>> = match body {
        Body::Bytes(b) => Box::pin(futures_util::stream::iter(std::iter::once(Ok(b)))),
        Body::Stream(s) => Box::pin(ByteStream::from(s.0)),
    };
    let mut split = UploadSplitter::new(limit, PART_BYTES);
    let mut multipart: Option<(worker::MultipartUpload, String, Vec<worker::UploadedPart>)> = None;

    let result: Result<()> = async {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| err!(Unknown, "Could not read the upload: {e}"))?;
            for part in split.push(&chunk).map_err(|_| too_large(limit))? {
                if multipart.is_none() {
                    let key = format!("tmp/{}", uuid::Uuid::new_v4());
                    let up = bucket.create_multipart_upload(key.clone()).execute().await.map_err(|e| r2_err("create multipart", e))?;
                    multipart = Some((up, key, Vec::new()));
                }
                let (up, _, parts) = multipart.as_mut().expect("just set");
                let n = parts.len() as u16 + 1;
                parts.push(up.upload_part(n, part).await.map_err(|e| r2_err("upload part", e))?);
            }
        }
        Ok(())
    }
    .await;

    if let Err(e) = result {
        if let Some((up, _, _)) = &multipart {
            let _ = up.abort().await;
        }
        return Err(e);
    }

    let Some((up, tmp, mut parts)) = multipart else {
        // Within one part (the common case): hashed by WebCrypto and put straight under its
        // hash, without asking first whether that key exists: the same bytes under the same
        // key change nothing, and the extra R2 round trip would cost every new upload.
        let bytes = split.into_single().ok_or_else(|| Error::internal("upload split without a multipart upload"))?;
        let total = bytes.len() as u64;
        let sha256 = sha256_hex(&bytes).await;
        bucket.put(content_key(&sha256), bytes).execute().await.map_err(|e| r2_err("put", e))?;
        return Ok(Stored { sha256, size: total });
    };
    let (sha256, total, rest) = split.finish();
    let key = content_key(&sha256);
    // The splitter never leaves an empty last part.
    let n = parts.len() as u16 + 1;
    match up.upload_part(n, rest).await {
        Ok(p) => parts.push(p),
        Err(e) => {
            let _ = up.abort().await;
            return Err(r2_err("upload part", e));
        }
    }
    up.complete(parts).await.map_err(|e| r2_err("complete multipart", e))?;
    let copied = async {
        if bucket.head(key.clone()).await.map_err(|e| r2_err("head", e))?.is_none() {
            copy_object(bucket, &tmp, &key, total).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    let _ = bucket.delete(tmp).await;
    copied?;
    Ok(Stored { sha256, size: total })
}

/// Whether an upload that declares `declared` bytes goes through [`hold`] (within the limit
/// and one part).
pub fn fits_one_part(declared: u64, limit: u64) -> bool {
    declared <= limit && declared <= PART_BYTES as u64
}

/// An upload read whole into one buffer on the JS side, and hashed: [`put_held`] stores it.
pub struct Held {
    buf: js_sys::ArrayBuffer,
    pub stored: Stored,
}

/// Reads a streamed body that declared `declared` bytes ([`fits_one_part`]) into one buffer
/// read by the runtime and hashes it with WebCrypto, so its bytes never enter wasm (no copy
/// in, none out, no chunk-by-chunk reads through the Rust executor). A body longer than it
/// declared fails, and the bytes received are checked against the limit again.
pub async fn hold(body: BodyStream, declared: u64, limit: u64) -> Result<Held> {
    use wasm_bindgen::JsCast;
    let global = js_sys::global();
    // Through a `FixedLengthStream` of the declared length, which errors on one byte more,
    // then `new Response(stream).arrayBuffer()`.
    let fixed = js_sys::Reflect::construct(&js_method(&global, "FixedLengthStream")?, &js_sys::Array::of1(&(declared as f64).into()))
        .map_err(|e| js_err("new FixedLengthStream", e))?;
    let stream: &wasm_bindgen::JsValue = body.0.as_ref();
    let piped = js_method(stream, "pipeThrough")?.call1(stream, &fixed).map_err(|e| js_err("pipeThrough", e))?;
    let resp = js_sys::Reflect::construct(&js_method(&global, "Response")?, &js_sys::Array::of1(&piped)).map_err(|e| js_err("new Response", e))?;
    let buf = js_await(js_method(&resp, "arrayBuffer")?.call0(&resp).map_err(|e| js_err("arrayBuffer", e))?)
        .await
        .map_err(|e| err!(Unknown, "Could not read the upload: {e:?}"))?;
    let buf: js_sys::ArrayBuffer = buf.dyn_into().map_err(|e| js_err("arrayBuffer", e))?;
    let size = buf.byte_length() as u64;
    if size > limit {
        return Err(too_large(limit));
    }
    let sha256 = match webcrypto_digest(&buf).await {
        Some(d) => crate::core::crypto::hex(&d),
        None => crate::core::crypto::hex(&crate::core::crypto::sha256(&js_sys::Uint8Array::new(&buf).to_vec())),
    };
    Ok(Held { buf, stored: Stored { sha256, size } })
}

/// Puts a [`Held`] upload under its hash key (no existence check, as [`store_content`]).
pub async fn put_held(bucket: &Bucket, held: &Held) -> Result<()> {
    // `bucket.put(key, buffer)` through the binding (the meter's wrapper counts it).
    let b: &wasm_bindgen::JsValue = bucket.as_ref();
    let put = js_method(b, "put")?.call2(b, &content_key(&held.stored.sha256).into(), &held.buf).map_err(|e| r2_err("put", format!("{e:?}")))?;
    js_await(put).await.map_err(|e| r2_err("put", format!("{e:?}")))?;
    Ok(())
}

fn js_err(what: &str, e: wasm_bindgen::JsValue) -> Error {
    Error::internal(format!("{what}: {e:?}"))
}

fn js_method(obj: &wasm_bindgen::JsValue, name: &str) -> Result<js_sys::Function> {
    use wasm_bindgen::JsCast;
    js_sys::Reflect::get(obj, &name.into()).map_err(|e| js_err(name, e))?.dyn_into::<js_sys::Function>().map_err(|e| js_err(name, e))
}

async fn js_await(p: wasm_bindgen::JsValue) -> std::result::Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
    use wasm_bindgen::JsCast;
    let p: js_sys::Promise = p.dyn_into()?;
    wasm_bindgen_futures::JsFuture::from(p).await
}

/// Removes a media row whose content could not be stored (an upload's row is written while
/// its content is put, see `api::media::upload`).
pub async fn delete_row(db: &Db, media_id: &str) -> Result<()> {
    db.run("DELETE FROM media WHERE media_id = ?", params![media_id]).await?;
    Ok(())
}

/// The hex SHA-256 of `bytes`, by WebCrypto (`crypto.subtle.digest`), or in wasm if that fails.
async fn sha256_hex(bytes: &[u8]) -> String {
    match webcrypto_sha256(bytes).await {
        Some(d) => crate::core::crypto::hex(&d),
        None => crate::core::crypto::hex(&crate::core::crypto::sha256(bytes)),
    }
}

async fn webcrypto_sha256(bytes: &[u8]) -> Option<Vec<u8>> {
    webcrypto_digest(&js_sys::Uint8Array::from(bytes)).await
}

/// `crypto.subtle.digest("SHA-256", data)` over a JS buffer or view.
async fn webcrypto_digest(data: &wasm_bindgen::JsValue) -> Option<Vec<u8>> {
    use wasm_bindgen::JsCast;
    let subtle = js_sys::Reflect::get(&js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).ok()?, &"subtle".into()).ok()?;
    let digest: js_sys::Function = js_sys::Reflect::get(&subtle, &"digest".into()).ok()?.dyn_into().ok()?;
    let promise: js_sys::Promise = digest.call2(&subtle, &"SHA-256".into(), data).ok()?.dyn_into().ok()?;
    let out = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    Some(js_sys::Uint8Array::new(&out).to_vec())
}

/// Copies an object of `size` bytes, streaming (R2 has no rename).
async fn copy_object(bucket: &Bucket, from: &str, to: &str, size: u64) -> Result<()> {
    let obj = bucket.get(from).execute().await.map_err(|e| r2_err("get", e))?.ok_or_else(|| Error::internal("temporary upload vanished"))?;
    let stream = obj.body().ok_or_else(|| Error::internal("temporary upload has no body"))?.stream().map_err(|e| r2_err("stream", e))?;
    bucket.put(to, Data::Stream(FixedLengthStream::wrap(stream, size))).execute().await.map_err(|e| r2_err("copy", e))?;
    Ok(())
}

/// The content under `key` (or bytes `start..=end` of it) as a stream for a response, if it
/// exists; with the object's full size.
pub async fn open(bucket: &Bucket, key: &str, range: Option<(u64, u64)>) -> Result<Option<(BodyStream, u64)>> {
    let mut get = bucket.get(key);
    if let Some((start, end)) = range {
        get = get.range(worker::Range::OffsetWithLength { offset: start, length: end - start + 1 });
    }
    let Some(obj) = get.execute().await.map_err(|e| r2_err("get", e))? else { return Ok(None) };
    let size = obj.size();
    let body = obj.body().ok_or_else(|| Error::internal("R2 object without body"))?;
    match body.response_body().map_err(|e| r2_err("body", e))? {
        ResponseBody::Stream(s) => Ok(Some((BodyStream(s), size))),
        _ => Err(Error::internal("R2 body is not a stream")),
    }
}

/// The content under `key` in memory (thumbnail sources, bounded by the caller).
pub async fn read(bucket: &Bucket, key: &str) -> Result<Option<Vec<u8>>> {
    let Some(obj) = bucket.get(key).execute().await.map_err(|e| r2_err("get", e))? else { return Ok(None) };
    let body = obj.body().ok_or_else(|| Error::internal("R2 object without body"))?;
    Ok(Some(body.bytes().await.map_err(|e| r2_err("read", e))?))
}

/// Stores generated bytes (thumbnails) with their content type.
pub async fn put_bytes(bucket: &Bucket, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
    bucket
        .put(key, bytes)
        .http_metadata(HttpMetadata { content_type: Some(content_type.to_owned()), ..Default::default() })
        .execute()
        .await
        .map_err(|e| r2_err("put", e))?;
    Ok(())
}

/// A stored object's stream and content type (cached thumbnails).
pub async fn open_with_type(bucket: &Bucket, key: &str) -> Result<Option<(BodyStream, u64, Option<String>)>> {
    let Some(obj) = bucket.get(key).execute().await.map_err(|e| r2_err("get", e))? else { return Ok(None) };
    let size = obj.size();
    let ct = obj.http_metadata().content_type;
    let body = obj.body().ok_or_else(|| Error::internal("R2 object without body"))?;
    match body.response_body().map_err(|e| r2_err("body", e))? {
        ResponseBody::Stream(s) => Ok(Some((BodyStream(s), size, ct))),
        _ => Err(Error::internal("R2 body is not a stream")),
    }
}

/// Deletes content from R2: the object under its hash and every thumbnail cached for it
/// (the admin API's media deletion, once no media row uses the content any more).
pub async fn delete_content(bucket: &Bucket, sha256: &str) -> Result<()> {
    bucket.delete(content_key(sha256)).await.map_err(|e| r2_err("delete", e))?;
    let listed = bucket.list().prefix(format!("thumb/{sha256}/")).limit(1000).execute().await.map_err(|e| r2_err("list", e))?;
    for o in listed.objects() {
        bucket.delete(o.key()).await.map_err(|e| r2_err("delete", e))?;
    }
    Ok(())
}
