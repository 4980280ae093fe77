//! The mapping from a valid product to one `items_batch` request.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::rules::{Price, Product};

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

fn as_display<S: serde::Serializer>(price: &Price<'_>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(price)
}

/// Appends the JSON of one `{"method":"UPDATE","data":{...}}` request for `product` to `out`.
///
/// An empty `product_type` is left out rather than sent as `""`, which Meta would take as
/// "clear the category".
pub fn write_request(
    product: &Product<'_>,
    mapping: ProductTypeMapping,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
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
    serde_json::to_writer(out, &request)
}
