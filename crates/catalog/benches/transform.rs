//! Throughput of validation plus request serialisation and batching, on a generated export.
//!
//! Run with `cargo bench -p catalog --bench transform`; criterion prints MiB/s per case.

use std::hint::black_box;

use catalog::{
    Batch, BatchLimits, Batcher, ProductReader, ProductTypeMapping, RejectedRow, Sink, Superseded,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Counts what comes out, so the work cannot be optimised away.
#[derive(Default)]
struct CountingSink {
    requests: usize,
    bytes: usize,
}

impl Sink for CountingSink {
    type Error = std::convert::Infallible;

    fn rejected(&mut self, _: u32, row: RejectedRow) -> Result<(), Self::Error> {
        black_box(row);
        Ok(())
    }

    fn superseded(&mut self, superseded: Superseded) -> Result<(), Self::Error> {
        black_box(superseded);
        Ok(())
    }

    fn batch(&mut self, batch: Batch) -> Result<(), Self::Error> {
        self.requests += batch.len();
        self.bytes += batch.requests_json.len();
        Ok(())
    }
}

fn transform(csv: &[u8]) -> CountingSink {
    let mut reader = ProductReader::new(csv).expect("header");
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default());
    let mut sink = CountingSink::default();
    catalog::feed(&mut reader, 0, &mut batcher, &mut sink).expect("feed");
    if let Some(batch) = batcher.finish() {
        let _ = sink.batch(batch);
    }
    sink
}

fn bench(c: &mut Criterion) {
    let mut csv = Vec::new();
    catalog::synthetic::write_products(&mut csv, 100_000, 7).expect("generate");
    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Bytes(csv.len() as u64));
    group.sample_size(10);
    group.bench_function("validate+serialise+batch 100k rows", |b| {
        b.iter(|| black_box(transform(black_box(&csv))))
    });
    group.bench_function("csv parse only 100k rows", |b| {
        b.iter(|| {
            let mut reader = csv::ReaderBuilder::new().from_reader(&csv[..]);
            let mut record = csv::ByteRecord::new();
            let mut fields = 0;
            while reader.read_byte_record(&mut record).unwrap_or(false) {
                fields += record.len();
            }
            black_box(fields)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
