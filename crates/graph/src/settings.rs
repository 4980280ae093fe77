//! Where and how the client talks to the Graph API.

use std::net::IpAddr;
use std::time::Duration;

use url::{Host, Url};

use crate::error::GraphError;
use crate::secret::AppSecret;

/// The Graph API version used unless `GRAPH_API_VERSION` says otherwise.
///
/// Catalog endpoints belong to the Marketing API, whose version table gives earlier end dates
/// than the Graph API's for the same number (v25.0: February 2027 there, July 2028 for the
/// Graph API), so the choice follows the Marketing API's table: v27.0 (released November 2026,
/// no end date announced yet) is served the longest.
pub const DEFAULT_API_VERSION: &str = "v27.0";

/// Connection settings for [`crate::GraphClient`].
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Graph API origin, e.g. `https://graph.facebook.com` or an emulator's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Version path segment, e.g. `v27.0`.
    pub api_version: String,
    /// Upper bound for establishing a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Upper bound for one whole request, including reading the response.
    pub request_timeout: Duration,
    /// When set, every call carries `appsecret_proof`.
    pub app_secret: Option<AppSecret>,
}

impl Default for GraphSettings {
    fn default() -> Self {
        Self {
            base_url: "https://graph.facebook.com".to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            app_secret: None,
        }
    }
}

impl GraphSettings {
    /// Checks the settings and says which environment variable to fix when they are wrong.
    pub fn validate(&self) -> Result<(), GraphError> {
        self.parsed_base_url()?;
        if !is_version(&self.api_version) {
            return Err(GraphError::InvalidSettings {
                message: format!(
                    "GRAPH_API_VERSION `{}` is not a Graph API version; set it to the form vNN.N, e.g. {DEFAULT_API_VERSION}",
                    sanitize_setting(&self.api_version)
                ),
            });
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(GraphError::InvalidSettings {
                message: "Graph API connect and request timeouts must be greater than zero; configure a positive duration".to_owned(),
            });
        }
        Ok(())
    }

    /// The validated base URL, shared with the client so both agree on what is acceptable.
    pub(crate) fn parsed_base_url(&self) -> Result<Url, GraphError> {
        let shown = sanitize_setting(&self.base_url);
        let invalid = |why: &str| GraphError::InvalidSettings {
            message: format!(
                "GRAPH_API_BASE_URL `{shown}` {why}; set it to https://graph.facebook.com or, for an emulator, http://127.0.0.1:PORT"
            ),
        };
        let url = Url::parse(self.base_url.trim())
            .map_err(|e| invalid(&format!("is not an absolute URL ({e})")))?;
        let Some(host) = url.host() else {
            return Err(invalid("has no host"));
        };
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in a URL end up in logs and error messages, so this one error does
            // not echo the value.
            return Err(GraphError::InvalidSettings {
                message: "GRAPH_API_BASE_URL must not contain credentials (user:password@); set it to the bare origin, e.g. https://graph.facebook.com, and pass the token separately".to_owned(),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(invalid(
                    "uses plain http for a non-loopback host, which would send the token unencrypted",
                ));
            }
            _ => return Err(invalid("must use https")),
        }
        if url.cannot_be_a_base() {
            return Err(invalid("cannot carry a path"));
        }
        Ok(url)
    }
}

/// True for 127.0.0.0/8, ::1 and `localhost`: the only hosts allowed over plain http.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// `vNN.N`: a `v`, digits, a dot, digits.
fn is_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// Settings are echoed in errors; keep that echo short, printable and free of userinfo.
fn sanitize_setting(s: &str) -> String {
    let masked;
    let s = match s.rfind('@') {
        Some(at) => {
            let start = s.find("://").map_or(0, |i| i + 3).min(at);
            masked = format!("{}***{}", &s[..start], &s[at..]);
            masked.as_str()
        }
        None => s,
    };
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if s.chars().count() > 200 {
        format!("{cleaned}...")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(base: &str, version: &str) -> GraphSettings {
        GraphSettings {
            base_url: base.to_owned(),
            api_version: version.to_owned(),
            ..GraphSettings::default()
        }
    }

    #[test]
    fn defaults_are_valid() {
        let s = GraphSettings::default();
        assert_eq!(s.base_url, "https://graph.facebook.com");
        assert_eq!(s.api_version, "v27.0");
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert!(s.app_secret.is_none());
        s.validate().unwrap();
    }

    #[test]
    fn loopback_http_is_allowed() {
        for base in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:9000",
            "http://localhost:1234",
            "http://LOCALHOST",
            "https://example.test/prefix/",
        ] {
            with(base, "v25.0").validate().unwrap();
        }
    }

    #[test]
    fn bad_base_urls_name_the_variable() {
        for base in [
            "graph.facebook.com",
            "",
            "http://example.test",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "https://user:pw@example.test",
            "https://example.test/?a=b",
            "mailto:someone@example.test",
            "user:pw@example.test",
        ] {
            let err = with(base, "v25.0").validate().unwrap_err();
            let text = err.to_string();
            assert!(text.contains("GRAPH_API_BASE_URL"), "{base}: {text}");
            assert!(text.contains("set it to"), "{text}");
            assert!(!text.contains("pw@"), "credentials echoed: {text}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback_never_to_lookalikes() {
        for base in [
            "http://localhost.example.test",
            "http://127.0.0.1.example.test",
            "http://[::ffff:127.0.0.1]:8080",
            "http://0.0.0.0:8080",
            "http://169.254.169.254",
        ] {
            let err = with(base, "v25.0").validate().unwrap_err();
            assert!(
                err.to_string()
                    .contains("plain http for a non-loopback host"),
                "{base}: {err}"
            );
            let https = base.replacen("http://", "https://", 1);
            with(&https, "v25.0").validate().unwrap();
        }
    }

    #[test]
    fn versions() {
        for good in ["v25.0", "v2.12", "v100.1"] {
            with("https://example.test", good).validate().unwrap();
        }
        for bad in [
            "25.0", "v25", "v.0", "v25.", "V25.0", "v25.0/", "latest", "v2x.0",
        ] {
            let err = with("https://example.test", bad).validate().unwrap_err();
            assert!(err.to_string().contains("GRAPH_API_VERSION"), "{bad}");
        }
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        let s = GraphSettings {
            request_timeout: Duration::ZERO,
            ..GraphSettings::default()
        };
        assert!(s.validate().is_err());
    }
}
