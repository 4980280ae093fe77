//! The columns of the CSV contract and the limits Meta publishes for each.

use std::fmt;

/// A required column of the product CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The retailer's product id (`data.id` in the request).
    Id,
    /// Product title.
    Title,
    /// Plain-text description.
    Description,
    /// Product page URL.
    Link,
    /// Main image URL.
    ImageLink,
    /// Stock state.
    Availability,
    /// Amount and ISO 4217 code.
    Price,
    /// Brand name.
    Brand,
    /// New, refurbished or used.
    Condition,
    /// The retailer's category path.
    ProductType,
}

impl Field {
    /// Every required column, in the order the contract lists them.
    pub const ALL: [Field; 10] = [
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

    /// The column name as written in the CSV header.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Title => "title",
            Field::Description => "description",
            Field::Link => "link",
            Field::ImageLink => "image_link",
            Field::Availability => "availability",
            Field::Price => "price",
            Field::Brand => "brand",
            Field::Condition => "condition",
            Field::ProductType => "product_type",
        }
    }

    /// The most characters Meta accepts in this field, where it sets a limit.
    pub const fn max_chars(self) -> Option<usize> {
        match self {
            Field::Id => Some(100),
            Field::Title => Some(200),
            Field::Description => Some(9999),
            Field::Brand => Some(100),
            Field::ProductType => Some(750),
            // Meta documents no length for URLs; browsers and CDNs stop near this.
            Field::Link | Field::ImageLink => Some(2000),
            Field::Availability | Field::Price | Field::Condition => None,
        }
    }

    /// Whether an empty value is an error.
    pub const fn required(self) -> bool {
        !matches!(self, Field::ProductType)
    }

    /// The position of this field in [`Field::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The field whose header name matches `header` after trimming, ignoring ASCII case.
    pub fn from_header(header: &str) -> Option<Field> {
        let header = header.trim();
        Field::ALL
            .into_iter()
            .find(|field| field.name().eq_ignore_ascii_case(header))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Values accepted in the `availability` column, in the form sent to Meta.
pub const AVAILABILITY_VALUES: [&str; 5] = [
    "in stock",
    "out of stock",
    "preorder",
    "available for order",
    "discontinued",
];

/// Values accepted in the `condition` column, in the form sent to Meta.
pub const CONDITION_VALUES: [&str; 3] = ["new", "refurbished", "used"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_match_trimmed_and_case_insensitively() {
        assert_eq!(Field::from_header(" Image_Link "), Some(Field::ImageLink));
        assert_eq!(Field::from_header("PRICE"), Some(Field::Price));
        assert_eq!(Field::from_header("image link"), None);
        assert_eq!(Field::from_header(""), None);
    }

    #[test]
    fn index_matches_position_in_all() {
        for (position, field) in Field::ALL.into_iter().enumerate() {
            assert_eq!(field.index(), position);
        }
    }
}
