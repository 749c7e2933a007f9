//! Where the fleet keeps model bytes, chosen by [`BlobsUrl`]:
//! - `file:DIR` (the default, `DATA/store`): the local content-addressed
//!   [`outpost_store::Store`]; devices download through the fleet
//!   (`GET /v1/artifacts/{digest}` with `Range`);
//! - `s3://bucket/prefix` on any S3-compatible store through the
//!   `object_store` crate (endpoint, region and credentials from the usual
//!   `AWS_*` environment variables): an upload streams into a multipart
//!   upload of `PREFIX/blobs/sha256/HEX` while it is hashed, completed only
//!   when digest and length match (aborted otherwise); a device's download is answered with a
//!   `307` to a short-lived pre-signed URL, so the bytes never pass through
//!   the fleet, and the store itself serves ranges (resume).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use outpost_protocol::Digest;
use outpost_store::Store;
use sha2::{Digest as _, Sha256};

use crate::error::{FleetError, FleetResult};

/// Where blobs live, from `outpost fleet serve --blobs URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobsUrl {
    /// A local folder (the default: `DATA/store`).
    File(std::path::PathBuf),
    /// An S3-compatible bucket and a key prefix (may be empty).
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for BlobsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobsUrl::File(p) => write!(f, "file:{}", p.display()),
            BlobsUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl FromStr for BlobsUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<BlobsUrl, String> {
        if let Some(rest) = s.strip_prefix("file:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err("`file:` needs a folder, e.g. file:/var/lib/outpost/blobs".into());
            }
            return Ok(BlobsUrl::File(path.into()));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "{s:?} names no bucket; e.g. s3://my-bucket/outpost"
                ));
            }
            return Ok(BlobsUrl::S3 {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
            });
        }
        Err(format!(
            "{s:?} is not a blob location the fleet knows: use file:DIR (the default) or s3://BUCKET/PREFIX"
        ))
    }
}

/// How long a device's pre-signed download URL stays valid.
pub const PRESIGNED_TTL: Duration = Duration::from_secs(15 * 60);

/// The fleet's blob store.
#[derive(Debug, Clone)]
pub enum Blobs {
    Local(Arc<Store>),
    S3(S3Blobs),
}

/// Blobs in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    prefix: String,
    location: String,
}

impl S3Blobs {
    /// Connects to `bucket` with endpoint, region and credentials from the
    /// environment (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true`
    /// for a plain-HTTP endpoint), and checks that the bucket answers.
    pub async fn open(bucket: &str, prefix: &str) -> FleetResult<S3Blobs> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(e) = std::env::var("AWS_ENDPOINT_URL") {
            b = b.with_endpoint(e);
        }
        let store = b.build().map_err(|e| {
            FleetError::Config(format!(
                "s3://{bucket}: {e} (set AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL for a store other than AWS)"
            ))
        })?;
        let s = S3Blobs {
            store: Arc::new(store),
            prefix: prefix.to_string(),
            location: format!("s3://{bucket}/{prefix}"),
        };
        // A wrong endpoint, bucket or key shows now, not at the first upload.
        use futures_util::TryStreamExt;
        let probe = ObjectPath::from(format!("{}blobs", s.prefix_slash()));
        s.store
            .list(Some(&probe))
            .try_next()
            .await
            .map_err(|e| FleetError::Config(format!("{} does not answer: {e}", s.location)))?;
        Ok(s)
    }

    fn prefix_slash(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    fn key(&self, d: &Digest) -> ObjectPath {
        ObjectPath::from(format!("{}blobs/sha256/{}", self.prefix_slash(), d.hex()))
    }

    fn s3_error(&self, doing: &str, e: object_store::Error) -> FleetError {
        FleetError::Internal(format!("{} while {doing}: {e}", self.location))
    }

    pub async fn len(&self, d: &Digest) -> FleetResult<Option<u64>> {
        match self.store.head(&self.key(d)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.s3_error("looking for a blob", e)),
        }
    }

    /// A URL that fetches the blob for [`PRESIGNED_TTL`], without any
    /// other credential.
    pub async fn presigned_get(&self, d: &Digest) -> FleetResult<url::Url> {
        self.store
            .signed_url(
                object_store::signer::Method::GET,
                &self.key(d),
                PRESIGNED_TTL,
            )
            .await
            .map_err(|e| self.s3_error("signing a download URL", e))
    }

    /// Streams `chunks` into a multipart upload of the blob's own key,
    /// hashing as it goes; the upload completes (and the object appears)
    /// only when the digest is `expected` (and the length `length`, if
    /// given), and is aborted otherwise: nothing is left behind, and no
    /// copy limits the size.
    pub async fn upload(
        &self,
        expected: &Digest,
        length: Option<u64>,
        chunks: &mut tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> FleetResult<Digest> {
        let upload = self
            .store
            .put_multipart(&self.key(expected))
            .await
            .map_err(|e| self.s3_error("starting an upload", e))?;
        let mut w = WriteMultipart::new(upload);
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = chunks.recv().await {
            n += chunk.len() as u64;
            hasher.update(&chunk);
            if let Err(e) = w.wait_for_capacity(4).await {
                let _ = w.abort().await;
                return Err(self.s3_error("uploading a blob", e));
            }
            w.put(chunk);
        }
        let got = Digest::from_sha256_bytes(hasher.finalize().into());
        if got != *expected || length.is_some_and(|l| l != n) {
            w.abort()
                .await
                .map_err(|e| self.s3_error("abandoning an upload", e))?;
            return Err(FleetError::BadRequest(format!(
                "the uploaded body ({n} bytes) has digest {got}, not {expected}{}; nothing was kept",
                length.map(|l| format!(" (Content-Length said {l})")).unwrap_or_default()
            )));
        }
        w.finish()
            .await
            .map_err(|e| self.s3_error("finishing an upload", e))?;
        Ok(got)
    }

    /// Every blob's digest (for tests and checks).
    pub async fn list(&self) -> FleetResult<Vec<Digest>> {
        use futures_util::TryStreamExt;
        let prefix = ObjectPath::from(format!("{}blobs/sha256", self.prefix_slash()));
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.s3_error("listing blobs", e))?;
        Ok(metas
            .iter()
            .filter_map(|m| m.location.filename())
            .filter_map(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            .collect())
    }
}

impl Blobs {
    /// Opens `url`.
    pub async fn open(url: &BlobsUrl) -> FleetResult<Blobs> {
        Ok(match url {
            BlobsUrl::File(dir) => Blobs::Local(Arc::new(Store::open(
                dir,
                outpost_store::StoreConfig::default(),
            )?)),
            BlobsUrl::S3 { bucket, prefix } => Blobs::S3(S3Blobs::open(bucket, prefix).await?),
        })
    }

    /// The blob's length, `None` when it is not stored.
    pub async fn len(&self, d: &Digest) -> FleetResult<Option<u64>> {
        match self {
            Blobs::Local(s) => Ok(s.blob_len(d).ok()),
            Blobs::S3(s) => s.len(d).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BlobsUrl;

    #[test]
    fn blob_locations_parse_with_errors_that_say_what_is_accepted() {
        assert_eq!(
            "s3://b/outpost/x/".parse::<BlobsUrl>(),
            Ok(BlobsUrl::S3 {
                bucket: "b".into(),
                prefix: "outpost/x".into()
            })
        );
        assert_eq!(
            "s3://b".parse::<BlobsUrl>(),
            Ok(BlobsUrl::S3 {
                bucket: "b".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            "file:/srv/blobs".parse::<BlobsUrl>(),
            Ok(BlobsUrl::File("/srv/blobs".into()))
        );
        assert!("s3:///x"
            .parse::<BlobsUrl>()
            .expect_err("refused")
            .contains("no bucket"));
        let e = "gs://b".parse::<BlobsUrl>().expect_err("refused");
        assert!(e.contains("file:DIR") && e.contains("s3://"), "{e}");
    }
}
