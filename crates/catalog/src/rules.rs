//! Meta's catalog rules for one row, and the problems a row can have.

use std::fmt;

use crate::currency;
use crate::field::{
    FIELD_COUNT, Field, IDENTIFIER_MASK, Kind, METHOD_VALUES, Need, REQUIRED_MASK, WEIGHT_UNITS,
};

/// What a row asks for its product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// Create or update the product (`UPDATE` with `allow_upsert`).
    #[default]
    Update,
    /// Remove the product (`DELETE`); only the id is sent.
    Delete,
}

/// A product that passed every rule, borrowing its text from the CSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product<'r> {
    /// Retailer id, trimmed.
    pub id: &'r str,
    /// Title, trimmed; empty for a delete.
    pub title: &'r str,
    /// Update or delete.
    pub method: Method,
    /// Each field's value, trimmed (the listed form for closed lists); empty when absent.
    values: [&'r str; FIELD_COUNT],
    /// The fields with a value, as a mask of [`Field::bit`]s.
    present: u64,
    /// The normalised `price` and `sale_price`.
    prices: [Option<Price<'r>>; 2],
}

impl<'r> Product<'r> {
    /// The value of `field`, trimmed, or `None` when it is empty or absent.
    pub fn get(&self, field: Field) -> Option<&'r str> {
        (self.present & field.bit() != 0).then(|| self.values[field.index()])
    }

    /// The normalised price (`None` for a delete).
    pub fn price(&self) -> Option<Price<'r>> {
        self.prices[0]
    }

    /// The normalised sale price, when there is one.
    pub fn sale_price(&self) -> Option<Price<'r>> {
        self.prices[1]
    }

    /// Whether the row asks for the product to be removed.
    pub fn is_delete(&self) -> bool {
        self.method == Method::Delete
    }

    /// The fields with a value, in catalog order.
    pub fn fields(&self) -> impl Iterator<Item = (Field, &'r str)> + '_ {
        Bits(self.present).map(|index| (Field::ALL[index], self.values[index]))
    }
}

/// The positions of the set bits of a mask, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let index = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(index)
    }
}

/// A price as Meta wants it: a plain decimal amount and an upper-case ISO 4217 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price<'r> {
    amount: &'r str,
    currency: [u8; 3],
}

impl Price<'_> {
    /// The amount as written, e.g. `25.99`.
    pub fn amount(&self) -> &str {
        self.amount
    }

    /// The upper-case currency code, e.g. `USD`.
    pub fn currency(&self) -> &str {
        // Only ASCII letters are ever stored, so this cannot fail; fall back defensively.
        std::str::from_utf8(&self.currency).unwrap_or("???")
    }
}

impl fmt::Display for Price<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency())
    }
}

/// One reason a row cannot be sent, tied to the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field at fault, or `None` for problems of the whole row.
    pub field: Option<Field>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a field or a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A required field is empty.
    Empty,
    /// More characters than Meta accepts.
    TooLong {
        /// Meta's limit.
        max: usize,
        /// Characters found.
        actual: usize,
    },
    /// A value outside a closed list.
    NotOneOf {
        /// The value found (shortened for messages).
        found: String,
        /// What is accepted.
        allowed: &'static [&'static str],
    },
    /// The price is not `<amount> <ISO 4217 code>`.
    Price {
        /// The value found (shortened for messages).
        found: String,
        /// Why it was refused and how to write it.
        reason: PriceProblem,
    },
    /// A link that is not an absolute http(s) URL.
    Url {
        /// The value found (shortened for messages).
        found: String,
    },
    /// The bytes of the field are not UTF-8.
    NotUtf8,
    /// The row has a different number of fields than the header.
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// The id was already used by a later valid row, which replaces this one.
    Superseded {
        /// Line of the row that wins.
        by_line: u64,
    },
    /// A list with more items than Meta accepts.
    TooMany {
        /// Meta's limit.
        max: usize,
        /// Items found.
        actual: usize,
    },
    /// A whole number that is not one, or is negative.
    Count {
        /// The value found (shortened for messages).
        found: String,
    },
    /// A date range that is not two ISO 8601 times, or ends before it starts.
    DateRange {
        /// The value found (shortened for messages).
        found: String,
        /// Why it was refused.
        reason: DateRangeProblem,
    },
    /// A weight that is not `<number> <unit>`.
    Weight {
        /// The value found (shortened for messages).
        found: String,
    },
    /// Variant attributes that are not `name:value` pairs.
    Attributes {
        /// The pair at fault (shortened for messages).
        found: String,
    },
    /// The sale price is in another currency than the price.
    SaleCurrency {
        /// The sale price's currency.
        sale: String,
        /// The price's currency.
        price: String,
    },
    /// The sale price is above the price.
    SaleAbovePrice {
        /// The sale price, normalised.
        sale: String,
        /// The price, normalised.
        price: String,
    },
    /// The file has no column for a field every product needs.
    MissingColumn,
}

/// Why a `sale_price_effective_date` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRangeProblem {
    /// No `/` between start and end.
    NotARange,
    /// The start is not an ISO 8601 time.
    BadStart,
    /// The end is not an ISO 8601 time.
    BadEnd,
    /// The end is before the start.
    EndsBeforeStart,
}

/// Why a price was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceProblem {
    /// No currency code after the amount.
    MissingCurrency,
    /// A symbol such as `$` or `€`.
    Symbol,
    /// A `,` thousands or decimal separator.
    Separator,
    /// A minus sign.
    Negative,
    /// Not a decimal number.
    NotANumber,
    /// The code before the amount, as in `USD 25.99`.
    CodeFirst,
    /// Not an ISO 4217 code.
    UnknownCurrency,
}

impl ProblemKind {
    /// A stable, machine-readable name for this kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            ProblemKind::Empty => "empty",
            ProblemKind::TooLong { .. } => "too_long",
            ProblemKind::NotOneOf { .. } => "not_allowed",
            ProblemKind::Price { .. } => "bad_price",
            ProblemKind::Url { .. } => "bad_url",
            ProblemKind::NotUtf8 => "not_utf8",
            ProblemKind::FieldCount { .. } => "field_count",
            ProblemKind::Superseded { .. } => "superseded",
            ProblemKind::TooMany { .. } => "too_many",
            ProblemKind::Count { .. } => "bad_number",
            ProblemKind::DateRange { .. } => "bad_date",
            ProblemKind::Weight { .. } => "bad_weight",
            ProblemKind::Attributes { .. } => "bad_attribute",
            ProblemKind::SaleCurrency { .. } => "sale_currency",
            ProblemKind::SaleAbovePrice { .. } => "sale_above_price",
            ProblemKind::MissingColumn => "missing_column",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field.map_or("row", Field::name);
        match &self.kind {
            ProblemKind::Empty => match self.field.map(Field::need) {
                Some(Need::OneOfIdentifiers) => write!(
                    f,
                    "{field} is empty and so are the other identifiers; every product needs a brand, a gtin or an mpn"
                ),
                _ => write!(f, "{field} is empty; every product needs a {field}"),
            },
            ProblemKind::TooLong { max, actual } => write!(
                f,
                "{field} has {actual} characters; Meta accepts at most {max}: shorten it"
            ),
            ProblemKind::NotOneOf { found, allowed } => write!(
                f,
                "{field} {found:?} is not allowed; use one of: {}",
                allowed.join(", ")
            ),
            ProblemKind::Price { found, reason } => {
                write!(f, "{field} {found:?} ")?;
                f.write_str(match reason {
                    PriceProblem::MissingCurrency => {
                        "has no currency; write the amount, one space and an ISO 4217 code, e.g. \"25.99 USD\""
                    }
                    PriceProblem::Symbol => {
                        "contains a currency symbol; write the ISO 4217 code instead, e.g. \"25.99 USD\""
                    }
                    PriceProblem::Separator => {
                        "contains a comma; use no thousands separator and '.' for decimals, e.g. \"1250.50 EUR\""
                    }
                    PriceProblem::Negative => "is negative; prices must be 0 or more",
                    PriceProblem::CodeFirst => {
                        "puts the currency before the amount; write the amount first, e.g. \"25.99 USD\""
                    }
                    PriceProblem::NotANumber => {
                        "is not a number; write digits with an optional '.' and decimals, e.g. \"25.99 USD\""
                    }
                    PriceProblem::UnknownCurrency => {
                        "has an unknown currency code; use an ISO 4217 code such as USD, EUR, GBP"
                    }
                })
            }
            ProblemKind::Url { found } => write!(
                f,
                "{field} {found:?} is not an absolute http or https URL; write the full address, e.g. \"https://shop.example/p/1\""
            ),
            ProblemKind::NotUtf8 => write!(
                f,
                "{field} contains bytes that are not UTF-8; export the file as UTF-8"
            ),
            ProblemKind::FieldCount { expected, found } => write!(
                f,
                "row has {found} fields but the header has {expected}; check for a missing or extra comma, or an unclosed quote"
            ),
            ProblemKind::Superseded { by_line } => write!(
                f,
                "id appears again on line {by_line}; the last row wins, so this one is not sent"
            ),
            ProblemKind::TooMany { max, actual } => write!(
                f,
                "{field} lists {actual} items; Meta accepts at most {max}: keep the first {max}"
            ),
            ProblemKind::Count { found } => write!(
                f,
                "{field} {found:?} is not a whole number of 0 or more; write digits only, e.g. \"12\""
            ),
            ProblemKind::DateRange { found, reason } => {
                write!(f, "{field} {found:?} ")?;
                f.write_str(match reason {
                    DateRangeProblem::NotARange => {
                        "is not a range; write start/end in ISO 8601, e.g. \"2026-12-01T00:00+01:00/2026-12-31T23:59+01:00\""
                    }
                    DateRangeProblem::BadStart => {
                        "has a start that is not an ISO 8601 time; write e.g. \"2026-12-01T00:00+01:00\" (date, time and UTC offset)"
                    }
                    DateRangeProblem::BadEnd => {
                        "has an end that is not an ISO 8601 time; write e.g. \"2026-12-31T23:59+01:00\" (date, time and UTC offset)"
                    }
                    DateRangeProblem::EndsBeforeStart => {
                        "ends before it starts; put the earlier time first"
                    }
                })
            }
            ProblemKind::Weight { found } => write!(
                f,
                "{field} {found:?} is not a weight; write a number, one space and a unit (lb, oz, g or kg), e.g. \"1.5 kg\""
            ),
            ProblemKind::Attributes { found } => write!(
                f,
                "{field} has {found:?}, which is not a name:value pair; write pairs separated by commas, e.g. \"Scent:Lavender,Volume:50 ml\""
            ),
            ProblemKind::SaleCurrency { sale, price } => write!(
                f,
                "{field} is in {sale} but price is in {price}; write both in the same currency"
            ),
            ProblemKind::SaleAbovePrice { sale, price } => write!(
                f,
                "{field} {sale} is above price {price}; a sale price must not be more than the price"
            ),
            ProblemKind::MissingColumn => write!(
                f,
                "the file has no {field} column, which every product that is not deleted needs; add the column"
            ),
        }
    }
}

/// Longest excerpt of a bad value quoted back in a message.
const EXCERPT_CHARS: usize = 60;

/// A short copy of `value` for messages, so a huge bad field does not make a huge report.
pub(crate) fn excerpt(value: &str) -> String {
    match value.char_indices().nth(EXCERPT_CHARS) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}…", &value[..cut]),
    }
}

/// Checks one row against every rule of the field catalog.
///
/// `values` holds each field's raw text in [`Field::ALL`] order (empty when absent); `columns`
/// is the mask of fields the file has a column for. Returns the product, or every problem found
/// (never just the first), so one pass over the export is enough to fix it.
pub fn validate<'r>(
    values: &[&'r str; FIELD_COUNT],
    columns: u64,
) -> Result<Product<'r>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut product = Product {
        id: "",
        title: "",
        method: Method::Update,
        values: [""; FIELD_COUNT],
        present: 0,
        prices: [None; 2],
    };
    if columns & Field::Method.bit() != 0 {
        let method = trim(values[Field::Method.index()]);
        if !method.is_empty() {
            match one_of(Field::Method, method, &METHOD_VALUES, &mut problems) {
                Some("delete") => product.method = Method::Delete,
                Some(_) => {}
                None => return Err(problems),
            }
        }
    }
    // A delete needs only its id: whatever else the row holds is not sent.
    let checked = if product.is_delete() {
        Field::Id.bit()
    } else {
        columns & !Field::Method.bit()
    };
    for index in Bits(checked) {
        let field = Field::ALL[index];
        let value = trim(values[index]);
        if value.is_empty() {
            if field.required() {
                problems.push(Problem {
                    field: Some(field),
                    kind: ProblemKind::Empty,
                });
            }
            continue;
        }
        product.present |= field.bit();
        product.values[index] = value;
        check_value(field, value, &mut product, &mut problems);
    }
    if product.is_delete() {
        product.id = product.values[Field::Id.index()];
        return if problems.is_empty() {
            Ok(product)
        } else {
            Err(problems)
        };
    }
    for index in Bits(REQUIRED_MASK & !columns) {
        problems.push(Problem {
            field: Some(Field::ALL[index]),
            kind: ProblemKind::MissingColumn,
        });
    }
    if product.present & IDENTIFIER_MASK == 0 {
        // Reported on the first identifier column the file has, so that the message points at
        // a column the retailer can fill.
        let field = Bits(columns & IDENTIFIER_MASK)
            .next()
            .map_or(Field::Brand, |index| Field::ALL[index]);
        problems.push(Problem {
            field: Some(field),
            kind: ProblemKind::Empty,
        });
    }
    if let (Some(price), Some(sale)) = (product.prices[0], product.prices[1]) {
        if price.currency != sale.currency {
            problems.push(Problem {
                field: Some(Field::SalePrice),
                kind: ProblemKind::SaleCurrency {
                    sale: sale.currency().to_owned(),
                    price: price.currency().to_owned(),
                },
            });
        } else if compare_amounts(sale.amount, price.amount) == std::cmp::Ordering::Greater {
            // Meta asks for a sale price lower than the price; an equal one is harmless (no
            // discount is shown), so only a higher one is refused.
            problems.push(Problem {
                field: Some(Field::SalePrice),
                kind: ProblemKind::SaleAbovePrice {
                    sale: sale.to_string(),
                    price: price.to_string(),
                },
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    product.id = product.values[Field::Id.index()];
    product.title = product.values[Field::Title.index()];
    Ok(product)
}

/// [`validate`] for a row given as `(field, value)` pairs, as if the file had exactly these
/// columns: for tests, tools and fuzzing.
pub fn validate_fields<'r>(pairs: &[(Field, &'r str)]) -> Result<Product<'r>, Vec<Problem>> {
    let mut values = [""; FIELD_COUNT];
    let mut columns = 0;
    for (field, value) in pairs {
        values[field.index()] = value;
        columns |= field.bit();
    }
    validate(&values, columns)
}

/// Applies the rule of `field`'s kind to a non-empty, trimmed `value`.
fn check_value<'r>(
    field: Field,
    value: &'r str,
    product: &mut Product<'r>,
    problems: &mut Vec<Problem>,
) {
    let mut problem = |kind: ProblemKind| {
        problems.push(Problem {
            field: Some(field),
            kind,
        })
    };
    match field.kind() {
        Kind::Text { max_chars } => {
            if let Some(kind) = too_long(value, max_chars) {
                problem(kind);
            }
        }
        Kind::Url => {
            if let Some(kind) = too_long(value, URL_MAX_CHARS) {
                problem(kind);
            } else if !is_http_url(value) {
                problem(ProblemKind::Url {
                    found: excerpt(value),
                });
            }
        }
        Kind::UrlList { max_items } | Kind::VideoList { max_items } => {
            let mut count = 0;
            for url in list_items(value) {
                count += 1;
                if url.len() > URL_MAX_CHARS || !is_http_url(url) {
                    problem(ProblemKind::Url {
                        found: excerpt(url),
                    });
                }
            }
            if count > max_items {
                problem(ProblemKind::TooMany {
                    max: max_items,
                    actual: count,
                });
            }
        }
        Kind::OneOf(allowed) => {
            let mut found = Vec::new();
            match one_of(field, value, allowed, &mut found) {
                Some(canonical) => product.values[field.index()] = canonical,
                None => problems.extend(found),
            }
        }
        Kind::Price => match parse_price(value) {
            Ok(price) => product.prices[usize::from(field == Field::SalePrice)] = Some(price),
            Err(reason) => problem(ProblemKind::Price {
                found: excerpt(value),
                reason,
            }),
        },
        Kind::DateRange => {
            if let Err(reason) = check_date_range(value) {
                problem(ProblemKind::DateRange {
                    found: excerpt(value),
                    reason,
                });
            }
        }
        Kind::Count => {
            if count_digits(value).is_none() {
                problem(ProblemKind::Count {
                    found: excerpt(value),
                });
            }
        }
        Kind::Weight => {
            if parse_weight(value).is_none() {
                problem(ProblemKind::Weight {
                    found: excerpt(value),
                });
            }
        }
        Kind::Attributes { max_items } => {
            let mut count = 0;
            for pair in list_items(value) {
                count += 1;
                let named = pair
                    .split_once(':')
                    .is_some_and(|(name, value)| !trim(name).is_empty() && !trim(value).is_empty());
                if !named {
                    problem(ProblemKind::Attributes {
                        found: excerpt(pair),
                    });
                }
            }
            if count > max_items {
                problem(ProblemKind::TooMany {
                    max: max_items,
                    actual: count,
                });
            }
        }
        // Read before the other fields, never sent.
        Kind::Method => {}
    }
}

/// Meta documents no length for URLs; browsers and CDNs stop near this.
const URL_MAX_CHARS: usize = 2000;

/// A [`ProblemKind::TooLong`] when `value` has more than `max` characters.
fn too_long(value: &str, max: usize) -> Option<ProblemKind> {
    // Byte length bounds the character count, so counting is only needed near the limit.
    if value.len() <= max {
        return None;
    }
    let actual = value.chars().count();
    (actual > max).then_some(ProblemKind::TooLong { max, actual })
}

/// The items of a comma-separated list, trimmed, empty items (`a,,b`, a trailing comma) left out.
pub(crate) fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(trim).filter(|item| !item.is_empty())
}

/// Largest stock count: Graph API integers are 32-bit signed.
const MAX_COUNT: u64 = i32::MAX as u64;

/// The digits of a whole number of 0 to [`MAX_COUNT`], without leading zeros (`"007"` is
/// `"7"`), or `None`.
pub(crate) fn count_digits(value: &str) -> Option<&str> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = value.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.len() <= 10 && digits.parse::<u64>().is_ok_and(|n| n <= MAX_COUNT)).then_some(digits)
}

/// A weight's amount and its unit in the listed (lower-case) form.
pub(crate) fn parse_weight(value: &str) -> Option<(&str, &'static str)> {
    let (amount, unit) = value.split_once(char::is_whitespace)?;
    let unit = trim(unit);
    let unit = WEIGHT_UNITS
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(unit))?;
    is_decimal(amount).then_some((amount, unit))
}

/// Checks `start/end`: both ISO 8601 times, the end not before the start.
fn check_date_range(value: &str) -> Result<(), DateRangeProblem> {
    let (start, end) = value.split_once('/').ok_or(DateRangeProblem::NotARange)?;
    let start = parse_time(trim(start)).ok_or(DateRangeProblem::BadStart)?;
    let end = parse_time(trim(end)).ok_or(DateRangeProblem::BadEnd)?;
    if end < start {
        return Err(DateRangeProblem::EndsBeforeStart);
    }
    Ok(())
}

/// An ISO 8601 time with a UTC offset (`2026-12-01T00:00+01:00`, seconds optional, `Z` or
/// `+0100` too), or a date alone, taken as its start in UTC.
fn parse_time(value: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Iso8601;
    if let Ok(time) = time::OffsetDateTime::parse(value, &Iso8601::DEFAULT) {
        return Some(time);
    }
    // Meta's own example writes the offset without a colon after a time with one
    // (`2011-03-01T13:00-0800`), which ISO 8601 does not mix; accept it by adding the colon.
    let (body, tail) = value.split_at_checked(value.len().checked_sub(5)?)?;
    if let [sign @ (b'+' | b'-'), h1, h2, m1, m2] = tail.as_bytes()
        && [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
    {
        let fixed = format!(
            "{body}{}{}{}:{}{}",
            char::from(*sign),
            char::from(*h1),
            char::from(*h2),
            char::from(*m1),
            char::from(*m2)
        );
        if let Ok(time) = time::OffsetDateTime::parse(&fixed, &Iso8601::DEFAULT) {
            return Some(time);
        }
    }
    time::Date::parse(value, &Iso8601::DEFAULT)
        .ok()
        .map(|date| date.midnight().assume_utc())
}

/// Compares two amounts that passed [`is_decimal`], by value.
fn compare_amounts(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(amount: &str) -> (&str, &str) {
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        (
            whole.trim_start_matches('0'),
            fraction.trim_end_matches('0'),
        )
    }
    let (a_whole, a_fraction) = split(a);
    let (b_whole, b_fraction) = split(b);
    a_whole
        .len()
        .cmp(&b_whole.len())
        .then_with(|| a_whole.cmp(b_whole))
        .then_with(|| a_fraction.cmp(b_fraction))
}

/// The canonical form of `value` from `allowed`, ignoring ASCII case; records a problem if none.
fn one_of(
    field: Field,
    value: &str,
    allowed: &'static [&'static str],
    problems: &mut Vec<Problem>,
) -> Option<&'static str> {
    if value.is_empty() {
        return None; // already reported as empty
    }
    let found = allowed
        .iter()
        .copied()
        .find(|candidate| candidate.eq_ignore_ascii_case(value));
    if found.is_none() {
        problems.push(Problem {
            field: Some(field),
            kind: ProblemKind::NotOneOf {
                found: excerpt(value),
                allowed,
            },
        });
    }
    found
}

/// Parses `25.99 USD` (and harmless variants: extra spaces, lower-case code).
pub fn parse_price(value: &str) -> Result<Price<'_>, PriceProblem> {
    let value = trim(value);
    let (amount, code) = match value.split_once(char::is_whitespace) {
        Some((amount, code)) => (amount, trim(code)),
        None => (value, ""),
    };
    if amount.contains(',') || code.contains(',') {
        return Err(PriceProblem::Separator);
    }
    if amount.starts_with('-') {
        return Err(PriceProblem::Negative);
    }
    let symbol = |c: char| !c.is_ascii_alphanumeric() && c != '.' && !c.is_whitespace();
    if amount.chars().any(symbol) || code.chars().any(symbol) {
        return Err(PriceProblem::Symbol);
    }
    if !is_decimal(amount) {
        return Err(
            if is_decimal(code) && currency::known_upper(amount).is_some() {
                PriceProblem::CodeFirst
            } else {
                PriceProblem::NotANumber
            },
        );
    }
    if code.is_empty() {
        return Err(PriceProblem::MissingCurrency);
    }
    match currency::known_upper(code) {
        Some(currency) => Ok(Price { amount, currency }),
        None => Err(PriceProblem::UnknownCurrency),
    }
}

/// Digits, optionally followed by `.` and at least one digit.
fn is_decimal(amount: &str) -> bool {
    let (whole, fraction) = match amount.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (amount, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

/// `value` without surrounding whitespace, exactly as [`str::trim`] would return it.
///
/// Nearly every field starts and ends with a visible ASCII character; checking the two end
/// bytes settles that case without decoding characters, and anything else goes to `str::trim`.
fn trim(value: &str) -> &str {
    // `char::is_whitespace` for ASCII: space and `\t` through `\r` (which includes `\x0B`).
    let kept = |b: &u8| b.is_ascii() && !matches!(b, b' ' | b'\t'..=b'\r');
    match (value.as_bytes().first(), value.as_bytes().last()) {
        (Some(first), Some(last)) if kept(first) && kept(last) => value,
        _ => value.trim(),
    }
}

/// An absolute `http` or `https` URL with a host.
fn is_http_url(value: &str) -> bool {
    is_plain_http_url(value) || parses_as_http_url(value)
}

/// The full check: what the WHATWG URL parser makes of `value`.
fn parses_as_http_url(value: &str) -> bool {
    // The parser silently drops control characters (and tabs and line breaks inside), so a
    // link holding them would pass and be sent to Meta as written (found by fuzzing).
    if value.bytes().any(|b| b.is_ascii_control()) {
        return false;
    }
    match url::Url::parse(value) {
        Ok(url) => matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        Err(_) => false,
    }
}

/// Longest value [`is_plain_http_url`] decides alone; far above real URLs, far below the
/// parser's 4 GiB position limit.
const PLAIN_URL_MAX_BYTES: usize = 64 * 1024;

/// True only for URLs of the everyday shape `http(s)://name.example/any/visible?ascii#text`,
/// which the URL parser always accepts; `false` means "not sure", never "invalid".
///
/// The parser allocates and normalises the whole URL, and was a fifth of the transform
/// for two URLs a row. Why this shape cannot fail to parse, following the URL Standard and the
/// `url` and `idna` crates:
/// - no control, space, non-ASCII or `\` byte anywhere, so nothing is stripped or re-read;
/// - lower-case `http://` or `https://` then a host with no `@` (user info), `:` (port),
///   `[` (IPv6) or `%` (percent-decoding), ending at the first `/`, `?` or `#`;
/// - each host label starts with `a`-`z`, holds only `a`-`z`, `0`-`9` and `-`, does not end
///   with `-` and has no `--` in its third and fourth places (no Punycode `xn--`): IDNA passes
///   such labels through unchanged, and a last label starting with a letter is not an IPv4
///   number;
/// - after the host, the path, query and fragment parsers percent-encode and never fail.
fn is_plain_http_url(value: &str) -> bool {
    let bytes = value.as_bytes();
    let Some(rest) = bytes
        .strip_prefix(b"https://")
        .or_else(|| bytes.strip_prefix(b"http://"))
    else {
        return false;
    };
    // Tested without branches so that the compiler vectorises it: URLs are long.
    let visible = rest.iter().fold(true, |visible, &b| {
        visible & b.is_ascii_graphic() & (b != b'\\')
    });
    if !visible || bytes.len() > PLAIN_URL_MAX_BYTES {
        return false;
    }
    starts_with_plain_host(rest)
}

/// Whether `rest` starts with a host of plain labels, up to its end or a `/`, `?` or `#`:
/// each label starts with `a`-`z`, holds only `a`-`z`, `0`-`9` and `-`, does not end with
/// `-`, and has no `--` in its third and fourth places. See [`is_plain_http_url`].
///
/// One pass, byte by byte: splitting into labels and checking each took three.
fn starts_with_plain_host(rest: &[u8]) -> bool {
    // Bytes of the current label so far, and the byte before this one.
    let mut label = 0;
    let mut previous = b'.';
    for &b in rest {
        let fits = match b {
            b'a'..=b'z' => true,
            b'0'..=b'9' => label > 0,
            b'-' => label > 0 && !(label == 3 && previous == b'-'),
            b'.' => label > 0 && previous != b'-',
            b'/' | b'?' | b'#' => break,
            _ => false,
        };
        if !fits {
            return false;
        }
        label = if b == b'.' { 0 } else { label + 1 };
        previous = b;
    }
    label > 0 && previous != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::AVAILABILITY_VALUES;

    /// The ten columns of the original contract.
    const ORIGINAL: [Field; 10] = [
        Field::Id,
        Field::Title,
        Field::Description,
        Field::Link,
        Field::ImageLink,
        Field::Availability,
        Field::Price,
        Field::Brand,
        Field::Condition,
        Field::ProductType,
    ];

    fn row() -> Vec<(Field, &'static str)> {
        ORIGINAL
            .into_iter()
            .zip([
                "SKU-1",
                "Blue mug",
                "A mug that is blue.",
                "https://shop.example/p/1",
                "https://cdn.shop.example/1.jpg",
                "in stock",
                "25.99 USD",
                "Acme",
                "new",
                "Home > Kitchen > Mugs",
            ])
            .collect()
    }

    fn problems(values: Vec<(Field, &str)>) -> Vec<(Option<Field>, &'static str)> {
        match validate_fields(&values) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .map(|p| (p.field, p.kind.code()))
                .collect(),
        }
    }

    fn with(field: Field, value: &'static str) -> Vec<(Field, &'static str)> {
        let mut values = row();
        set(&mut values, field, value);
        values
    }

    fn set(values: &mut Vec<(Field, &'static str)>, field: Field, value: &'static str) {
        match values.iter_mut().find(|(f, _)| *f == field) {
            Some(slot) => slot.1 = value,
            None => values.push((field, value)),
        }
    }

    #[test]
    fn a_good_row_is_valid_and_normalised() {
        let mut values = row();
        set(&mut values, Field::Availability, " In Stock ");
        set(&mut values, Field::Condition, "NEW");
        set(&mut values, Field::Price, " 25.99  usd ");
        set(&mut values, Field::Title, "  Blue mug\t");
        let product = validate_fields(&values).expect("valid");
        assert_eq!(product.get(Field::Availability), Some("in stock"));
        assert_eq!(product.get(Field::Condition), Some("new"));
        assert_eq!(product.price().expect("price").to_string(), "25.99 USD");
        assert_eq!(product.title, "Blue mug");
    }

    #[test]
    fn every_required_field_must_be_non_empty() {
        for field in ORIGINAL {
            let found = problems(with(field, "   "));
            // Brand is this row's only identifier (brand, gtin or mpn), so it is needed here.
            if field.required() || field == Field::Brand {
                assert_eq!(found, vec![(Some(field), "empty")], "{field}");
            } else {
                assert!(found.is_empty(), "{field}");
            }
        }
    }

    #[test]
    fn lengths_at_the_limit_pass_and_over_it_fail() {
        for field in [
            Field::Id,
            Field::Title,
            Field::Description,
            Field::Brand,
            Field::ProductType,
        ] {
            let max = field.max_chars().expect("limit");
            // Multi-byte characters prove the limit counts characters, not bytes.
            let at: &'static str = "é".repeat(max).leak();
            let over: &'static str = "é".repeat(max + 1).leak();
            assert!(problems(with(field, at)).is_empty(), "{field} at limit");
            assert_eq!(
                problems(with(field, over)),
                vec![(Some(field), "too_long")],
                "{field} over limit"
            );
        }
    }

    #[test]
    fn too_long_message_names_limit_and_count() {
        let err =
            validate_fields(&with(Field::Title, "x".repeat(250).leak())).expect_err("too long");
        assert_eq!(
            err[0].to_string(),
            "title has 250 characters; Meta accepts at most 200: shorten it"
        );
    }

    #[test]
    fn availability_and_condition_accept_only_listed_values() {
        for value in AVAILABILITY_VALUES {
            assert!(problems(with(Field::Availability, value)).is_empty());
        }
        for value in ["DISCONTINUED", "Available For Order"] {
            assert!(problems(with(Field::Availability, value)).is_empty());
        }
        assert_eq!(
            problems(with(Field::Availability, "in_stock")),
            vec![(Some(Field::Availability), "not_allowed")]
        );
        for value in ["new", "Refurbished", "USED"] {
            assert!(problems(with(Field::Condition, value)).is_empty());
        }
        assert_eq!(
            problems(with(Field::Condition, "mint")),
            vec![(Some(Field::Condition), "not_allowed")]
        );
    }

    #[test]
    fn accepted_price_forms() {
        for (input, normalised) in [
            ("25.99 USD", "25.99 USD"),
            ("25000 IQD", "25000 IQD"),
            ("0 EUR", "0 EUR"),
            ("0.5 gbp", "0.5 GBP"),
            ("  7.00   jpy ", "7.00 JPY"),
        ] {
            let price = parse_price(input).expect(input);
            assert_eq!(price.to_string(), normalised);
        }
    }

    #[test]
    fn rejected_price_forms_say_why() {
        use PriceProblem::*;
        for (input, reason) in [
            ("25.99", MissingCurrency),
            ("USD 25.99", CodeFirst),
            ("25.99USD", NotANumber),
            ("$25.99", Symbol),
            ("25.99 $", Symbol),
            ("€25", Symbol),
            ("1,250.00 USD", Separator),
            ("25,99 EUR", Separator),
            ("-1 USD", Negative),
            ("abc USD", NotANumber),
            (".5 USD", NotANumber),
            ("5. USD", NotANumber),
            ("1e3 USD", NotANumber),
            ("25.99 XYZ", UnknownCurrency),
            ("25.99 US", UnknownCurrency),
            ("25.99 USD EUR", UnknownCurrency),
        ] {
            assert_eq!(parse_price(input), Err(reason), "{input}");
        }
    }

    #[test]
    fn links_must_be_absolute_http_urls() {
        for good in ["http://a.example/x", "https://shop.example/p?id=1&x=é"] {
            assert!(problems(with(Field::Link, good)).is_empty(), "{good}");
        }
        for bad in [
            "shop.example/p/1",
            "/p/1",
            "ftp://shop.example/p",
            "javascript:alert(1)",
            "https://",
        ] {
            assert_eq!(
                problems(with(Field::ImageLink, bad)),
                vec![(Some(Field::ImageLink), "bad_url")],
                "{bad}"
            );
        }
    }

    #[test]
    fn trim_is_str_trim() {
        let ends: Vec<String> = (0u8..0x80)
            .map(char::from)
            .chain(['\u{85}', '\u{a0}', '\u{2003}', '\u{3000}', 'é', '😀'])
            .map(String::from)
            .collect();
        for first in &ends {
            for last in &ends {
                for middle in ["", "x", " "] {
                    let value = format!("{first}{middle}{last}");
                    assert_eq!(trim(&value), value.trim(), "{value:?}");
                }
            }
            assert_eq!(trim(first), first.trim(), "{first:?}");
        }
        assert_eq!(trim(""), "");
    }

    #[test]
    fn everyday_urls_take_the_fast_path_and_odd_ones_the_parser() {
        for plain in [
            "https://shop.example.com/products/sku-00000001",
            "http://a.example",
            "https://cdn.example.com/i/1-main.jpg?w=100&h=20#top",
            "https://a1-b.example/%zz/../x",
        ] {
            assert!(is_plain_http_url(plain), "{plain}");
        }
        // Valid, but decided by the parser.
        for odd in [
            "HTTPS://Shop.Example/p",
            "https://user@shop.example/",
            "https://shop.example:8443/",
            "https://192.0.2.1/",
            "https://xn--bcher-kva.example/",
            "https://bücher.example/",
            "https://shop.example/a b",
            "http:shop.example",
        ] {
            assert!(!is_plain_http_url(odd), "{odd}");
            assert!(is_http_url(odd), "{odd}");
        }
        // Not URLs the parser accepts, and not taken by the fast path either.
        for bad in [
            "https://shop.123/",
            "https://xn--a.example/",
            "https://a..b/x",
        ] {
            assert!(!is_plain_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn the_url_fast_path_agrees_with_the_parser_on_tricky_pieces() {
        let schemes = [
            "http://",
            "https://",
            "HTTP://",
            "http:/",
            "http:",
            "ftp://",
            "https:///",
        ];
        let hosts = [
            "a",
            "a.b",
            "shop.example.com",
            "a-b.c",
            "a--b.c",
            "ab--c.d",
            "abc--d.e",
            "xn--a.b",
            "xn--bcher-kva.example",
            "a-.b",
            "-a.b",
            "1a.b",
            "a.1b",
            "a.b1",
            "a.123",
            "a.0x1",
            "a..b",
            ".a",
            "a.",
            "",
            "a_b.c",
            "A.b",
            "a:80",
            "a:",
            "a@b",
            "[::1]",
            "a%2eb",
            "é.b",
            "a b",
            "a\tb",
        ];
        let tails = [
            "",
            "/",
            "/p/1",
            "?q=1",
            "#f",
            "/a b",
            "/\"<>`{}|^",
            "/%zz",
            "/..",
            "\\x",
            "/é",
            " ",
            "\n",
            "?%",
            "#%zz",
        ];
        let mut plain = 0;
        for scheme in schemes {
            for host in hosts {
                for tail in tails {
                    let url = format!("{scheme}{host}{tail}");
                    if is_plain_http_url(&url) {
                        plain += 1;
                        assert!(parses_as_http_url(&url), "{url:?}");
                    }
                }
            }
        }
        assert!(plain > 100, "only {plain} URLs took the fast path");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// The fast path only ever says yes where the URL parser does.
        #[test]
        fn the_url_fast_path_never_accepts_what_the_parser_refuses(
            url in "(https?|HTTP|ftp)(://|:/|:)[a-z0-9.:@%\\[\\]X-]{0,16}([/?#\\\\][ -~]{0,12})?"
        ) {
            if is_plain_http_url(&url) {
                proptest::prop_assert!(parses_as_http_url(&url), "{}", url);
            }
        }
    }

    #[test]
    fn every_problem_is_listed_not_just_the_first() {
        let mut values = row();
        set(&mut values, Field::Title, "");
        set(&mut values, Field::Price, "$5");
        set(&mut values, Field::Link, "nope");
        set(&mut values, Field::Condition, "broken");
        let found = problems(values);
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn excerpts_are_short() {
        let long = "x".repeat(10_000);
        assert!(excerpt(&long).chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(excerpt("short"), "short");
    }

    fn images(count: usize) -> &'static str {
        (0..count)
            .map(|n| format!("https://cdn.example/{n}.jpg"))
            .collect::<Vec<_>>()
            .join(",")
            .leak()
    }

    #[test]
    fn twenty_additional_images_pass_and_twenty_one_are_refused() {
        assert!(problems(with(Field::AdditionalImageLink, images(20))).is_empty());
        assert_eq!(
            problems(with(Field::AdditionalImageLink, images(21))),
            vec![(Some(Field::AdditionalImageLink), "too_many")]
        );
        assert_eq!(
            problems(with(
                Field::AdditionalImageLink,
                "https://cdn.example/1.jpg, not-a-url"
            )),
            vec![(Some(Field::AdditionalImageLink), "bad_url")]
        );
    }

    #[test]
    fn a_sale_price_must_share_the_currency_and_not_exceed_the_price() {
        for ok in ["19.99 USD", "25.99 usd", "25.990 USD", "0 USD"] {
            assert!(problems(with(Field::SalePrice, ok)).is_empty(), "{ok}");
        }
        for (bad, code) in [
            ("26 USD", "sale_above_price"),
            ("25.991 USD", "sale_above_price"),
            ("100.00 USD", "sale_above_price"),
            ("19.99 EUR", "sale_currency"),
            ("$19", "bad_price"),
        ] {
            assert_eq!(
                problems(with(Field::SalePrice, bad)),
                vec![(Some(Field::SalePrice), code)],
                "{bad}"
            );
        }
        let err = validate_fields(&with(Field::SalePrice, "30 USD")).expect_err("above");
        assert_eq!(
            err[0].to_string(),
            "sale_price 30 USD is above price 25.99 USD; a sale price must not be more than the price"
        );
    }

    #[test]
    fn effective_dates_are_iso_8601_ranges_that_do_not_end_before_they_start() {
        for ok in [
            "2026-12-01T00:00+01:00/2026-12-31T23:59+01:00",
            "2026-12-01T00:00:00Z/2026-12-01T00:00:00Z",
            "2011-03-01T13:00-0800/2011-03-11T15:30-0800",
            "2026-12-01/2026-12-31",
        ] {
            assert!(
                problems(with(Field::SalePriceEffectiveDate, ok)).is_empty(),
                "{ok}"
            );
        }
        for bad in [
            "2026-12-31T00:00+01:00/2026-12-01T00:00+01:00",
            "2026-12-01",
            "tomorrow/next week",
            "2026-12-01T00:00+01:00/soon",
            "2026-02-30/2026-03-01",
        ] {
            assert_eq!(
                problems(with(Field::SalePriceEffectiveDate, bad)),
                vec![(Some(Field::SalePriceEffectiveDate), "bad_date")],
                "{bad}"
            );
        }
    }

    #[test]
    fn stock_is_a_whole_number_of_zero_or_more() {
        for ok in ["0", "12", "007", "2147483647"] {
            assert!(
                problems(with(Field::QuantityToSellOnFacebook, ok)).is_empty(),
                "{ok}"
            );
        }
        for bad in ["-1", "1.5", "12 pcs", "2147483648", "+3"] {
            assert_eq!(
                problems(with(Field::QuantityToSellOnFacebook, bad)),
                vec![(Some(Field::QuantityToSellOnFacebook), "bad_number")],
                "{bad}"
            );
        }
        assert_eq!(count_digits("007"), Some("7"));
        assert_eq!(count_digits("000"), Some("0"));
    }

    #[test]
    fn one_identifier_of_brand_gtin_mpn_is_enough_and_none_is_refused() {
        let mut values = with(Field::Brand, "");
        set(&mut values, Field::Gtin, "4006381333931");
        assert!(problems(values).is_empty());
        let mut values = with(Field::Brand, "");
        set(&mut values, Field::Mpn, "");
        let err = validate_fields(&values).expect_err("no identifier");
        assert_eq!(err.len(), 1);
        assert_eq!(
            err[0].to_string(),
            "brand is empty and so are the other identifiers; every product needs a brand, a gtin or an mpn"
        );
        // A file with only a gtin column points at it.
        let values: Vec<_> = row()
            .into_iter()
            .filter(|(field, _)| *field != Field::Brand)
            .chain([(Field::Gtin, " ")])
            .collect();
        assert_eq!(problems(values), vec![(Some(Field::Gtin), "empty")]);
    }

    #[test]
    fn closed_lists_weights_and_attributes_are_checked() {
        for (field, ok, bad) in [
            (Field::Gender, "Unisex", "girls"),
            (Field::AgeGroup, "all ages", "grown-up"),
            (Field::Status, "ARCHIVED", "hidden"),
            (Field::ShippingWeight, "1.5 KG", "1,5 kg"),
            (Field::ShippingWeight, "12 oz", "12 stone"),
            (
                Field::AdditionalVariantAttribute,
                "Scent:Lavender, Volume:50 ml",
                "Lavender",
            ),
            (
                Field::Video,
                "https://cdn.example/v.mp4",
                "cdn.example/v.mp4",
            ),
        ] {
            assert!(problems(with(field, ok)).is_empty(), "{field} {ok}");
            assert_eq!(problems(with(field, bad)).len(), 1, "{field} {bad}");
        }
        let product = validate_fields(&with(Field::Status, "ARCHIVED")).expect("valid");
        assert_eq!(product.get(Field::Status), Some("archived"));
    }

    #[test]
    fn a_delete_needs_only_its_id() {
        let product =
            validate_fields(&[(Field::Id, " SKU-9 "), (Field::Method, "DELETE")]).expect("valid");
        assert!(product.is_delete());
        assert_eq!(product.id, "SKU-9");
        assert_eq!(product.fields().collect::<Vec<_>>(), [(Field::Id, "SKU-9")]);
        // Whatever else the row holds is not checked, since it is not sent.
        let mut values = with(Field::Price, "$5");
        set(&mut values, Field::Method, "delete");
        assert!(validate_fields(&values).expect("valid").is_delete());
        assert_eq!(
            problems(vec![(Field::Id, ""), (Field::Method, "delete")]),
            vec![(Some(Field::Id), "empty")]
        );
        assert_eq!(
            problems(with(Field::Method, "remove")),
            vec![(Some(Field::Method), "not_allowed")]
        );
        for update in ["", "update", "UPDATE"] {
            assert!(
                !validate_fields(&with(Field::Method, update))
                    .expect("valid")
                    .is_delete()
            );
        }
    }

    #[test]
    fn a_required_column_missing_from_a_file_with_deletes_is_named_on_update_rows() {
        let values: Vec<_> = row()
            .into_iter()
            .filter(|(field, _)| *field != Field::Price)
            .chain([(Field::Method, "update")])
            .collect();
        let err = validate_fields(&values).expect_err("no price");
        assert_eq!(
            err[0].to_string(),
            "the file has no price column, which every product that is not deleted needs; add the column"
        );
    }
}
