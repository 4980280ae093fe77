//! Realistic synthetic product exports, for benchmarks, memory checks and trying the tool.
//!
//! Field lengths follow a typical retail export (about 340 bytes a row): short ids, titles of
//! a few words, a description of a couple of sentences, two URLs and a category path. The
//! output is deterministic for a given seed.

use std::io::{self, Write};

const COLORS: [&str; 8] = [
    "Red", "Blue", "Green", "Black", "White", "Sand", "Plum", "Ocean",
];
const KINDS: [(&str, &str); 6] = [
    (
        "Mug",
        "Home & Garden > Kitchen & Dining > Tableware > Drinkware > Mugs",
    ),
    ("Backpack", "Luggage & Bags > Backpacks"),
    ("Desk Lamp", "Home & Garden > Lighting > Lamps"),
    (
        "Running Shoe",
        "Apparel & Accessories > Shoes > Athletic Shoes",
    ),
    (
        "Tea Towel",
        "Home & Garden > Linens & Bedding > Towels > Kitchen Towels",
    ),
    (
        "Phone Case",
        "Electronics > Communications > Telephony > Mobile Phone Accessories",
    ),
];
const AVAILABILITY: [&str; 4] = ["in stock", "in stock", "out of stock", "preorder"];
const PHRASES: [&str; 6] = [
    "Made to last, with a two-year warranty.",
    "Designed in Lisbon and tested by our own team.",
    "Ships in recycled packaging within two days.",
    "Easy to clean; see the care label for details.",
    "A customer favourite, now in a new colour.",
    "Lightweight, durable and ready for every day.",
];

/// A small, fast, seedable generator (xorshift64*); statistical quality is irrelevant here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Writes a header and `rows` valid products to `out`; returns the bytes written.
pub fn write_products<W: Write>(out: W, rows: u64, seed: u64) -> io::Result<u64> {
    let mut out = Counting {
        inner: out,
        bytes: 0,
    };
    let mut rng = Rng(seed | 1);
    writeln!(out, "{}", crate::REQUIRED_HEADER)?;
    for n in 0..rows {
        let color = rng.pick(&COLORS);
        let (kind, category) = KINDS[(rng.next() % KINDS.len() as u64) as usize];
        let cents = rng.next() % 20_000 + 99;
        writeln!(
            out,
            "SKU-{n:08},{color} {kind} {size},\"{color} {kind_lower}, size {size}. {p1} {p2}\",https://shop.example.com/products/sku-{n:08},https://cdn.example.com/images/sku-{n:08}-main.jpg,{availability},{whole}.{frac:02} EUR,Hearth & Co,new,{category}",
            size = ["S", "M", "L", "XL"][(n % 4) as usize],
            kind_lower = kind.to_lowercase(),
            p1 = rng.pick(&PHRASES),
            p2 = rng.pick(&PHRASES),
            availability = rng.pick(&AVAILABILITY),
            whole = cents / 100,
            frac = cents % 100,
        )?;
    }
    out.flush()?;
    Ok(out.bytes)
}

/// Writes a header of every field of the catalog (but `method`) and `rows` valid products
/// with every field filled, about 40 columns: variant families of four sizes, sale prices
/// with a date window, stock, extra images, identifiers and categories. Returns the bytes
/// written. Deterministic for a given seed.
pub fn write_wide_products<W: Write>(out: W, rows: u64, seed: u64) -> io::Result<u64> {
    let mut out = Counting {
        inner: out,
        bytes: 0,
    };
    let mut rng = Rng(seed | 1);
    let columns: Vec<&str> = crate::FIELDS
        .iter()
        .filter(|spec| spec.field != crate::Field::Method)
        .map(|spec| spec.name)
        .collect();
    writeln!(out, "{}", columns.join(","))?;
    let mut line = String::new();
    for n in 0..rows {
        use std::fmt::Write as _;
        let color = rng.pick(&COLORS);
        let (kind, category) = KINDS[(rng.next() % KINDS.len() as u64) as usize];
        let cents = rng.next() % 20_000 + 99;
        let sale = cents - cents / 5;
        let size = ["S", "M", "L", "XL"][(n % 4) as usize];
        let family = n / 4;
        line.clear();
        // Written in catalog order, one value per column of the header above.
        for spec in crate::FIELDS {
            if spec.field == crate::Field::Method {
                continue;
            }
            if spec.field != crate::Field::Id {
                line.push(',');
            }
            let _ = match spec.field {
                crate::Field::Id => write!(line, "SKU-{n:08}"),
                crate::Field::Title => write!(line, "{color} {kind} {size}"),
                crate::Field::Description => write!(
                    line,
                    "\"{color} {}, size {size}. {} {}\"",
                    kind.to_lowercase(),
                    rng.pick(&PHRASES),
                    rng.pick(&PHRASES)
                ),
                crate::Field::Availability => write!(line, "{}", rng.pick(&AVAILABILITY)),
                crate::Field::Condition => write!(line, "new"),
                crate::Field::Price => write!(line, "{}.{:02} EUR", cents / 100, cents % 100),
                crate::Field::Link => write!(line, "https://shop.example.com/products/sku-{n:08}"),
                crate::Field::ImageLink => {
                    write!(line, "https://cdn.example.com/images/sku-{n:08}-main.jpg")
                }
                crate::Field::Brand => write!(line, "Hearth & Co"),
                crate::Field::Gtin => write!(line, "{:013}", 4_006_381_000_000 + n),
                crate::Field::Mpn => write!(line, "HC-{family:06}-{size}"),
                crate::Field::RichTextDescription => write!(
                    line,
                    "\"<p>{color} {}, size {size}.</p><p>{}</p>\"",
                    kind.to_lowercase(),
                    rng.pick(&PHRASES)
                ),
                crate::Field::AdditionalImageLink => write!(
                    line,
                    "\"https://cdn.example.com/images/sku-{n:08}-back.jpg,https://cdn.example.com/images/sku-{n:08}-side.jpg\""
                ),
                crate::Field::SalePrice => write!(line, "{}.{:02} EUR", sale / 100, sale % 100),
                crate::Field::SalePriceEffectiveDate => {
                    write!(line, "2026-12-01T00:00+01:00/2026-12-31T23:59+01:00")
                }
                crate::Field::ItemGroupId => write!(line, "FAM-{family:06}"),
                crate::Field::Color => write!(line, "{color}"),
                crate::Field::Size => write!(line, "{size}"),
                crate::Field::Gender => write!(line, "unisex"),
                crate::Field::AgeGroup => write!(line, "adult"),
                crate::Field::Material => write!(line, "Recycled polyester"),
                crate::Field::Pattern => write!(line, "Solid"),
                crate::Field::ProductType => write!(line, "{category}"),
                crate::Field::GoogleProductCategory => write!(line, "{}", 500 + n % 400),
                crate::Field::FbProductCategory => write!(line, "{category}"),
                crate::Field::QuantityToSellOnFacebook => write!(line, "{}", rng.next() % 500),
                crate::Field::CustomLabel0 => write!(line, "season-2026"),
                crate::Field::CustomLabel1 => write!(line, "margin-{}", rng.next() % 5),
                crate::Field::CustomLabel2 => write!(line, "{kind}"),
                crate::Field::CustomLabel3 => write!(line, "{color}"),
                crate::Field::CustomLabel4 => write!(line, "web"),
                crate::Field::ShippingWeight => write!(line, "{}.{} kg", n % 3, n % 10),
                crate::Field::Video => {
                    write!(line, "https://cdn.example.com/videos/fam-{family:06}.mp4")
                }
                crate::Field::Status => write!(line, "active"),
                crate::Field::AdditionalVariantAttribute => write!(line, "Fit:Regular"),
                crate::Field::Method => Ok(()),
            };
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(out.bytes)
}

struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rows_are_valid_realistic_and_deterministic() {
        let mut a = Vec::new();
        let bytes = write_products(&mut a, 1000, 42).unwrap();
        assert_eq!(bytes as usize, a.len());
        let per_row = a.len() / 1000;
        assert!((250..=450).contains(&per_row), "{per_row} bytes a row");
        let mut b = Vec::new();
        write_products(&mut b, 1000, 42).unwrap();
        assert_eq!(a, b);
        let mut reader = crate::ProductReader::new(&a[..]).unwrap();
        let mut valid = 0;
        while let Some(row) = reader.next_row().unwrap() {
            assert!(matches!(row, crate::Row::Valid { .. }), "{row:?}");
            valid += 1;
        }
        assert_eq!(valid, 1000);
    }

    #[test]
    fn wide_rows_fill_every_field_and_are_valid() {
        let mut csv = Vec::new();
        write_wide_products(&mut csv, 400, 42).unwrap();
        let mut reader = crate::ProductReader::new(&csv[..]).unwrap();
        assert_eq!(reader.layout().width, crate::FIELD_COUNT - 1);
        assert!(reader.extra_columns().is_empty());
        let mut valid = 0;
        while let Some(row) = reader.next_row().unwrap() {
            match row {
                crate::Row::Valid { product, .. } => {
                    assert_eq!(product.fields().count(), crate::FIELD_COUNT - 1);
                }
                crate::Row::Rejected(rejected) => panic!("{rejected:?}"),
            }
            valid += 1;
        }
        assert_eq!(valid, 400);
    }
}
