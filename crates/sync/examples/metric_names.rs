//! Prints, as JSON, every metric name each function can emit (`metrics::emitted_names`), keyed
//! by binary name: `infra/check-template.sh` hands it to the template tests, which check that
//! the dashboard and the alarms name only these.

fn main() {
    let names: serde_json::Map<String, serde_json::Value> = sync::metrics::emitted_names()
        .into_iter()
        .map(|(function, names)| (function.to_owned(), serde_json::json!(names)))
        .collect();
    println!("{}", serde_json::Value::Object(names));
}
