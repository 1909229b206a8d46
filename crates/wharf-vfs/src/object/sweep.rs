//! The sweep of multipart uploads left open: a process killed in the middle of an upload (or
//! an abort that never reached the store) leaves a multipart upload whose parts the store
//! keeps, and bills, until someone aborts it.
//!
//! The rule, the same as for the local share's temporary files: a multipart upload under the
//! bucket's prefix is aborted when no upload of this process is writing its key and nothing
//! was added to it (its newest part, or its start when it has none) for `max_age`
//! (`storage.stale_temporary_age`). So another process's upload that is still sending parts
//! is left alone, and so is a slow upload of this one.
//!
//! OpenDAL hides multipart uploads behind its writer, so the sweep speaks the three S3 calls
//! it needs itself (`ListMultipartUploads`, `ListParts`, `AbortMultipartUpload`), signed by
//! `reqsign`, the signing library OpenDAL uses, and sent with the same HTTP client crate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqsign_aws_v4::{Credential, EMPTY_STRING_SHA256, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, Signer};
use serde::Deserialize;

use super::config::{Addressing, ObjectStoreConfig, ObjectStoreCredentials, REQUEST_TIMEOUT};
use crate::error::{Error, Result};

/// What S3 leaves unescaped in a query value (RFC 3986 unreserved characters).
const QUERY_VALUE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// What S3 leaves unescaped in an object key's path: the same, and `/` between segments.
const KEY_PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Pages of a listing read in one sweep, at most (1,000 entries a page): a bound on one sweep's
/// work; what is left is found by the next.
const MAX_PAGES: usize = 100;

/// Keys this process is writing now, shared by a bucket's uploads and its sweeper: an upload
/// registers its key when it opens and unregisters it when it ends.
#[derive(Debug, Clone, Default)]
pub struct UploadsInProgress(Arc<Mutex<HashMap<String, usize>>>);

impl UploadsInProgress {
    /// Counts an upload of `key` until the returned guard is dropped.
    pub(super) fn enter(&self, key: String) -> UploadGuard {
        *self.lock().entry(key.clone()).or_insert(0) += 1;
        UploadGuard { uploads: self.clone(), key }
    }

    fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An upload counted in [`UploadsInProgress`].
#[derive(Debug)]
pub(super) struct UploadGuard {
    uploads: UploadsInProgress,
    key: String,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        let mut keys = self.uploads.lock();
        if let Some(count) = keys.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Multipart uploads found under the prefix.
    pub found: usize,
    /// Of those, aborted.
    pub aborted: usize,
}

/// Aborts the multipart uploads left open under one bucket's prefix (see the module
/// documentation for which).
#[derive(Debug, Clone)]
pub struct MultipartSweeper {
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// `scheme://host[:port]/bucket` (path style) or `scheme://bucket.host[:port]`.
    base: String,
    /// The configured key prefix, with its trailing `/` (empty for the whole bucket).
    prefix: String,
    in_progress: UploadsInProgress,
    max_age: Duration,
}

impl MultipartSweeper {
    /// A sweeper of the bucket and prefix `config` names, signing with `credentials`, sparing
    /// the keys in `in_progress` (relative to the prefix).
    pub fn new(
        config: &ObjectStoreConfig,
        credentials: &ObjectStoreCredentials,
        in_progress: UploadsInProgress,
        max_age: Duration,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|err| Error::Io(std::io::Error::other(err)))?;
        let provider = StaticCredentialProvider::new(
            &credentials.access_key_id,
            credentials.secret_access_key.expose(),
        );
        let signer =
            Signer::new(Context::new(), provider, RequestSigner::new("s3", &config.region));
        let endpoint = config.endpoint.trim_end_matches('/');
        let base = match config.addressing {
            Addressing::Path => format!("{endpoint}/{}", config.bucket),
            Addressing::VirtualHost => match endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{}.{host}", config.bucket),
                None => format!("{}.{endpoint}", config.bucket),
            },
        };
        let prefix = match config.prefix.trim_matches('/') {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        Ok(MultipartSweeper { client, signer, base, prefix, in_progress, max_age })
    }

    /// One sweep: lists the multipart uploads under the prefix and aborts those left behind.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("uploads", String::new()), ("prefix", self.prefix.clone())];
            if let Some((key, upload)) = &markers {
                query.push(("key-marker", key.clone()));
                query.push(("upload-id-marker", upload.clone()));
            }
            let page: ListMultipartUploadsResult = self.get_xml("", &query).await?;
            for upload in &page.uploads {
                report.found += 1;
                if self.left_behind(upload).await? {
                    self.abort(upload).await?;
                    report.aborted += 1;
                }
            }
            match (page.is_truncated, page.next_key_marker, page.next_upload_id_marker) {
                (true, Some(key), Some(upload)) => markers = Some((key, upload)),
                _ => break,
            }
        }
        Ok(report)
    }

    /// Sweeps now and then every `every`, for ever; failures are logged and the next sweep
    /// tries again.
    pub async fn run(self, every: Duration) {
        loop {
            match self.sweep().await {
                Ok(report) if report.aborted > 0 => tracing::info!(
                    found = report.found,
                    aborted = report.aborted,
                    "aborted multipart uploads left open in object storage"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "sweep of multipart uploads failed"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Whether `upload` is left behind: no upload of this process writes its key, and nothing
    /// was added to it for `max_age`.
    async fn left_behind(&self, upload: &Upload) -> Result<bool> {
        let relative = upload.key.strip_prefix(&self.prefix).unwrap_or(&upload.key);
        if self.in_progress.contains(relative) {
            return Ok(false);
        }
        let now = SystemTime::now();
        let old = |at: SystemTime| now.duration_since(at).is_ok_and(|age| age >= self.max_age);
        if !old(parse_time(&upload.initiated)?) {
            return Ok(false);
        }
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("uploadId", upload.upload_id.clone())];
            if let Some(marker) = &marker {
                query.push(("part-number-marker", marker.clone()));
            }
            let page: ListPartsResult = self.get_xml(&upload.key, &query).await?;
            for part in &page.parts {
                if !old(parse_time(&part.last_modified)?) {
                    return Ok(false);
                }
            }
            match (page.is_truncated, page.next_part_number_marker) {
                (true, Some(next)) => marker = Some(next),
                _ => break,
            }
        }
        Ok(true)
    }

    async fn abort(&self, upload: &Upload) -> Result<()> {
        let query = [("uploadId", upload.upload_id.clone())];
        let response = self.send(http::Method::DELETE, &upload.key, &query).await?;
        match response.status().as_u16() {
            // Gone already (another sweeper, or the upload completed meanwhile).
            200..=299 | 404 => Ok(()),
            status => Err(store_error("AbortMultipartUpload", status, response).await),
        }
    }

    /// A signed `GET` of `key` (empty: the bucket) with `query`, its XML body parsed.
    async fn get_xml<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        let response = self.send(http::Method::GET, key, query).await?;
        let status = response.status().as_u16();
        if !(200..=299).contains(&status) {
            return Err(store_error("a listing", status, response).await);
        }
        let body = response.text().await.map_err(|err| Error::Io(std::io::Error::other(err)))?;
        quick_xml::de::from_str(&body).map_err(|err| {
            Error::Io(std::io::Error::other(format!("the store's listing did not parse: {err}")))
        })
    }

    async fn send(
        &self,
        method: http::Method,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response> {
        let mut uri = self.base.clone();
        if !key.is_empty() {
            uri.push('/');
            uri.extend(utf8_percent_encode(key, KEY_PATH));
        }
        let mut query = query.to_vec();
        // The canonical request lists query parameters sorted; sending them so keeps the two
        // the same.
        query.sort();
        for (index, (name, value)) in query.iter().enumerate() {
            uri.push(if index == 0 { '?' } else { '&' });
            uri.push_str(name);
            uri.push('=');
            uri.extend(utf8_percent_encode(value, QUERY_VALUE));
        }
        let request = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("x-amz-content-sha256", EMPTY_STRING_SHA256)
            .body(())
            .map_err(|err| Error::Io(std::io::Error::other(err)))?;
        let (mut parts, ()) = request.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|err| Error::Io(std::io::Error::other(format!("signing: {err}"))))?;
        let request =
            reqwest::Request::try_from(http::Request::from_parts(parts, Vec::<u8>::new()))
                .map_err(|err| Error::Io(std::io::Error::other(err)))?;
        self.client.execute(request).await.map_err(|err| Error::Io(std::io::Error::other(err)))
    }
}

/// The error for an unexpected answer of the store to `call`.
async fn store_error(call: &str, status: u16, response: reqwest::Response) -> Error {
    let body = response.text().await.unwrap_or_default();
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(code, _)| code);
    Error::Io(std::io::Error::other(format!("{call}: the store answered {status} {code}")))
}

/// An S3 timestamp (`2026-12-06T03:19:39.000Z`).
fn parse_time(text: &str) -> Result<SystemTime> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            Error::Io(std::io::Error::other(format!("a bad time from the store: {text}")))
        })?;
    Ok(parsed.into())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<Upload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Upload {
    key: String,
    upload_id: String,
    initiated: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPartsResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_part_number_marker: Option<String>,
    #[serde(default, rename = "Part")]
    parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Part {
    last_modified: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_of_uploads_parses() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult \
            xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket>\
            <IsTruncated>true</IsTruncated><NextKeyMarker>k</NextKeyMarker>\
            <NextUploadIdMarker>u</NextUploadIdMarker><Upload><Key>lab/tftp.bin</Key>\
            <UploadId>944c</UploadId><Initiated>2026-12-06T03:19:39Z</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let page: ListMultipartUploadsResult = quick_xml::de::from_str(xml).expect("parse");
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("k"));
        assert_eq!(page.uploads.len(), 1);
        assert_eq!(page.uploads[0].key, "lab/tftp.bin");
        assert!(parse_time(&page.uploads[0].initiated).is_ok());
        assert!(parse_time("2026-12-06T03:19:39.000Z").is_ok());
        let empty: ListMultipartUploadsResult =
            quick_xml::de::from_str("<ListMultipartUploadsResult></ListMultipartUploadsResult>")
                .expect("parse");
        assert!(empty.uploads.is_empty() && !empty.is_truncated);
    }

    #[test]
    fn keys_in_progress_are_counted_until_every_upload_ends() {
        let uploads = UploadsInProgress::default();
        let first = uploads.enter("a/b".to_owned());
        let second = uploads.enter("a/b".to_owned());
        drop(first);
        assert!(uploads.contains("a/b"), "one upload of the key still runs");
        drop(second);
        assert!(!uploads.contains("a/b"));
    }

    #[test]
    fn keys_and_query_values_are_escaped_once() {
        assert_eq!(utf8_percent_encode("a b/ü+c", KEY_PATH).to_string(), "a%20b/%C3%BC%2Bc");
        assert_eq!(utf8_percent_encode("a/b", QUERY_VALUE).to_string(), "a%2Fb");
    }
}
