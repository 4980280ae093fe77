//! [`ObjectStore`] over Amazon S3.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

use crate::ports::{
    ListPage, ObjectBody, ObjectInfo, ObjectStore, Payload, StoreError, StoreErrorKind,
};

/// Characters left as they are in a `CopySource` (S3 wants it URL-encoded, slashes kept).
const COPY_SOURCE_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// S3, through one client built at start-up.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
}

impl S3Store {
    /// A store over `client`.
    pub fn new(client: Client) -> Self {
        S3Store { client }
    }

    /// A client from shared SDK configuration, path-style when an endpoint override is set.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(super::endpoint_overridden())
            .build();
        S3Store::new(Client::from_conf(s3_config))
    }
}

fn error<E>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    err: &aws_sdk_s3::error::SdkError<E>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match err.code() {
        Some("AccessDenied" | "Forbidden" | "AllAccessDisabled") => StoreErrorKind::AccessDenied,
        Some("NoSuchBucket") => StoreErrorKind::NoSuchBucket,
        Some("PreconditionFailed") => StoreErrorKind::Changed,
        _ => StoreErrorKind::Other,
    };
    StoreError {
        operation,
        location: format!("s3://{bucket}/{key}"),
        kind,
        message: DisplayErrorContext(err).to_string(),
    }
}

/// What S3 says of an object, from a head, a get or a listing.
fn object_info(
    key: &str,
    size: Option<i64>,
    etag: Option<&str>,
    last_modified: Option<&aws_sdk_s3::primitives::DateTime>,
) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        size: size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        etag: etag.map(str::to_owned),
        last_modified: to_time(last_modified),
    }
}

/// The whole object's size from a ranged answer's `Content-Range: bytes a-b/size`.
fn range_total(content_range: Option<&str>) -> Option<i64> {
    content_range?.rsplit_once('/')?.1.trim().parse().ok()
}

fn to_time(value: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<OffsetDateTime> {
    let value = value?;
    OffsetDateTime::from_unix_timestamp(value.secs())
        .ok()
        .map(|at| at + time::Duration::nanoseconds(i64::from(value.subsec_nanos())))
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(object_info(
                key,
                out.content_length(),
                out.e_tag(),
                out.last_modified(),
            ))),
            Err(err) => {
                if err.as_service_error().is_some_and(|e| e.is_not_found()) {
                    return Ok(None);
                }
                Err(error("HeadObject", bucket, key, &err))
            }
        }
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        from: u64,
        if_match: Option<&str>,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, StoreError> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        if from > 0 {
            request = request.range(format!("bytes={from}-"));
        }
        if let Some(etag) = if_match {
            request = request.if_match(etag);
        }
        match request.send().await {
            Ok(out) => {
                // A ranged answer's length is the rest of the object, not its size.
                let size = range_total(out.content_range()).or(out.content_length());
                let info = object_info(key, size, out.e_tag(), out.last_modified());
                Ok(Some((info, Box::pin(out.body.into_async_read()))))
            }
            Err(err) => {
                if err.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                    return Ok(None);
                }
                // S3 refuses a range that starts at the end of the object (a run resumed after
                // its last byte); the rest of such an object is empty, not an error.
                let invalid_range =
                    err.as_service_error().and_then(|e| e.meta().code()) == Some("InvalidRange");
                if from > 0
                    && invalid_range
                    && let Some(info) = self.head(bucket, key).await?
                    && if_match.is_none_or(|etag| info.etag.as_deref() == Some(etag))
                    && info.size <= from
                {
                    return Ok(Some((info, Box::pin(tokio::io::empty()))));
                }
                Err(error("GetObject", bucket, key, &err))
            }
        }
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        payload: Payload,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let body = match payload {
            Payload::Bytes(bytes) => ByteStream::from(bytes),
            Payload::File(path) => {
                ByteStream::from_path(&path)
                    .await
                    .map_err(|err| StoreError {
                        operation: "PutObject",
                        location: format!("s3://{bucket}/{key}"),
                        kind: StoreErrorKind::Other,
                        message: format!("cannot read {}: {err}", path.display()),
                    })?
            }
        };
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| error("PutObject", bucket, key, &err))
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<(), StoreError> {
        let source = format!("{bucket}/{}", utf8_percent_encode(from, COPY_SOURCE_KEEP));
        self.client
            .copy_object()
            .bucket(bucket)
            .key(to)
            .copy_source(source)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| error("CopyObject", bucket, from, &err))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| error("DeleteObject", bucket, key, &err))
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(next)
            .send()
            .await
            .map_err(|err| error("ListObjectsV2", bucket, prefix, &err))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|object| {
                Some(object_info(
                    object.key()?,
                    object.size(),
                    object.e_tag(),
                    object.last_modified(),
                ))
            })
            .collect();
        let next = if out.is_truncated().unwrap_or(false) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ranged_answer_reports_the_whole_object_size() {
        assert_eq!(range_total(Some("bytes 100-199/5174")), Some(5174));
        assert_eq!(range_total(Some("bytes 0-0/*")), None);
        assert_eq!(range_total(None), None);
    }
}
