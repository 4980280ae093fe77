//! The mapping from a valid product to one `items_batch` request.

use std::fmt;
use std::str::FromStr;

use crate::field::{Field, Kind};
use crate::rules::{Product, count_digits, list_items, parse_weight};

/// Where the CSV's `product_type` column goes in the request.
///
/// The retailer's category path belongs in Meta's `product_type` (the default); Meta reads
/// `google_product_category` as Google's taxonomy and bases tax and purchase-protection
/// decisions on it. The seed integration sent `product_type` there; that mapping stays for
/// exports whose `product_type` already holds Google's taxonomy. A file's own
/// `google_product_category` column always wins over the mapped value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProductTypeMapping {
    /// Send as `google_product_category` (the seed's mapping).
    GoogleProductCategory,
    /// Send as Meta's own `product_type` (the default).
    #[default]
    ProductType,
    /// Send as both fields.
    Both,
}

impl ProductTypeMapping {
    /// The accepted spellings, for messages and help.
    pub const NAMES: [&'static str; 3] = ["google_product_category", "product_type", "both"];
}

/// An unknown [`ProductTypeMapping`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown product_type mapping {0:?}; use google_product_category, product_type or both")]
pub struct UnknownMapping(String);

impl FromStr for ProductTypeMapping {
    type Err = UnknownMapping;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "google_product_category" => Ok(ProductTypeMapping::GoogleProductCategory),
            "product_type" => Ok(ProductTypeMapping::ProductType),
            "both" => Ok(ProductTypeMapping::Both),
            _ => Err(UnknownMapping(value.to_owned())),
        }
    }
}

impl fmt::Display for ProductTypeMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProductTypeMapping::GoogleProductCategory => "google_product_category",
            ProductTypeMapping::ProductType => "product_type",
            ProductTypeMapping::Both => "both",
        })
    }
}

/// Appends the JSON of one `{"method":"UPDATE","data":{...}}` request for `product` to `out`
/// (`{"method":"DELETE","data":{"id":...}}` for a delete).
///
/// Only fields with a value are sent: an empty optional field is left out rather than sent as
/// `""`, which Meta would read as "clear this field". Writing to memory cannot fail; the
/// `Result` is kept for callers.
pub fn write_request(
    product: &Product<'_>,
    mapping: ProductTypeMapping,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let mut json = String::new();
    push_request(product, mapping, &mut json);
    out.extend_from_slice(json.as_bytes());
    Ok(())
}

/// [`write_request`] into a `String`, so that a batch built from requests is a `String`
/// without checking its UTF-8 again.
///
/// Written by hand rather than with `serde_json`: the request's shape follows the field
/// catalog, and going through the serializer one field at a time was a sixth of the
/// transform. Strings are escaped exactly as `serde_json` escapes them; the tests parse the
/// output back and compare it with the product.
pub(crate) fn push_request(product: &Product<'_>, mapping: ProductTypeMapping, out: &mut String) {
    if product.is_delete() {
        push_delete_request(product.id, out);
        return;
    }
    out.push_str(r#"{"method":"UPDATE","data":{"#);
    let mut first = true;
    let mut key = |out: &mut String, name: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
    };
    let has_google_category = product.get(Field::GoogleProductCategory).is_some();
    for (field, value) in product.fields() {
        if field == Field::ProductType {
            let (google, own) = match mapping {
                ProductTypeMapping::GoogleProductCategory => (true, false),
                ProductTypeMapping::ProductType => (false, true),
                ProductTypeMapping::Both => (true, true),
            };
            if google && !has_google_category {
                key(out, Field::GoogleProductCategory.name());
                push_string(out, value);
            }
            if own {
                key(out, field.name());
                push_string(out, value);
            }
            continue;
        }
        key(out, field.name());
        match field.kind() {
            Kind::Text { .. }
            | Kind::Url
            | Kind::OneOf(_)
            | Kind::DateRange
            | Kind::Attributes { .. } => push_string(out, value),
            Kind::Price => {
                let price = if field == Field::SalePrice {
                    product.sale_price()
                } else {
                    product.price()
                };
                // `parse_price` lets only digits and `.` into the amount and `A`-`Z` into the
                // code, so there is nothing to escape.
                match price {
                    Some(price) => {
                        out.push('"');
                        out.push_str(price.amount());
                        out.push(' ');
                        out.push_str(price.currency());
                        out.push('"');
                    }
                    None => push_string(out, value),
                }
            }
            Kind::Count => out.push_str(count_digits(value).unwrap_or("0")),
            Kind::Weight => match parse_weight(value) {
                Some((amount, unit)) => {
                    out.push('"');
                    out.push_str(amount);
                    out.push(' ');
                    out.push_str(unit);
                    out.push('"');
                }
                None => push_string(out, value),
            },
            Kind::UrlList { .. } => {
                out.push('[');
                for (n, url) in list_items(value).enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    push_string(out, url);
                }
                out.push(']');
            }
            Kind::VideoList { .. } => {
                out.push('[');
                for (n, url) in list_items(value).enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(r#"{"url":"#);
                    push_string(out, url);
                    out.push('}');
                }
                out.push(']');
            }
            // Never among a product's fields; written as a string should that change.
            Kind::Method => push_string(out, value),
        }
    }
    out.push_str("}}");
}

/// Appends the `DELETE` request of product `id` to `out`.
pub(crate) fn push_delete_request(id: &str, out: &mut String) {
    out.push_str(r#"{"method":"DELETE","data":{"id":"#);
    push_string(out, id);
    out.push_str("}}");
}

/// Appends `value` as a quoted JSON string.
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    push_escaped(out, value);
    out.push('"');
}

/// Appends `value` escaped for the inside of a JSON string, as `serde_json` escapes it:
/// `\"`, `\\`, the five short control escapes, `\u00xx` (lower-case hex) for other control
/// characters, and everything else, including non-ASCII text, unchanged.
fn push_escaped(out: &mut String, value: &str) {
    if !has_escape(value.as_bytes()) {
        out.push_str(value);
        return;
    }
    // Only ASCII characters need escaping, so each escaped character is one byte.
    let mut run_start = 0;
    for (at, c) in value.char_indices() {
        if let Ok(byte) = u8::try_from(c)
            && needs_escape(byte)
        {
            out.push_str(&value[run_start..at]);
            push_escape(out, byte);
            run_start = at + 1;
        }
    }
    out.push_str(&value[run_start..]);
}

/// Appends the JSON escape of `byte`, one that [`needs_escape`].
fn push_escape(out: &mut String, byte: u8) {
    match byte {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        0x08 => out.push_str("\\b"),
        0x0C => out.push_str("\\f"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
}

/// Whether any byte of `bytes` needs escaping in a JSON string.
///
/// Most text has none, so this decides the common case alone. It tests 16 bytes at a time
/// without branches, which the compiler turns into a few vector instructions, where a
/// byte-by-byte loop costs several instructions a byte; the bytes after the last whole block
/// are tested as the last 16 bytes, overlapping the block before. Values shorter than a
/// block are tested byte by byte.
fn has_escape(bytes: &[u8]) -> bool {
    const BLOCK: usize = 16;
    let any = |block: &[u8; BLOCK]| block.iter().fold(false, |any, &b| any | needs_escape(b));
    let Some(last) = bytes.last_chunk::<BLOCK>() else {
        return bytes.iter().any(|&b| needs_escape(b));
    };
    let (blocks, _) = bytes.as_chunks::<BLOCK>();
    any(last) || blocks.iter().any(any)
}

/// Whether JSON needs `byte` escaped inside a string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::rules::validate_fields;

    fn request(product: &Product<'_>, mapping: ProductTypeMapping) -> Value {
        let mut out = Vec::new();
        write_request(product, mapping, &mut out).expect("write");
        serde_json::from_slice(&out).expect("valid JSON")
    }

    fn original<'a>(text: &'a str, other: &'a str) -> Vec<(Field, &'a str)> {
        vec![
            (Field::Id, text),
            (Field::Title, other),
            (Field::Description, text),
            (Field::Link, "https://shop.example/p"),
            (Field::ImageLink, "https://cdn.example/i.jpg"),
            (Field::Availability, "in stock"),
            (Field::Price, "25.99 usd"),
            (Field::Brand, other),
            (Field::Condition, "new"),
            (Field::ProductType, text),
        ]
    }

    const MAPPINGS: [ProductTypeMapping; 3] = [
        ProductTypeMapping::GoogleProductCategory,
        ProductTypeMapping::ProductType,
        ProductTypeMapping::Both,
    ];

    #[test]
    fn every_field_kind_is_written_as_meta_expects() {
        let mut fields = original("SKU-1", "Mug");
        fields.extend([
            (Field::SalePrice, "19.5 USD"),
            (
                Field::SalePriceEffectiveDate,
                "2026-12-01T00:00+01:00/2026-12-31T23:59+01:00",
            ),
            (Field::QuantityToSellOnFacebook, "007"),
            (Field::ShippingWeight, "1.5 KG"),
            (
                Field::AdditionalImageLink,
                "https://cdn.example/a.jpg, https://cdn.example/b.jpg,",
            ),
            (Field::Video, "https://cdn.example/v.mp4"),
            (Field::Gender, "Female"),
            (Field::Gtin, ""),
            (Field::AdditionalVariantAttribute, "Scent:Lavender"),
        ]);
        let product = validate_fields(&fields).expect("valid");
        assert_eq!(
            request(&product, ProductTypeMapping::default()),
            json!({"method": "UPDATE", "data": {
                "id": "SKU-1", "title": "Mug", "description": "SKU-1",
                "availability": "in stock", "condition": "new", "price": "25.99 USD",
                "link": "https://shop.example/p", "image_link": "https://cdn.example/i.jpg",
                "brand": "Mug", "product_type": "SKU-1",
                "sale_price": "19.5 USD",
                "sale_price_effective_date": "2026-12-01T00:00+01:00/2026-12-31T23:59+01:00",
                "quantity_to_sell_on_facebook": 7,
                "shipping_weight": "1.5 kg",
                "additional_image_link": ["https://cdn.example/a.jpg", "https://cdn.example/b.jpg"],
                "video": [{"url": "https://cdn.example/v.mp4"}],
                "gender": "female",
                "additional_variant_attribute": "Scent:Lavender"
            }})
        );
    }

    #[test]
    fn a_delete_sends_only_the_id() {
        let product =
            validate_fields(&[(Field::Id, "SKU-\"1"), (Field::Method, "Delete")]).expect("valid");
        let mut out = Vec::new();
        write_request(&product, ProductTypeMapping::default(), &mut out).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"method":"DELETE","data":{"id":"SKU-\"1"}}"#
        );
    }

    #[test]
    fn a_google_product_category_column_wins_over_the_mapped_product_type() {
        let mut fields = original("SKU-1", "Mug");
        fields.push((Field::GoogleProductCategory, "2169"));
        fields.push((Field::FbProductCategory, "Home > Mugs"));
        let product = validate_fields(&fields).expect("valid");
        for mapping in MAPPINGS {
            let data = &request(&product, mapping)["data"];
            assert_eq!(data["google_product_category"], "2169", "{mapping}");
            assert_eq!(data["fb_product_category"], "Home > Mugs", "{mapping}");
        }
    }

    #[test]
    fn every_escape_matches_serde_json() {
        let every_ascii: String = (0u8..=0x7F).map(char::from).collect();
        for text in [every_ascii.as_str(), "x", "\"\\", "tab\there é ü 😀 \u{7f}"] {
            for mapping in MAPPINGS {
                let mut fields = original(text, "x");
                fields[0].1 = "SKU-1";
                let product = validate_fields(&fields).expect("valid");
                let data = request(&product, mapping)["data"].clone();
                assert_eq!(data["description"], text.trim());
            }
        }
    }

    #[test]
    fn an_escape_is_found_at_any_place_in_values_of_any_length() {
        for len in 0..70 {
            for at in 0..len {
                for special in ["\"", "\\", "\u{1}", "\n"] {
                    let mut text = "é".repeat(len);
                    text.replace_range(at * 2..at * 2 + 2, special);
                    let mut ours = String::new();
                    push_escaped(&mut ours, &text);
                    let serde = serde_json::to_string(&text).expect("serialise");
                    assert_eq!(format!("\"{ours}\""), serde, "{len} {at} {special:?}");
                }
            }
            let clean = "é".repeat(len);
            assert!(!has_escape(clean.as_bytes()), "{len}");
        }
    }

    proptest! {
        #[test]
        fn every_value_survives_the_request_intact(
            text in "[^\\s,](?s).{0,80}[^\\s,]",
            other in "[\\x21-\\x7e]{1,40}",
            mapping in 0usize..3,
        ) {
            let product = validate_fields(&original(&text, &other)).expect("valid");
            let data = request(&product, MAPPINGS[mapping])["data"].clone();
            prop_assert_eq!(&data["id"], text.trim());
            prop_assert_eq!(&data["title"], other.as_str());
            prop_assert_eq!(&data["brand"], other.as_str());
            prop_assert_eq!(&data["description"], text.trim());
        }
    }
}
