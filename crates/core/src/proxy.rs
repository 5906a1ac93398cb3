//! The per-number proxy setting: a `socks5://` or `http://` URL, parsed and checked once, with
//! a redacted form for anything shown to a client (credentials are never echoed).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the proxy must be a URL like socks5://user:pass@host:port or http://host:port")]
    NotAUrl,
    #[error("the proxy scheme `{0}` is not supported; use socks5:// or http://")]
    Scheme(String),
    #[error("the proxy URL needs a host and a port")]
    HostPort,
    #[error("the proxy URL must not have a path, query or fragment")]
    Extra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Socks5,
    Http,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub scheme: ProxyScheme,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials, not even in logs.
        f.write_str(&self.redacted())
    }
}

impl ProxyUrl {
    pub fn parse(input: &str) -> Result<Self, ProxyError> {
        let url = url::Url::parse(input.trim()).map_err(|_| ProxyError::NotAUrl)?;
        let scheme = match url.scheme() {
            "socks5" => ProxyScheme::Socks5,
            "http" => ProxyScheme::Http,
            other => return Err(ProxyError::Scheme(other.to_string())),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(ProxyError::HostPort)?;
        let port = url.port().ok_or(ProxyError::HostPort)?;
        if !(url.path().is_empty() || url.path() == "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(ProxyError::Extra);
        }
        let username = (!url.username().is_empty()).then(|| url.username().to_string());
        Ok(ProxyUrl {
            scheme,
            host: host.to_string(),
            port,
            username,
            password: url.password().map(str::to_string),
        })
    }

    fn scheme_str(&self) -> &'static str {
        match self.scheme {
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Http => "http",
        }
    }

    /// The user name and password as the proxy expects them on the wire: percent-decoded (the
    /// URL keeps them encoded, so `p%40ss` stands for `p@ss`), the password empty when the URL
    /// has none. `None` when the URL names no user.
    pub fn credentials(&self) -> Option<(String, String)> {
        let decode =
            |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = self.username.as_deref()?;
        Some((decode(user), self.password.as_deref().map(decode).unwrap_or_default()))
    }

    /// The URL without credentials, as API responses show it.
    pub fn redacted(&self) -> String {
        format!("{}://{}:{}", self.scheme_str(), self.host, self.port)
    }

    /// The full URL, credentials included (for the store, sealed, and for the driver).
    pub fn to_url_string(&self) -> String {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => {
                format!("{}://{}:{}@{}:{}", self.scheme_str(), u, p, self.host, self.port)
            }
            (Some(u), None) => format!("{}://{}@{}:{}", self.scheme_str(), u, self.host, self.port),
            _ => self.redacted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks5_with_credentials_is_redacted() {
        let p = ProxyUrl::parse("socks5://user:secret@10.0.0.1:1080").unwrap();
        assert_eq!(p.redacted(), "socks5://10.0.0.1:1080");
        assert_eq!(p.to_url_string(), "socks5://user:secret@10.0.0.1:1080");
        assert!(!format!("{p:?}").contains("secret"));
        assert_eq!(ProxyUrl::parse(&p.to_url_string()).unwrap(), p);
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let p = ProxyUrl::parse("socks5://us%40er:p%3Ass%2Fw@h:1080").unwrap();
        assert_eq!(p.credentials(), Some(("us@er".into(), "p:ss/w".into())));
        let p = ProxyUrl::parse("http://only-user@h:3128").unwrap();
        assert_eq!(p.credentials(), Some(("only-user".into(), String::new())));
        assert_eq!(ProxyUrl::parse("http://h:3128").unwrap().credentials(), None);
    }

    #[test]
    fn http_without_credentials() {
        let p = ProxyUrl::parse("http://proxy.example:3128").unwrap();
        assert_eq!(p.scheme, ProxyScheme::Http);
        assert_eq!(p.to_url_string(), "http://proxy.example:3128");
    }

    #[test]
    fn other_schemes_and_shapes_are_refused() {
        assert_eq!(ProxyUrl::parse("https://h:1").unwrap_err(), ProxyError::Scheme("https".into()));
        assert_eq!(ProxyUrl::parse("ftp://h:1").unwrap_err(), ProxyError::Scheme("ftp".into()));
        assert_eq!(ProxyUrl::parse("socks5://host").unwrap_err(), ProxyError::HostPort);
        assert_eq!(ProxyUrl::parse("nonsense").unwrap_err(), ProxyError::NotAUrl);
        assert_eq!(ProxyUrl::parse("http://h:1/path").unwrap_err(), ProxyError::Extra);
    }
}
