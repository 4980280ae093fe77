//! Meta's catalog rules for one row, and the problems a row can have.

use std::fmt;

use crate::currency;
use crate::field::{AVAILABILITY_VALUES, CONDITION_VALUES, Field};

/// A product that passed every rule, borrowing its text from the CSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product<'r> {
    /// Retailer id, trimmed.
    pub id: &'r str,
    /// Title, trimmed.
    pub title: &'r str,
    /// Description, trimmed.
    pub description: &'r str,
    /// Product page URL, trimmed.
    pub link: &'r str,
    /// Image URL, trimmed.
    pub image_link: &'r str,
    /// Canonical availability value.
    pub availability: &'static str,
    /// Normalised price.
    pub price: Price<'r>,
    /// Brand, trimmed.
    pub brand: &'r str,
    /// Canonical condition value.
    pub condition: &'static str,
    /// Category path, trimmed; may be empty.
    pub product_type: &'r str,
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
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field.map_or("row", Field::name);
        match &self.kind {
            ProblemKind::Empty => write!(f, "{field} is empty; every product needs a {field}"),
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
                write!(f, "price {found:?} ")?;
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

/// Checks one row (fields in [`Field::ALL`] order) against every rule.
///
/// Returns the product, or every problem found (never just the first), so one pass over the
/// export is enough to fix it.
pub fn validate<'r>(values: [&'r str; 10]) -> Result<Product<'r>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut text = |field: Field| -> &'r str {
        let value = trim(values[field.index()]);
        if value.is_empty() {
            if field.required() {
                problems.push(Problem {
                    field: Some(field),
                    kind: ProblemKind::Empty,
                });
            }
        } else if let Some(max) = field.max_chars() {
            // Byte length bounds the character count, so counting is only needed near the limit.
            if value.len() > max {
                let actual = value.chars().count();
                if actual > max {
                    problems.push(Problem {
                        field: Some(field),
                        kind: ProblemKind::TooLong { max, actual },
                    });
                }
            }
        }
        value
    };

    let id = text(Field::Id);
    let title = text(Field::Title);
    let description = text(Field::Description);
    let link = text(Field::Link);
    let image_link = text(Field::ImageLink);
    let availability = text(Field::Availability);
    let price = text(Field::Price);
    let brand = text(Field::Brand);
    let condition = text(Field::Condition);
    let product_type = text(Field::ProductType);

    let availability = one_of(
        Field::Availability,
        availability,
        &AVAILABILITY_VALUES,
        &mut problems,
    );
    let condition = one_of(
        Field::Condition,
        condition,
        &CONDITION_VALUES,
        &mut problems,
    );
    let price = if price.is_empty() {
        None
    } else {
        parse_price(price)
            .map_err(|reason| {
                problems.push(Problem {
                    field: Some(Field::Price),
                    kind: ProblemKind::Price {
                        found: excerpt(price),
                        reason,
                    },
                })
            })
            .ok()
    };
    for (field, url) in [(Field::Link, link), (Field::ImageLink, image_link)] {
        if !url.is_empty() && !is_http_url(url) {
            problems.push(Problem {
                field: Some(field),
                kind: ProblemKind::Url {
                    found: excerpt(url),
                },
            });
        }
    }

    match (availability, condition, price) {
        (Some(availability), Some(condition), Some(price)) if problems.is_empty() => Ok(Product {
            id,
            title,
            description,
            link,
            image_link,
            availability,
            price,
            brand,
            condition,
            product_type,
        }),
        _ => Err(problems),
    }
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

    fn row() -> [&'static str; 10] {
        [
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
        ]
    }

    fn problems(values: [&str; 10]) -> Vec<(Option<Field>, &'static str)> {
        match validate(values) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .map(|p| (p.field, p.kind.code()))
                .collect(),
        }
    }

    fn with(field: Field, value: &'static str) -> [&'static str; 10] {
        let mut values = row();
        values[field.index()] = value;
        values
    }

    #[test]
    fn a_good_row_is_valid_and_normalised() {
        let mut values = row();
        values[Field::Availability.index()] = " In Stock ";
        values[Field::Condition.index()] = "NEW";
        values[Field::Price.index()] = " 25.99  usd ";
        values[Field::Title.index()] = "  Blue mug\t";
        let product = validate(values).expect("valid");
        assert_eq!(product.availability, "in stock");
        assert_eq!(product.condition, "new");
        assert_eq!(product.price.to_string(), "25.99 USD");
        assert_eq!(product.title, "Blue mug");
    }

    #[test]
    fn every_required_field_must_be_non_empty() {
        for field in Field::ALL {
            let found = problems(with(field, "   "));
            if field.required() {
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
        let err = validate(with(Field::Title, "x".repeat(250).leak())).expect_err("too long");
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
        values[Field::Title.index()] = "";
        values[Field::Price.index()] = "$5";
        values[Field::Link.index()] = "nope";
        values[Field::Condition.index()] = "broken";
        let found = problems(values);
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn excerpts_are_short() {
        let long = "x".repeat(10_000);
        assert!(excerpt(&long).chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(excerpt("short"), "short");
    }
}
