//! Where the operator keeps media bytes: the local disk (the default) or an S3-compatible
//! object store (`--media-store s3://bucket/prefix`), with the store's endpoint, region,
//! credentials and addressing style. The secrets are `SecretString`s: `{:?}` of the settings
//! never shows them.

use secrecy::SecretString;

/// `--media-store`.
#[derive(Debug, Clone, Default)]
pub enum MediaStorage {
    /// Files under `<data-dir>/media` on this node.
    #[default]
    Local,
    /// An S3-compatible object store every node shares.
    S3(S3Settings),
}

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// The keys' common prefix inside the bucket (no leading or trailing `/`); may be empty.
    pub prefix: String,
    /// The store's URL (`http://127.0.0.1:9000`, `https://s3.example.com`); `None` is AWS's
    /// endpoint for the region. An `http://` endpoint is allowed as given.
    pub endpoint: Option<String>,
    /// `None` takes `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Static credentials; when absent, the standard AWS sources (`AWS_*` variables, web
    /// identity, container or instance credentials).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub session_token: Option<SecretString>,
    /// Path-style requests (`endpoint/bucket/key`), which S3-compatible servers expect; off,
    /// virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
}

impl S3Settings {
    /// Settings for `s3://bucket/prefix` with nothing else given.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Settings {
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: true,
        }
    }

    /// The settings one URL gives: an S3-compatible server's endpoint with the credentials
    /// as user and password and the bucket as path (`http://KEY:SECRET@127.0.0.1:9000/bucket`),
    /// as the tests get them (`BZAPPER_TEST_S3_URL`); keys under `prefix`.
    pub fn from_endpoint_url(url: &str, prefix: &str) -> Result<S3Settings, String> {
        let u = url::Url::parse(url).map_err(|e| format!("`BZAPPER_TEST_S3_URL`: {e}"))?;
        let bucket = u.path().trim_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err(
                "the URL's path must be the bucket: http://KEY:SECRET@host:port/bucket".into()
            );
        }
        let decode =
            |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let mut s = S3Settings::new(bucket, prefix);
        let host = u.host_str().ok_or("the URL has no host")?;
        s.endpoint = Some(match u.port() {
            Some(port) => format!("{}://{host}:{port}", u.scheme()),
            None => format!("{}://{host}", u.scheme()),
        });
        if !u.username().is_empty() {
            s.access_key_id = Some(decode(u.username()));
        }
        s.secret_access_key = u.password().map(|p| SecretString::from(decode(p)));
        s.region = Some("us-east-1".into());
        Ok(s)
    }

    /// `s3://bucket/prefix` (and the endpoint when one is set), for logs and errors.
    pub fn describe(&self) -> String {
        let mut s = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.prefix);
        }
        if let Some(e) = &self.endpoint {
            s.push_str(&format!(" at {e}"));
        }
        s
    }
}

impl MediaStorage {
    /// `local`, or `s3://bucket` / `s3://bucket/prefix`.
    pub fn parse(s: &str) -> Result<MediaStorage, String> {
        let s = s.trim();
        if s.is_empty() || s == "local" {
            return Ok(MediaStorage::Local);
        }
        let Some(rest) = s.strip_prefix("s3://") else {
            return Err(format!("`{s}` is neither `local` nor an `s3://bucket/prefix` URL"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_bucket_name(bucket) {
            return Err(format!(
                "`{bucket}` is not a bucket name (3 to 63 of a-z, 0-9, `.` and `-`, starting and \
                 ending with a letter or digit)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() && !super::blobs::is_valid_key(prefix) {
            return Err(format!(
                "the prefix `{prefix}` may hold only A-Z, a-z, 0-9, `_`, `-`, `.` and `/` between \
                 segments (none starting with `.`)"
            ));
        }
        Ok(MediaStorage::S3(S3Settings::new(bucket, prefix)))
    }
}

fn is_bucket_name(b: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&b.len())
        && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(b.chars().next())
        && edge(b.chars().last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_names_the_local_disk_or_a_bucket_and_prefix() {
        assert!(matches!(MediaStorage::parse("local"), Ok(MediaStorage::Local)));
        assert!(matches!(MediaStorage::parse(""), Ok(MediaStorage::Local)));
        let Ok(MediaStorage::S3(s)) = MediaStorage::parse("s3://media-1/bzapper/prod/") else {
            panic!()
        };
        assert_eq!(
            (s.bucket.as_str(), s.prefix.as_str(), s.path_style),
            ("media-1", "bzapper/prod", true)
        );
        let Ok(MediaStorage::S3(s)) = MediaStorage::parse("s3://media-1") else { panic!() };
        assert_eq!(s.prefix, "");
        for bad in [
            "s3://",
            "s3://Media",
            "s3://ab",
            "s3://a_b/x",
            "file:///tmp",
            "s3://ok-bucket/../x",
            "s3://ok-bucket/a b",
        ] {
            assert!(MediaStorage::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_settings_never_show_the_secret() {
        let mut s = S3Settings::new("media-1", "p");
        s.access_key_id = Some("AKIDEXAMPLE".into());
        s.secret_access_key = Some("wJalrXUtnFEMI-very-secret".into());
        s.session_token = Some("session-token-secret".into());
        let shown = format!("{:?} {}", MediaStorage::S3(s.clone()), s.describe());
        assert!(!shown.contains("very-secret") && !shown.contains("token-secret"), "{shown}");
    }
}
