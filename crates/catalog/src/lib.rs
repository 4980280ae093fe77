//! The catalog-sync data contract: product CSV rules, the mapping to Meta Graph API
//! `items_batch` requests, and batching under Meta's limits.
//!
//! Everything here is pure: it reads from any [`std::io::Read`], holds one record and one
//! batch at a time, and knows nothing of S3, Lambda or HTTP. A file flows through
//! [`ProductReader`] (header and row rules, with 1-based line numbers), then [`Batcher`]
//! (duplicate ids, count and byte limits), with [`feed`] tying the two to a [`Sink`].

mod batch;
mod currency;
mod field;
mod mapping;
mod reader;
mod report;
mod request;
mod rules;
mod stream;
pub mod synthetic;

pub use batch::{
    Batch, BatchItem, BatchLimits, BatchSizeError, Batcher, DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BODY_BYTES, KnownProducts, META_MAX_BODY_BYTES, META_MAX_ITEMS, Pushed,
    RequestLines, RowRef, SerializeError, Superseded, fingerprint, form_encoded_len,
};
pub use field::{
    AGE_GROUP_VALUES, AVAILABILITY_VALUES, CONDITION_VALUES, FIELD_COUNT, FIELDS, Field, FieldSpec,
    GENDER_VALUES, IDENTIFIER_MASK, Kind, METHOD_VALUES, Need, REQUIRED_MASK, STATUS_VALUES,
    WEIGHT_UNITS,
};
pub use mapping::{ColumnMapping, MappingError};
pub use reader::{
    FileError, HeaderLayout, Position, ProductReader, ReaderLimits, RejectedRow, Row,
};
pub use report::{ProblemReport, RowIssue, RowOutcome};
pub use request::{ProductTypeMapping, UnknownMapping, write_request};
pub use rules::{
    DateRangeProblem, Method, Price, PriceProblem, Problem, ProblemKind, Product, parse_price,
    validate, validate_fields,
};
pub use stream::{FeedError, ResumePoint, RowCounts, Sink, feed};

/// The header of the original ten-column contract, as a CSV line: the required columns, brand
/// as the identifier, and product_type.
pub const REQUIRED_HEADER: &str =
    "id,title,description,link,image_link,availability,price,brand,condition,product_type";
