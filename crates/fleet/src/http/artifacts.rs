//! Blobs over HTTP: downloads with `Range` (one range per request; `206`
//! with `Content-Range`, `416` with `Content-Range: bytes */LEN` for a
//! range that is malformed or starts past the end; paced to
//! `FleetConfig::throttle_bytes_per_s` when set), and admin uploads that
//! the store hashes while writing (a digest or length mismatch is a `400`,
//! and nothing is kept). With blobs on S3 (`blobs.rs`) a download is a
//! `307` to a pre-signed URL instead: the bucket serves the bytes.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use outpost_protocol::Digest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::bearer;
use crate::api::Stored;
use crate::blobs::Blobs;
use crate::error::FleetError;
use crate::Fleet;

const CHUNK: usize = 256 << 10;

fn digest(s: &str) -> Result<Digest, FleetError> {
    Digest::parse(s).map_err(|e| FleetError::BadRequest(e.to_string()))
}

/// `bytes=A-B`, `bytes=A-` or `bytes=-N` against a blob of `len` bytes →
/// the inclusive range to send.
pub fn parse_range(value: &str, len: u64) -> Result<(u64, u64), FleetError> {
    let bad = |why: &str| FleetError::BadRange {
        message: format!("Range {value:?} cannot be served for a {len}-byte blob: {why}"),
        length: len,
    };
    let spec = value
        .strip_prefix("bytes=")
        .ok_or_else(|| bad("only \"bytes=START-END\" ranges are supported"))?;
    if spec.contains(',') {
        return Err(bad("one range per request"));
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| bad("expected START-END, START- or -SUFFIX"))?;
    let num = |s: &str| -> Result<u64, FleetError> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("positions must be decimal numbers"));
        }
        s.parse().map_err(|_| bad("position too large"))
    };
    if len == 0 {
        return Err(bad("the blob is empty"));
    }
    if a.is_empty() {
        let n = num(b)?;
        if n == 0 {
            return Err(bad("a suffix of 0 bytes is empty"));
        }
        return Ok((len.saturating_sub(n), len - 1));
    }
    let start = num(a)?;
    let end = if b.is_empty() {
        len - 1
    } else {
        num(b)?.min(len - 1)
    };
    if start >= len {
        return Err(bad("it starts at or past the end"));
    }
    if !b.is_empty() && num(b)? < start {
        return Err(bad("END is before START"));
    }
    Ok((start, end))
}

/// How long `bytes` take at `rate` bytes per second.
fn pace(bytes: u64, rate: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate as f64)
}

/// `GET /v1/artifacts/{digest}` (also HEAD), with a device or admin token.
#[utoipa::path(get, path = "/v1/artifacts/{digest}", tag = "device", security(("device" = []), ("admin" = [])), summary = "Download a blob (one Range per request)", params(("digest" = String, Path, description = "sha256:HEX"), ("range" = Option<String>, Header, description = "bytes=START-END, START- or -SUFFIX")), responses((status = 200, description = "The whole blob", body = Vec<u8>, content_type = "application/octet-stream"), (status = 206, description = "The range asked for (Content-Range)", body = Vec<u8>, content_type = "application/octet-stream"), super::Errors, super::BlobErrors))]
pub async fn download(
    State(fleet): State<Arc<Fleet>>,
    Path(d): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FleetError> {
    let token = bearer(&headers)?;
    if !fleet.is_admin(token) {
        match fleet.device_by_token(token).await {
            Ok(_) => {}
            Err(FleetError::Unauthorized(_)) => {
                return Err(FleetError::Unauthorized(
                    "token is neither a device token nor the admin token".into(),
                ))
            }
            // The database failing is not the device's fault.
            Err(e) => return Err(e),
        }
    }
    let d = digest(&d)?;
    let store = match fleet.blobs() {
        Blobs::Local(store) => store.clone(),
        Blobs::S3(s3) => {
            // The bucket serves the bytes (and the ranges) itself.
            if s3.len(&d).await?.is_none() {
                return Err(FleetError::NotFound(format!(
                    "blob {d} is not in the fleet's store"
                )));
            }
            let url = s3.presigned_get(&d).await?;
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(url.as_str()) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(resp);
        }
    };
    let len = store
        .blob_len(&d)
        .map_err(|_| FleetError::NotFound(format!("blob {d} is not in the fleet's store")))?;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| FleetError::BadRange {
                message: "Range header is not ASCII".into(),
                length: len,
            })?;
            Some(parse_range(v, len)?)
        }
    };
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { end - start + 1 };
    let path = store.blob_path(&d);
    let throttle = fleet.config().throttle_bytes_per_s.filter(|&r| r > 0);
    // Throttled: chunks of about 1/10 s, so the pace is smooth.
    let chunk = throttle.map_or(CHUNK, |r| {
        usize::try_from(r / 10).unwrap_or(CHUNK).clamp(1, CHUNK)
    });
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let send = |r| tx.blocking_send(r).is_ok();
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                send(Err(e));
                return;
            }
        };
        if let Err(e) = f.seek(SeekFrom::Start(start)) {
            send(Err(e));
            return;
        }
        let mut left = count;
        let mut buf = vec![0u8; chunk];
        let began = Instant::now();
        while left > 0 {
            let want = usize::try_from(left.min(chunk as u64)).unwrap_or(chunk);
            match f.read(&mut buf[..want]) {
                Ok(0) => {
                    send(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shrank while being sent",
                    )));
                    return;
                }
                Ok(n) => {
                    left -= n as u64;
                    if let Some(rate) = throttle {
                        // A chunk leaves no earlier than the moment its
                        // last byte is due at `rate`: N bytes take >= N/rate.
                        let due = began + pace(count - left, rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    if !send(Ok(Bytes::copy_from_slice(&buf[..n]))) {
                        return; // client gone
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    send(Err(e));
                    return;
                }
            }
        }
    });
    let mut resp = Body::from_stream(ReceiverStream::new(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{d}\"")) {
        h.insert(header::ETAG, v);
    }
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// `PUT /admin/v1/blobs/{digest}`: streams the body into the store, which
/// checks the digest (and `Content-Length`) before the blob becomes
/// visible. Idempotent: a blob already present is answered `200` at once.
#[utoipa::path(put, path = "/admin/v1/blobs/{digest}", tag = "admin", security(("admin" = [])), summary = "Upload a GGUF blob; the store checks its digest before keeping it", params(("digest" = String, Path, description = "sha256:HEX of the body")), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 201, description = "Stored", body = Stored), (status = 200, description = "Already there; nothing written", body = Stored), super::Errors, super::BlobErrors))]
pub async fn upload(
    State(fleet): State<Arc<Fleet>>,
    Path(d): Path<String>,
    req: Request,
) -> Result<Response, FleetError> {
    let d = digest(&d)?;
    if fleet.has_blob(&d).await? {
        // Read (and drop) the body first, so the client reads this answer
        // instead of a broken pipe.
        let mut body = req.into_body().into_data_stream();
        while let Some(Ok(_)) = body.next().await {}
        return Ok((
            StatusCode::OK,
            axum::Json(Stored {
                digest: d,
                stored: false,
            }),
        )
            .into_response());
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > fleet.config().max_blob_bytes) {
        return Err(FleetError::TooLarge(format!(
            "blob of {} bytes is over the fleet's limit of {}",
            length.unwrap_or(0),
            fleet.config().max_blob_bytes
        )));
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let writer = match fleet.blobs().clone() {
        Blobs::Local(store) => {
            tokio::task::spawn_blocking(move || -> Result<Digest, FleetError> {
                let mut w = store.writer(Some(&d), length)?;
                while let Some(chunk) = rx.blocking_recv() {
                    w.write(&chunk)?;
                }
                Ok(w.commit()?)
            })
        }
        Blobs::S3(s3) => tokio::spawn(async move { s3.upload(&d, length, &mut rx).await }),
    };
    let mut body = req.into_body().into_data_stream();
    let mut failed = None;
    let mut refused = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            // The writer refused (its error comes below): read the rest of
            // the body anyway, so the client gets to read the answer
            // instead of a broken pipe.
            Ok(_) if refused => {}
            Ok(c) => {
                refused = tx.send(c).await.is_err();
            }
            Err(e) => {
                failed = Some(if e.to_string().contains("length limit") {
                    FleetError::TooLarge(format!("blob upload is over the limit: {e}"))
                } else {
                    FleetError::BadRequest(format!("blob upload broke off: {e}"))
                });
                break;
            }
        }
    }
    drop(tx);
    if let Some(e) = failed {
        // The writer sees the end of a short body and refuses it (the hash
        // cannot match); its temp file is deleted.
        let _ = writer.await;
        return Err(e);
    }
    let stored = writer
        .await
        .map_err(|e| FleetError::Internal(format!("blob writer stopped: {e}")))??;
    Ok((
        StatusCode::CREATED,
        axum::Json(Stored {
            digest: stored,
            stored: true,
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).ok(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).ok(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).ok(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100).ok(), Some((0, 99)));
        assert_eq!(parse_range("bytes=95-200", 100).ok(), Some((95, 99)));
        for bad in [
            "bytes=100-",
            "bytes=5-2",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=-0",
            "bytes=",
            "bytes=1",
        ] {
            let e = parse_range(bad, 100).expect_err(bad);
            assert!(e.to_string().contains("100-byte"), "{e}");
        }
    }
}
