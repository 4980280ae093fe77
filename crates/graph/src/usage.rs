//! Meta's usage headers: how close the app is to being throttled, and how long to wait.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// Header with app-level usage percentages.
const APP_USAGE: &str = "x-app-usage";
/// Header with business-use-case usage, including the time to regain access when throttled.
const BUSINESS_USAGE: &str = "x-business-use-case-usage";

/// What the usage headers of one answer say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Highest percentage in `X-App-Usage` (call count, total time, CPU time).
    pub app_max_percent: Option<f64>,
    /// Highest percentage in `X-Business-Use-Case-Usage` across all entries.
    pub business_max_percent: Option<f64>,
    /// Largest `estimated_time_to_regain_access` (minutes in the header), when above zero.
    pub regain_access: Option<Duration>,
}

impl Usage {
    /// The highest usage figure seen; throttling can begin at 100.
    pub fn max_percent(&self) -> Option<f64> {
        match (self.app_max_percent, self.business_max_percent) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when no usage header was present or parseable.
    pub fn is_empty(&self) -> bool {
        self.app_max_percent.is_none()
            && self.business_max_percent.is_none()
            && self.regain_access.is_none()
    }
}

/// Reads `X-App-Usage` and `X-Business-Use-Case-Usage`; malformed headers are ignored.
pub fn usage_from_headers(headers: &HeaderMap) -> Usage {
    let mut usage = Usage::default();
    if let Some(Value::Object(app)) = header_json(headers, APP_USAGE) {
        usage.app_max_percent = max_of(app.values().filter_map(as_f64));
    }
    if let Some(Value::Object(businesses)) = header_json(headers, BUSINESS_USAGE) {
        let mut percents = Vec::new();
        let mut regain_minutes: Option<f64> = None;
        for entries in businesses.values() {
            let entries = match entries {
                Value::Array(list) => list.iter().collect::<Vec<_>>(),
                obj @ Value::Object(_) => vec![obj],
                _ => continue,
            };
            for entry in entries {
                let Value::Object(fields) = entry else {
                    continue;
                };
                for (key, value) in fields {
                    let Some(n) = as_f64(value) else { continue };
                    if key == "estimated_time_to_regain_access" {
                        regain_minutes = Some(regain_minutes.map_or(n, |m| m.max(n)));
                    } else if key != "type" {
                        percents.push(n);
                    }
                }
            }
        }
        usage.business_max_percent = max_of(percents.into_iter());
        usage.regain_access = regain_minutes
            .filter(|m| *m > 0.0)
            // A week is far beyond anything Meta announces; the cap keeps the conversion finite.
            .map(|m| Duration::from_secs_f64(m.min(7.0 * 24.0 * 60.0) * 60.0));
    }
    usage
}

/// The server's wait hint for a throttled answer: the usage header's regain time, else
/// `Retry-After` in seconds or as an HTTP date (a date in the past is no hint).
pub(crate) fn throttle_wait(headers: &HeaderMap) -> Option<Duration> {
    usage_from_headers(headers).regain_access.or_else(|| {
        let text = headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim();
        match text.parse::<u64>() {
            Ok(seconds) => Some(Duration::from_secs(seconds)),
            Err(_) => httpdate::parse_http_date(text)
                .ok()?
                .duration_since(std::time::SystemTime::now())
                .ok(),
        }
    })
}

fn header_json(headers: &HeaderMap, name: &str) -> Option<Value> {
    let text = headers.get(name)?.to_str().ok()?;
    serde_json::from_str(text).ok()
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite() && *f >= 0.0)
}

fn max_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |acc, v| Some(acc.map_or(v, |a: f64| a.max(v))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn app_usage_max_percent() {
        let h = headers(&[(
            "X-App-Usage",
            r#"{"call_count": 28, "total_time": 25, "total_cputime": 91}"#,
        )]);
        let u = usage_from_headers(&h);
        assert_eq!(u.app_max_percent, Some(91.0));
        assert_eq!(u.max_percent(), Some(91.0));
        assert_eq!(u.regain_access, None);
    }

    #[test]
    fn business_usage_takes_the_max_regain_time() {
        let h = headers(&[(
            "x-business-use-case-usage",
            r#"{"111": [{"type": "catalog_batch", "call_count": 100, "total_cputime": 3, "total_time": 4, "estimated_time_to_regain_access": 2}], "222": [{"type": "ads_management", "call_count": 10, "estimated_time_to_regain_access": 5}, {"type": "x", "call_count": "7", "estimated_time_to_regain_access": "1"}]}"#,
        )]);
        let u = usage_from_headers(&h);
        assert_eq!(u.business_max_percent, Some(100.0));
        assert_eq!(u.regain_access, Some(Duration::from_secs(300)));
        assert_eq!(throttle_wait(&h), Some(Duration::from_secs(300)));
    }

    #[test]
    fn zero_regain_falls_back_to_retry_after() {
        let h = headers(&[
            (
                "x-business-use-case-usage",
                r#"{"1": [{"call_count": 50, "estimated_time_to_regain_access": 0}]}"#,
            ),
            ("retry-after", "42"),
        ]);
        assert_eq!(throttle_wait(&h), Some(Duration::from_secs(42)));
    }

    #[test]
    fn retry_after_may_be_an_http_date() {
        let in_two_minutes = std::time::SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(in_two_minutes);
        let h = headers(&[("retry-after", date.as_str())]);
        let wait = throttle_wait(&h).expect("a future date is a hint");
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
    }

    #[test]
    fn malformed_headers_are_ignored() {
        let h = headers(&[
            ("x-app-usage", "not json"),
            ("x-business-use-case-usage", r#"["wrong shape"]"#),
            ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ]);
        assert!(usage_from_headers(&h).is_empty());
        assert_eq!(throttle_wait(&h), None);
        assert_eq!(throttle_wait(&HeaderMap::new()), None);
        let h = headers(&[(
            "x-business-use-case-usage",
            r#"{"1": [{"estimated_time_to_regain_access": 1e300}]}"#,
        )]);
        assert_eq!(
            usage_from_headers(&h).regain_access,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
    }
}
