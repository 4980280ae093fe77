//! A tiny Lambda function for testkit's own tests: it echoes its event with what it learnt
//! from the Runtime API, and misbehaves on request.
//!
//! Event fields it understands (all optional):
//! - `"print": "text"`: write `text` to stdout and `stderr: text` to stderr first;
//! - `"sleep_ms": n`: sleep that long before answering;
//! - `"fail": "message"`: return an error with that message;
//! - `"panic": "message"`: panic in the handler;
//! - `"exit": code`: exit the process with that code without answering;
//! - `"s3_put": {"bucket": b, "key": k, "body": text}`: write an object with an S3 client
//!   configured only from the environment, as a real function would.
//!
//! Set `ECHO_LAMBDA_EXIT_AT_INIT=<code>` to make it exit before asking for an event.

use std::time::SystemTime;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    if let Ok(code) = std::env::var("ECHO_LAMBDA_EXIT_AT_INIT") {
        eprintln!("echo-lambda: exiting at init with code {code}");
        std::process::exit(code.parse().unwrap_or(1));
    }
    println!("echo-lambda: init done");
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    if let Some(text) = payload.get("print").and_then(Value::as_str) {
        println!("{text}");
        eprintln!("stderr: {text}");
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    if let Some(message) = payload.get("panic").and_then(Value::as_str) {
        panic!("{message}");
    }
    if let Some(put) = payload.get("s3_put") {
        let field = |name: &str| {
            put.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        aws_sdk_s3::Client::new(&config)
            .put_object()
            .bucket(field("bucket"))
            .key(field("key"))
            .body(field("body").into_bytes().into())
            .send()
            .await?;
    }
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(message.into());
    }
    let remaining_ms = ctx
        .deadline()
        .duration_since(SystemTime::now())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(json!({
        "echo": payload,
        "request_id": ctx.request_id,
        "deadline_ms": ctx.deadline,
        "remaining_ms": remaining_ms,
        "function_arn": ctx.invoked_function_arn,
        "trace_id": ctx.xray_trace_id,
        "function_name": ctx.env_config.function_name,
        "memory_mb": ctx.env_config.memory,
        "version": ctx.env_config.version,
        "log_group": ctx.env_config.log_group,
        "custom_env": std::env::var("ECHO_LAMBDA_CUSTOM").ok(),
        "home_is_set": std::env::var_os("HOME").is_some(),
    }))
}
