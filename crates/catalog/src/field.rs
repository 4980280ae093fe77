//! The field catalog: every Meta `items_batch` product field catalog-sync reads, as one table.
//!
//! Each row of [`FIELDS`] names the Meta field, the CSV column it is read from, its kind (which
//! decides the rule applied and how the value is written into the request), whether it is
//! required, and the source of its rule. The reader, the row rules and the request builder
//! all follow from this table; the README's contract table is tested against it.
//!
//! Sources, abbreviated in the table:
//! - `ref`: Meta, "Supported fields for products - Advantage+ catalog ads & commerce"
//!   (developers.facebook.com, catalog reference).
//! - `batch`: Meta, Catalog Batch API reference (`items_batch`, `item_type=PRODUCT_ITEM`).
//! - `sdk`: Meta's facebook-python-business-sdk, `adobjects/productitem.py` (generated enums).
//! - `qts`: Meta, Commerce Platform "Quantity to Sell".
//! - `variants`: Meta, Commerce Platform "Product variants".
//! - `categories`: Meta, Commerce Platform "Product categories" (tax, purchase protection).

use std::fmt;

/// What a field holds: decides its rule and how it is written into the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text of at most `max_chars` characters, sent as a string.
    Text {
        /// Meta's limit, in characters.
        max_chars: usize,
    },
    /// An absolute http(s) URL, sent as a string.
    Url,
    /// Comma-separated absolute http(s) URLs in the CSV, sent as a JSON array of strings.
    UrlList {
        /// Most URLs accepted.
        max_items: usize,
    },
    /// Comma-separated video URLs in the CSV, sent as `[{"url": ...}, ...]`.
    VideoList {
        /// Most videos accepted.
        max_items: usize,
    },
    /// One value of a closed list (any ASCII case in the CSV), sent in the listed form.
    OneOf(&'static [&'static str]),
    /// `<amount> <ISO 4217 code>`, sent as `"25.99 USD"`.
    Price,
    /// Two ISO 8601 times separated by `/`, the end not before the start; sent as written.
    DateRange,
    /// A whole number, 0 or more, sent as a JSON number.
    Count,
    /// `<number> <unit>` with a unit of [`WEIGHT_UNITS`], sent as `"1.5 kg"`.
    Weight,
    /// Comma-separated `name:value` pairs, sent as written.
    Attributes {
        /// Most pairs accepted.
        max_items: usize,
    },
    /// The row's action (`update` or `delete`); read, never sent as a field.
    Method,
}

/// Whether a product must carry a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every product (every row that is not a delete) needs a value; the file needs the column.
    Required,
    /// At least one field of this group needs a value (Meta: brand, gtin or mpn).
    OneOfIdentifiers,
    /// May be absent or empty; empty is left out of the request.
    Optional,
}

/// One entry of the field catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field.
    pub field: Field,
    /// The Meta field name, which is also the CSV column name.
    pub name: &'static str,
    /// What the value is, hence its rule and its JSON form.
    pub kind: Kind,
    /// Whether a product needs it.
    pub need: Need,
    /// Where the rule comes from.
    pub source: &'static str,
}

/// Values accepted in the `availability` column, in the form sent to Meta.
///
/// `sdk` also lists `pending` and `mark_as_sold`; `ref` documents these five for feeds and
/// `batch`, so only these are accepted.
pub const AVAILABILITY_VALUES: [&str; 5] = [
    "in stock",
    "out of stock",
    "preorder",
    "available for order",
    "discontinued",
];

/// Values accepted in the `condition` column, in the form sent to Meta.
///
/// `sdk` also lists `cpo`, `open_box_new`, `used_like_new` and others; `ref` documents three.
pub const CONDITION_VALUES: [&str; 3] = ["new", "refurbished", "used"];

/// Values accepted in `gender` (`ref`; `sdk` `Gender`).
pub const GENDER_VALUES: [&str; 3] = ["female", "male", "unisex"];

/// Values accepted in `age_group` (`ref`; `sdk` `AgeGroup`).
pub const AGE_GROUP_VALUES: [&str; 7] = [
    "adult", "all ages", "teen", "kids", "toddler", "infant", "newborn",
];

/// Values accepted in `status` (`ref`: `active` shows the item, `archived` hides it).
///
/// `sdk` has `visibility` (`published`, `staging`) for the item API; feeds and `batch` use
/// `status`, so that is the field offered.
pub const STATUS_VALUES: [&str; 2] = ["active", "archived"];

/// Values accepted in the `method` column: what to do with the row's product.
pub const METHOD_VALUES: [&str; 2] = ["update", "delete"];

/// Units accepted in `shipping_weight` (`ref`: `lb`, `oz`, `g`, `kg`).
pub const WEIGHT_UNITS: [&str; 4] = ["lb", "oz", "g", "kg"];

/// Meta documents no length for URLs; browsers and CDNs stop near this.
const URL_MAX_CHARS: usize = 2000;

macro_rules! field_catalog {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, $kind:expr, $need:expr, $source:literal; )*) => {
        /// A field of the product CSV and of the `items_batch` request.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $( $(#[doc = $doc])* $variant, )*
        }

        /// The field catalog, in the order fields are written into a request (the required fields in
/// the order of the original contract, so messages list them as before).
        pub const FIELDS: &[FieldSpec] = &[
            $( FieldSpec { field: Field::$variant, name: $name, kind: $kind, need: $need, source: $source }, )*
        ];
    };
}

// Choices where sources disagree, each one cell to change:
// - title: `ref` says 200 characters (150 for Commerce listings, 65 recommended); `batch` accepts
//   200, and a shorter rule would reject products Meta takes, so 200.
// - rich_text_description: `ref` gives no limit of its own; it replaces `description`, whose
//   9999 is used.
// - video: `batch` takes a list of `{url, tag}` objects; no count limit is documented, so the
//   additional_image_link limit is used.
field_catalog! {
    /// The retailer's product id (`data.id`); `ref`: at most 100 characters.
    Id = "id", Kind::Text { max_chars: 100 }, Need::Required, "ref: id, max 100";
    /// Product title.
    Title = "title", Kind::Text { max_chars: 200 }, Need::Required, "ref: title, max 200";
    /// Plain-text description.
    Description = "description", Kind::Text { max_chars: 9999 }, Need::Required, "ref: description, max 9999, plain text";
    /// Product page URL.
    Link = "link", Kind::Url, Need::Required, "ref: link, absolute URL";
    /// Main image URL.
    ImageLink = "image_link", Kind::Url, Need::Required, "ref: image_link, absolute URL";
    /// Stock state.
    Availability = "availability", Kind::OneOf(&AVAILABILITY_VALUES), Need::Required, "ref: availability; sdk Availability";
    /// Amount and ISO 4217 code.
    Price = "price", Kind::Price, Need::Required, "ref: price, '9.99 USD', ISO 4217";
    /// New, refurbished or used.
    Condition = "condition", Kind::OneOf(&CONDITION_VALUES), Need::Required, "ref: condition; sdk Condition";
    /// Brand name; one of brand, gtin, mpn is required.
    Brand = "brand", Kind::Text { max_chars: 100 }, Need::OneOfIdentifiers, "ref: brand, max 100; brand, gtin or mpn required";
    /// Global Trade Item Number (UPC, EAN, JAN, ISBN).
    Gtin = "gtin", Kind::Text { max_chars: 70 }, Need::OneOfIdentifiers, "ref: gtin, max 70";
    /// Manufacturer part number.
    Mpn = "mpn", Kind::Text { max_chars: 100 }, Need::OneOfIdentifiers, "ref: mpn, max 100";
    /// HTML description, preferred to `description` where shown.
    RichTextDescription = "rich_text_description", Kind::Text { max_chars: 9999 }, Need::Optional, "ref: rich_text_description (HTML)";
    /// Up to 20 more image URLs.
    AdditionalImageLink = "additional_image_link", Kind::UrlList { max_items: 20 }, Need::Optional, "ref: additional_image_link, up to 20 URLs";
    /// Discounted price, same currency as `price`, not above it.
    SalePrice = "sale_price", Kind::Price, Need::Optional, "ref: sale_price, same format as price";
    /// When the sale price applies: `start/end` in ISO 8601.
    SalePriceEffectiveDate = "sale_price_effective_date", Kind::DateRange, Need::Optional, "ref: sale_price_effective_date, ISO 8601 start/end";
    /// Groups the variants of one product.
    ItemGroupId = "item_group_id", Kind::Text { max_chars: 100 }, Need::Optional, "ref, variants: item_group_id";
    /// Variant colour.
    Color = "color", Kind::Text { max_chars: 200 }, Need::Optional, "ref: color, max 200";
    /// Variant size.
    Size = "size", Kind::Text { max_chars: 200 }, Need::Optional, "ref: size, max 200";
    /// Intended gender.
    Gender = "gender", Kind::OneOf(&GENDER_VALUES), Need::Optional, "ref: gender; sdk Gender";
    /// Intended age group.
    AgeGroup = "age_group", Kind::OneOf(&AGE_GROUP_VALUES), Need::Optional, "ref: age_group; sdk AgeGroup";
    /// Main material.
    Material = "material", Kind::Text { max_chars: 200 }, Need::Optional, "ref: material, max 200";
    /// Pattern or print.
    Pattern = "pattern", Kind::Text { max_chars: 100 }, Need::Optional, "ref: pattern, max 100";
    /// The retailer's own category path.
    ProductType = "product_type", Kind::Text { max_chars: 750 }, Need::Optional, "ref: product_type, max 750; categories";
    /// Google's product taxonomy: path or numeric id.
    GoogleProductCategory = "google_product_category", Kind::Text { max_chars: 250 }, Need::Optional, "ref: google_product_category; categories";
    /// Meta's product category: path or numeric id.
    FbProductCategory = "fb_product_category", Kind::Text { max_chars: 250 }, Need::Optional, "ref: fb_product_category; categories";
    /// Stock to sell with checkout.
    QuantityToSellOnFacebook = "quantity_to_sell_on_facebook", Kind::Count, Need::Optional, "qts: whole number; sdk unsigned int";
    /// Free label for ad sets.
    CustomLabel0 = "custom_label_0", Kind::Text { max_chars: 100 }, Need::Optional, "ref: custom_label_0-4, max 100";
    /// Free label for ad sets.
    CustomLabel1 = "custom_label_1", Kind::Text { max_chars: 100 }, Need::Optional, "ref: custom_label_0-4, max 100";
    /// Free label for ad sets.
    CustomLabel2 = "custom_label_2", Kind::Text { max_chars: 100 }, Need::Optional, "ref: custom_label_0-4, max 100";
    /// Free label for ad sets.
    CustomLabel3 = "custom_label_3", Kind::Text { max_chars: 100 }, Need::Optional, "ref: custom_label_0-4, max 100";
    /// Free label for ad sets.
    CustomLabel4 = "custom_label_4", Kind::Text { max_chars: 100 }, Need::Optional, "ref: custom_label_0-4, max 100";
    /// Shipping weight with its unit.
    ShippingWeight = "shipping_weight", Kind::Weight, Need::Optional, "ref: shipping_weight, number and lb|oz|g|kg";
    /// Product videos.
    Video = "video", Kind::VideoList { max_items: 20 }, Need::Optional, "batch: video, list of {url}";
    /// Shown (`active`) or hidden (`archived`).
    Status = "status", Kind::OneOf(&STATUS_VALUES), Need::Optional, "ref: status, active|archived";
    /// Extra variant dimensions as `name:value` pairs.
    AdditionalVariantAttribute = "additional_variant_attribute", Kind::Attributes { max_items: 10 }, Need::Optional, "variants: additional_variant_attribute, name:value pairs";
    /// `update` (default) or `delete`: what to do with the product.
    Method = "method", Kind::Method, Need::Optional, "batch: requests[].method UPDATE|DELETE";
}

/// Number of fields in the catalog.
pub const FIELD_COUNT: usize = FIELDS.len();

// The set of a row's fields is a 64-bit mask.
const _: () = assert!(FIELD_COUNT <= 64);

impl Field {
    /// Every field, in catalog (request) order.
    pub const ALL: [Field; FIELD_COUNT] = {
        let mut all = [Field::Id; FIELD_COUNT];
        let mut i = 0;
        while i < FIELD_COUNT {
            all[i] = FIELDS[i].field;
            i += 1;
        }
        all
    };

    /// This field's entry in the catalog.
    pub const fn spec(self) -> &'static FieldSpec {
        &FIELDS[self as usize]
    }

    /// The column and Meta field name.
    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// The field's kind.
    pub const fn kind(self) -> Kind {
        self.spec().kind
    }

    /// Whether a product needs it.
    pub const fn need(self) -> Need {
        self.spec().need
    }

    /// The most characters Meta accepts in this field, where it sets a limit.
    pub const fn max_chars(self) -> Option<usize> {
        match self.kind() {
            Kind::Text { max_chars } => Some(max_chars),
            Kind::Url => Some(URL_MAX_CHARS),
            _ => None,
        }
    }

    /// Whether an empty value is an error on its own (see [`Need::OneOfIdentifiers`]).
    pub const fn required(self) -> bool {
        matches!(self.need(), Need::Required)
    }

    /// The position of this field in [`Field::ALL`] and [`FIELDS`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// This field's bit in a field mask.
    pub const fn bit(self) -> u64 {
        1 << self as u32
    }

    /// The field whose name matches `header` after trimming, ignoring ASCII case.
    pub fn from_header(header: &str) -> Option<Field> {
        let header = header.trim();
        Field::ALL
            .into_iter()
            .find(|field| field.name().eq_ignore_ascii_case(header))
    }

    /// The field name closest to `column`, when it is close enough to be a likely typo or a
    /// differently written name (`salePrice`, `Sale Price` -> `sale_price`).
    pub fn nearest(column: &str) -> Option<Field> {
        let normalise = |name: &str| -> String {
            name.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        let wanted = normalise(column);
        if wanted.is_empty() {
            return None;
        }
        Field::ALL
            .into_iter()
            .filter(|field| *field != Field::Method)
            .map(|field| {
                let similarity = strsim::normalized_levenshtein(&wanted, &normalise(field.name()));
                (field, similarity)
            })
            .filter(|(_, similarity)| *similarity >= 0.75)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(field, _)| field)
    }
}

/// Fields a product must carry: each [`Need::Required`] field.
pub const REQUIRED_MASK: u64 = {
    let mut mask = 0;
    let mut i = 0;
    while i < FIELD_COUNT {
        if matches!(FIELDS[i].need, Need::Required) {
            mask |= 1 << i;
        }
        i += 1;
    }
    mask
};

/// The identifier group: at least one of these is needed.
pub const IDENTIFIER_MASK: u64 = {
    let mut mask = 0;
    let mut i = 0;
    while i < FIELD_COUNT {
        if matches!(FIELDS[i].need, Need::OneOfIdentifiers) {
            mask |= 1 << i;
        }
        i += 1;
    }
    mask
};

/// The names of the fields in `mask`, in catalog order.
pub fn names(mask: u64) -> Vec<&'static str> {
    Field::ALL
        .into_iter()
        .filter(|field| mask & field.bit() != 0)
        .map(Field::name)
        .collect()
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
            assert_eq!(FIELDS[position].field, field);
        }
    }

    #[test]
    fn names_are_unique_lower_case_and_every_rule_has_a_source() {
        let mut names: Vec<&str> = FIELDS.iter().map(|spec| spec.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELD_COUNT);
        for spec in FIELDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(!spec.source.is_empty(), "{}", spec.name);
        }
    }

    #[test]
    fn meta_requires_these_fields_and_one_identifier() {
        assert_eq!(
            names(REQUIRED_MASK),
            [
                "id",
                "title",
                "description",
                "link",
                "image_link",
                "availability",
                "price",
                "condition"
            ]
        );
        assert_eq!(names(IDENTIFIER_MASK), ["brand", "gtin", "mpn"]);
    }

    #[test]
    fn the_nearest_field_is_suggested_only_when_close() {
        assert_eq!(Field::nearest("salePrice"), Some(Field::SalePrice));
        assert_eq!(Field::nearest("Sale Price"), Some(Field::SalePrice));
        assert_eq!(Field::nearest("imagelink"), Some(Field::ImageLink));
        assert_eq!(Field::nearest("quantity"), None);
        assert_eq!(Field::nearest("warehouse_code"), None);
        assert_eq!(Field::nearest(""), None);
    }
}

#[cfg(test)]
mod readme {
    use super::*;

    /// The README's contract table has a row for every field of the catalog, saying whether
    /// it is required as the catalog does.
    #[test]
    fn the_readme_contract_table_covers_every_field() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("### The data contract")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has a data contract section");
        for spec in FIELDS {
            let quoted = format!("`{}`", spec.name);
            let row = section
                .lines()
                .find(|line| {
                    line.split('|')
                        .nth(1)
                        .is_some_and(|cell| cell.split(", ").any(|name| name.trim() == quoted))
                })
                .unwrap_or_else(|| panic!("no README row for {}", spec.name));
            let required = row.trim_end().trim_end_matches('|').rsplit('|').next();
            let expected = match spec.need {
                Need::Required => "yes",
                Need::OneOfIdentifiers => "one of brand, gtin, mpn",
                Need::Optional => "no",
            };
            assert_eq!(required.map(str::trim), Some(expected), "{}", spec.name);
        }
    }
}
