//! The mapping from a valid product to one `items_batch` request.

use std::fmt;
use std::str::FromStr;

use crate::rules::Product;

/// Where the CSV's `product_type` column goes in the request.
///
/// The seed integration sent it as `google_product_category`; Meta also has a `product_type`
/// field of its own for the retailer's category path, so either or both can be chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProductTypeMapping {
    /// Send as `google_product_category` (the seed's mapping).
    #[default]
    GoogleProductCategory,
    /// Send as Meta's own `product_type`.
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

/// Appends the JSON of one `{"method":"UPDATE","data":{...}}` request for `product` to `out`.
///
/// An empty `product_type` is left out rather than sent as `""`, which Meta would take as
/// "clear the category". Writing to memory cannot fail; the `Result` is kept for callers.
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
/// Written by hand rather than with `serde_json`: the request's shape is fixed, and going
/// through the serializer one field at a time was a sixth of the transform. The output is
/// byte for byte what `serde_json::to_writer` gives for the same struct (fields in this
/// order, no spaces, the same escapes); the tests compare the two.
pub(crate) fn push_request(product: &Product<'_>, mapping: ProductTypeMapping, out: &mut String) {
    let category = Some(product.product_type).filter(|value| !value.is_empty());
    let (google_product_category, product_type) = match mapping {
        ProductTypeMapping::GoogleProductCategory => (category, None),
        ProductTypeMapping::ProductType => (None, category),
        ProductTypeMapping::Both => (category, category),
    };
    out.push_str(r#"{"method":"UPDATE","data":{"id":"#);
    push_string(out, product.id);
    out.push_str(r#","title":"#);
    push_string(out, product.title);
    out.push_str(r#","description":"#);
    push_string(out, product.description);
    out.push_str(r#","availability":"#);
    push_string(out, product.availability);
    out.push_str(r#","condition":"#);
    push_string(out, product.condition);
    // `parse_price` lets only digits and `.` into the amount and `A`-`Z` into the code, so
    // there is nothing to escape.
    out.push_str(r#","price":""#);
    out.push_str(product.price.amount());
    out.push(' ');
    out.push_str(product.price.currency());
    out.push_str(r#"","link":"#);
    push_string(out, product.link);
    out.push_str(r#","image_link":"#);
    push_string(out, product.image_link);
    out.push_str(r#","brand":"#);
    push_string(out, product.brand);
    if let Some(category) = google_product_category {
        out.push_str(r#","google_product_category":"#);
        push_string(out, category);
    }
    if let Some(product_type) = product_type {
        out.push_str(r#","product_type":"#);
        push_string(out, product_type);
    }
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
    use serde::Serialize;

    use super::*;
    use crate::rules::{Price, parse_price};

    /// The request as it was first written, with `serde_json`: the reference for the output.
    #[derive(Serialize)]
    struct Request<'a> {
        method: &'static str,
        data: Data<'a>,
    }

    #[derive(Serialize)]
    struct Data<'a> {
        id: &'a str,
        title: &'a str,
        description: &'a str,
        availability: &'a str,
        condition: &'a str,
        #[serde(serialize_with = "as_display")]
        price: Price<'a>,
        link: &'a str,
        image_link: &'a str,
        brand: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        google_product_category: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        product_type: Option<&'a str>,
    }

    fn as_display<S: serde::Serializer>(
        price: &Price<'_>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(price)
    }

    fn with_serde(product: &Product<'_>, mapping: ProductTypeMapping) -> Vec<u8> {
        let category = Some(product.product_type).filter(|value| !value.is_empty());
        let (google_product_category, product_type) = match mapping {
            ProductTypeMapping::GoogleProductCategory => (category, None),
            ProductTypeMapping::ProductType => (None, category),
            ProductTypeMapping::Both => (category, category),
        };
        let request = Request {
            method: "UPDATE",
            data: Data {
                id: product.id,
                title: product.title,
                description: product.description,
                availability: product.availability,
                condition: product.condition,
                price: product.price,
                link: product.link,
                image_link: product.image_link,
                brand: product.brand,
                google_product_category,
                product_type,
            },
        };
        serde_json::to_vec(&request).expect("serialise")
    }

    fn product<'a>(text: &'a str, other: &'a str, price: Price<'a>) -> Product<'a> {
        Product {
            id: text,
            title: other,
            description: text,
            link: other,
            image_link: text,
            availability: "in stock",
            price,
            brand: other,
            condition: "new",
            product_type: text,
        }
    }

    const MAPPINGS: [ProductTypeMapping; 3] = [
        ProductTypeMapping::GoogleProductCategory,
        ProductTypeMapping::ProductType,
        ProductTypeMapping::Both,
    ];

    #[test]
    fn every_escape_matches_serde_json() {
        let every_ascii: String = (0u8..=0x7F).map(char::from).collect();
        let price = parse_price("25.99 usd").expect("price");
        for text in [every_ascii.as_str(), "", "\"\\", "tab\there é ü 😀 \u{7f}"] {
            for mapping in MAPPINGS {
                let mut out = Vec::new();
                write_request(&product(text, "x", price), mapping, &mut out).expect("write");
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&with_serde(&product(text, "x", price), mapping)),
                );
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
        fn output_is_byte_for_byte_what_serde_json_writes(
            text in "(?s).{0,80}",
            other in "[\\x00-\\x7f]{0,40}",
            amount in "[0-9]{1,6}(\\.[0-9]{1,2})?",
            code in "(usd|EUR|Iqd)",
            mapping in 0usize..3,
        ) {
            let raw = format!("{amount} {code}");
            let price = parse_price(&raw).expect("price");
            let product = product(&text, &other, price);
            let mut out = Vec::new();
            write_request(&product, MAPPINGS[mapping], &mut out).expect("write");
            prop_assert_eq!(out, with_serde(&product, MAPPINGS[mapping]));
        }
    }
}
