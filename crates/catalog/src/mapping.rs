//! A retailer's column mapping: their column names to Meta's fields, and fixed values.
//!
//! Meta's feed rules do not apply to the Batch API, so this is the one place to adapt an
//! export without reshaping it. Written as entries separated by `;`:
//! `sale_price=salePrice` reads the column `salePrice` as `sale_price`; `condition:=new` sends
//! `new` as every row's `condition` (over any `condition` column). Checked once, at start-up.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::field::Field;

/// How a retailer's columns become Meta's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMapping {
    /// `(column, field)`: the column, matched ignoring case and surrounding spaces, is read
    /// as the field.
    renames: Vec<(String, Field)>,
    /// `(field, value)`: the value of the field in every row.
    fixed: Vec<(Field, String)>,
}

/// A mapping entry that cannot be used, naming it and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MappingError {
    /// Neither `field=column` nor `field:=value`.
    #[error(
        "column mapping entry {entry:?} is neither field=column (rename a column) nor field:=value (a fixed value); entries are separated by ';'"
    )]
    Malformed {
        /// The entry as written.
        entry: String,
    },
    /// The target is not a field of the catalog.
    #[error("column mapping entry {entry:?}: {name:?} is not a Meta field{}", suggestion.map(|field| format!("; did you mean {field}?")).unwrap_or_default())]
    UnknownField {
        /// The entry as written.
        entry: String,
        /// The unknown name.
        name: String,
        /// The nearest field, when one is close.
        suggestion: Option<Field>,
    },
    /// Two entries give one field.
    #[error(
        "column mapping entries {first:?} and {second:?} both give {field}; keep only one of them"
    )]
    TwoToOneField {
        /// The field.
        field: Field,
        /// The first entry.
        first: String,
        /// The second entry.
        second: String,
    },
    /// A field that must come from a column: a fixed `id` makes every row one product, a fixed
    /// `method` deletes (or updates) everything.
    #[error(
        "column mapping entry {entry:?}: {field} cannot be one fixed value for every row ({why}); read it from a column instead ({field}=column)"
    )]
    NotFixable {
        /// The entry as written.
        entry: String,
        /// The field.
        field: Field,
        /// What a fixed value would do.
        why: &'static str,
    },
    /// One column renamed twice.
    #[error(
        "column mapping entries {first:?} and {second:?} both rename column {column:?}; keep only one"
    )]
    ColumnTwice {
        /// The column.
        column: String,
        /// The first entry.
        first: String,
        /// The second entry.
        second: String,
    },
}

impl ColumnMapping {
    /// True when the mapping changes nothing.
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty() && self.fixed.is_empty()
    }

    /// The field a header column is read as: a rename, else the field of the same name.
    pub fn field_of(&self, column: &str) -> Option<Field> {
        let column = column.trim();
        self.renames
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(column))
            .map(|(_, field)| *field)
            .or_else(|| Field::from_header(column))
    }

    /// The renamed columns, each with the field it is read as, in the order written.
    pub fn renames(&self) -> &[(String, Field)] {
        &self.renames
    }

    /// The fields given a fixed value, with it.
    pub fn fixed(&self) -> &[(Field, String)] {
        &self.fixed
    }

    /// Whether `field` is renamed from another column.
    pub fn is_renamed(&self, field: Field) -> bool {
        self.renames.iter().any(|(_, target)| *target == field)
    }
}

impl FromStr for ColumnMapping {
    type Err = MappingError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut mapping = ColumnMapping::default();
        // The entry that set each field, for the message naming both.
        let mut set_by: Vec<(Field, String)> = Vec::new();
        let mut renamed_by: Vec<(String, String)> = Vec::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (target, fixed, value) = match entry.split_once(":=") {
                Some((target, value)) => (target, true, value),
                None => match entry.split_once('=') {
                    Some((target, column)) => (target, false, column),
                    None => {
                        return Err(MappingError::Malformed {
                            entry: entry.to_owned(),
                        });
                    }
                },
            };
            let (target, value) = (target.trim(), value.trim());
            if target.is_empty() || (value.is_empty() && !fixed) {
                return Err(MappingError::Malformed {
                    entry: entry.to_owned(),
                });
            }
            let field = Field::from_header(target).ok_or_else(|| MappingError::UnknownField {
                entry: entry.to_owned(),
                name: target.to_owned(),
                suggestion: Field::nearest(target),
            })?;
            let not_fixable = match field {
                Field::Id => Some("every row would be the same product"),
                Field::Method => Some("every row would be deleted, or none"),
                _ => None,
            };
            if let (true, Some(why)) = (fixed, not_fixable) {
                return Err(MappingError::NotFixable {
                    entry: entry.to_owned(),
                    field,
                    why,
                });
            }
            if let Some((_, first)) = set_by.iter().find(|(f, _)| *f == field) {
                return Err(MappingError::TwoToOneField {
                    field,
                    first: first.clone(),
                    second: entry.to_owned(),
                });
            }
            set_by.push((field, entry.to_owned()));
            if fixed {
                mapping.fixed.push((field, value.to_owned()));
            } else {
                if let Some((_, first)) = renamed_by
                    .iter()
                    .find(|(column, _)| column.eq_ignore_ascii_case(value))
                {
                    return Err(MappingError::ColumnTwice {
                        column: value.to_owned(),
                        first: first.clone(),
                        second: entry.to_owned(),
                    });
                }
                renamed_by.push((value.to_owned(), entry.to_owned()));
                mapping.renames.push((value.to_owned(), field));
            }
        }
        Ok(mapping)
    }
}

impl fmt::Display for ColumnMapping {
    /// The mapping as `validate` shows it: `sale_price <- column "salePrice"; condition = "new"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (column, field) in &self.renames {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{field} <- column {column:?}")?;
        }
        for (field, value) in &self.fixed {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{field} = {value:?} in every row")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_and_fixed_values_are_read() {
        let mapping: ColumnMapping = " sale_price = salePrice ; condition:=new; brand=Marke;"
            .parse()
            .expect("valid");
        assert_eq!(mapping.field_of("SALEPRICE "), Some(Field::SalePrice));
        assert_eq!(mapping.field_of("marke"), Some(Field::Brand));
        assert_eq!(mapping.field_of("title"), Some(Field::Title));
        assert_eq!(mapping.field_of("other"), None);
        assert_eq!(mapping.fixed(), [(Field::Condition, "new".to_owned())]);
        assert_eq!(
            mapping.to_string(),
            "sale_price <- column \"salePrice\"; brand <- column \"Marke\"; condition = \"new\" in every row"
        );
        assert!("".parse::<ColumnMapping>().expect("empty").is_empty());
    }

    #[test]
    fn bad_entries_are_named_with_the_fix() {
        for (text, message) in [
            (
                "salePrice",
                "column mapping entry \"salePrice\" is neither field=column (rename a column) nor field:=value (a fixed value); entries are separated by ';'",
            ),
            (
                "saleprise=Sale",
                "column mapping entry \"saleprise=Sale\": \"saleprise\" is not a Meta field; did you mean sale_price?",
            ),
            (
                "colour_code=Col",
                "column mapping entry \"colour_code=Col\": \"colour_code\" is not a Meta field",
            ),
            (
                "brand=Marke; brand=Hersteller",
                "column mapping entries \"brand=Marke\" and \"brand=Hersteller\" both give brand; keep only one of them",
            ),
            (
                "condition=Zustand; condition:=new",
                "column mapping entries \"condition=Zustand\" and \"condition:=new\" both give condition; keep only one of them",
            ),
            (
                "brand=X; mpn=x",
                "column mapping entries \"brand=X\" and \"mpn=x\" both rename column \"x\"; keep only one",
            ),
            (
                "id:=SKU-1",
                "column mapping entry \"id:=SKU-1\": id cannot be one fixed value for every row (every row would be the same product); read it from a column instead (id=column)",
            ),
            (
                "method := delete",
                "column mapping entry \"method := delete\": method cannot be one fixed value for every row (every row would be deleted, or none); read it from a column instead (method=column)",
            ),
            (
                "title=",
                "column mapping entry \"title=\" is neither field=column (rename a column) nor field:=value (a fixed value); entries are separated by ';'",
            ),
        ] {
            let error = text.parse::<ColumnMapping>().expect_err(text);
            assert_eq!(error.to_string(), message, "{text}");
        }
    }
}
