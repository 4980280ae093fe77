//! Lambda: S3 ObjectCreated on the landing prefix -> validate, transform, send.

fn main() {}
