//! Reporting a start-up failure to the Lambda Runtime API's `/init/error`, so the invocation
//! fails with the message itself (naming the variable to fix) and an `errorType` of
//! [`ErrorKind`] (`ConfigError`, `ConnectError`) rather than a bare exit status.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::lambda::{ErrorKind, FunctionError};

/// How long the report may take; the process exits either way.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Logs a start-up failure, posts it to `/init/error` when running under a Runtime API, and
/// returns it for `main` to exit with: `Config::from_env(..).map_err(report_init_error)?`.
pub fn report_init_error(error: impl Into<FunctionError>) -> FunctionError {
    let error = error.into();
    let error_type = error.kind.error_type();
    tracing::error!(error_type, "{}", error.message);
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        && let Err(failure) = post(&api, error.kind, &error.message)
    {
        tracing::error!(%failure, "could not report the init error to the Runtime API");
    }
    error
}

/// The body and the `Lambda-Runtime-Function-Error-Type` header of an `/init/error` report.
fn report(kind: ErrorKind, message: &str) -> (String, String) {
    let error_type = kind.error_type();
    (
        serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string(),
        format!("Runtime.{error_type}"),
    )
}

/// One HTTP/1.1 POST; the Runtime API is a local plain-HTTP endpoint (`host:port`).
fn post(api: &str, kind: ErrorKind, message: &str) -> std::io::Result<()> {
    let (body, header) = report(kind, message);
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nLambda-Runtime-Function-Error-Type: {header}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let address = std::net::ToSocketAddrs::to_socket_addrs(api)?
        .next()
        .ok_or_else(|| {
            std::io::Error::other(format!("AWS_LAMBDA_RUNTIME_API {api:?} names no address"))
        })?;
    let mut stream = TcpStream::connect_timeout(&address, REPORT_TIMEOUT)?;
    stream.set_read_timeout(Some(REPORT_TIMEOUT))?;
    stream.set_write_timeout(Some(REPORT_TIMEOUT))?;
    stream.write_all(request.as_bytes())?;
    // Read the answer so the report is taken before the process exits.
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer)?;
    let status_line = String::from_utf8_lossy(&answer[..read]);
    if status_line.starts_with("HTTP/1.1 2") || status_line.starts_with("HTTP/1.0 2") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "the Runtime API answered {:?}",
            status_line.lines().next().unwrap_or_default()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_up_failure_is_reported_with_its_kind_as_error_type() {
        let (body, header) = report(ErrorKind::ConfigError, "CATALOG_ID is not set");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errorType"], "ConfigError");
        assert_eq!(body["errorMessage"], "CATALOG_ID is not set");
        assert_eq!(header, "Runtime.ConfigError");
        assert_eq!(
            report(ErrorKind::ConnectError, "x").1,
            "Runtime.ConnectError"
        );
    }
}
