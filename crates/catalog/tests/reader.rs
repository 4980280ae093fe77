//! File-level and row-level behaviour of the streaming reader.

use catalog::{Field, FileError, ProblemKind, ProductReader, ReaderLimits, Row};

const HEADER: &str = catalog::REQUIRED_HEADER;
const GOOD: &str = "SKU-1,Blue mug,A blue mug.,https://shop.example/p/1,https://cdn.example/1.jpg,in stock,25.99 USD,Acme,new,Home > Mugs";

/// What one row turned into: line, id, and problem codes (empty when valid).
#[derive(Debug, PartialEq)]
struct Outcome {
    line: u64,
    id: Option<String>,
    problems: Vec<&'static str>,
}

fn read_all(bytes: &[u8]) -> Result<Vec<Outcome>, FileError> {
    read_with(bytes, ReaderLimits::default())
}

fn read_with(bytes: &[u8], limits: ReaderLimits) -> Result<Vec<Outcome>, FileError> {
    let mut reader = ProductReader::with_limits(bytes, limits)?;
    let mut out = Vec::new();
    while let Some(row) = reader.next_row()? {
        out.push(match row {
            Row::Valid { line, product } => Outcome {
                line,
                id: Some(product.id.to_owned()),
                problems: vec![],
            },
            Row::Rejected(rejected) => Outcome {
                line: rejected.line,
                id: rejected.id,
                problems: rejected.problems.iter().map(|p| p.kind.code()).collect(),
            },
        });
    }
    Ok(out)
}

fn valid(line: u64, id: &str) -> Outcome {
    Outcome {
        line,
        id: Some(id.to_owned()),
        problems: vec![],
    }
}

#[test]
fn a_clean_file_reads_every_row_with_its_line() {
    let csv = format!("{HEADER}\n{GOOD}\n{}\n", GOOD.replace("SKU-1", "SKU-2"));
    assert_eq!(
        read_all(csv.as_bytes()).unwrap(),
        vec![valid(2, "SKU-1"), valid(3, "SKU-2")]
    );
}

#[test]
fn utf8_bom_and_crlf_are_accepted() {
    let csv = format!(
        "\u{feff}{HEADER}\r\n{GOOD}\r\n\r\n{}\r\n",
        GOOD.replace("SKU-1", "SKU-2")
    );
    assert_eq!(
        read_all(csv.as_bytes()).unwrap(),
        vec![valid(2, "SKU-1"), valid(4, "SKU-2")]
    );
}

#[test]
fn crlf_inside_quoted_fields_keeps_later_line_numbers_right() {
    let multi = GOOD.replace("A blue mug.", "\"one\r\ntwo\"");
    let csv = format!(
        "{HEADER}\r\n{multi}\r\n{}\r\n",
        GOOD.replace("SKU-1", "SKU-2")
    );
    assert_eq!(
        read_all(csv.as_bytes()).unwrap(),
        vec![valid(2, "SKU-1"), valid(4, "SKU-2")]
    );
}

#[test]
fn quoted_fields_with_commas_quotes_and_newlines_keep_line_numbers_right() {
    let multi = "SKU-1,\"Mug, blue\",\"Line one\nline \"\"two\"\"\nline three\",https://shop.example/p/1,https://cdn.example/1.jpg,in stock,25.99 USD,Acme,new,";
    let csv = format!("{HEADER}\n{multi}\n{}\n", GOOD.replace("SKU-1", "SKU-2"));
    let mut reader = ProductReader::new(csv.as_bytes()).unwrap();
    match reader.next_row().unwrap().unwrap() {
        Row::Valid { line, product } => {
            assert_eq!(line, 2);
            assert_eq!(product.title, "Mug, blue");
            assert_eq!(
                product.get(Field::Description),
                Some("Line one\nline \"two\"\nline three")
            );
        }
        Row::Rejected(r) => panic!("rejected: {r:?}"),
    }
    // The record above spans lines 2-4, so the next one starts on line 5.
    match reader.next_row().unwrap().unwrap() {
        Row::Valid { line, .. } => assert_eq!(line, 5),
        Row::Rejected(r) => panic!("rejected: {r:?}"),
    }
}

#[test]
fn columns_may_come_in_any_order_and_case_with_extras_ignored() {
    let csv = "Brand, PRICE ,colour,id,title,description,link,image_link,availability,condition,product_type,\nAcme,5 EUR,red,A1,T,D,https://a.example/,https://a.example/i.png,preorder,used,,\n";
    let mut reader = ProductReader::new(csv.as_bytes()).unwrap();
    assert_eq!(reader.extra_columns(), ["colour", "(unnamed column 12)"]);
    match reader.next_row().unwrap().unwrap() {
        Row::Valid { product, .. } => {
            assert_eq!(product.get(Field::Brand), Some("Acme"));
            assert_eq!(product.price().unwrap().to_string(), "5 EUR");
            assert_eq!(product.get(Field::Availability), Some("preorder"));
        }
        Row::Rejected(r) => panic!("rejected: {r:?}"),
    }
}

#[test]
fn missing_columns_reject_the_file_naming_each() {
    // Issue 14: product_type is optional now (it was required); price still is, and one of
    // brand, gtin, mpn is needed.
    let csv = "id,title,description,link,image_link,availability,condition\nA,B,C,D,E,F,G\n";
    let err = read_all(csv.as_bytes()).unwrap_err();
    match &err {
        FileError::MissingColumns { missing, .. } => {
            assert_eq!(missing, &vec!["price", "brand, gtin or mpn"])
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.starts_with("line 1: missing required column(s) price, brand, gtin or mpn"));
}

#[test]
fn only_the_columns_a_file_needs_must_be_present() {
    let csv = "id,title,description,link,image_link,availability,condition,price,gtin\n\
               A,T,D,https://a.example/,https://a.example/i.png,in stock,new,5 EUR,4006381333931\n";
    assert_eq!(read_all(csv.as_bytes()).unwrap(), vec![valid(2, "A")]);
    // A file of deletes needs only id and method.
    let csv = "id,method\nA,delete\nB,update\n";
    let rows = read_all(csv.as_bytes()).unwrap();
    assert_eq!(rows[0], valid(2, "A"));
    assert_eq!(rows[1].line, 3);
    assert!(
        rows[1]
            .problems
            .iter()
            .all(|code| *code == "missing_column" || *code == "empty")
    );
    assert!(rows[1].problems.contains(&"missing_column"));
}

#[test]
fn unknown_columns_are_named_once_with_the_nearest_field() {
    let csv = format!("{HEADER},salePrice,warehouse\n{GOOD},4 USD,W1\n");
    let reader = ProductReader::new(csv.as_bytes()).unwrap();
    assert_eq!(
        reader.layout().extra_columns_warning().as_deref(),
        Some("extra columns ignored: salePrice (did you mean sale_price?), warehouse")
    );
}

#[test]
fn a_duplicated_required_column_rejects_the_file() {
    let csv = format!("{HEADER},Title\n");
    assert!(matches!(
        read_all(csv.as_bytes()),
        Err(FileError::DuplicateColumn {
            name: "title",
            first: 2,
            second: 11
        })
    ));
}

#[test]
fn empty_and_blank_files_are_rejected_as_empty() {
    for csv in ["", "\n\n", "\r\n"] {
        assert!(
            matches!(read_all(csv.as_bytes()), Err(FileError::Empty)),
            "{csv:?}"
        );
    }
}

#[test]
fn a_header_only_file_is_rejected_as_having_no_rows() {
    for csv in [
        HEADER.to_owned(),
        format!("{HEADER}\n"),
        format!("{HEADER}\r\n\r\n"),
    ] {
        assert!(
            matches!(read_all(csv.as_bytes()), Err(FileError::NoRows)),
            "{csv:?}"
        );
    }
}

#[test]
fn ragged_rows_are_rejected_with_their_line_and_id() {
    let csv = format!(
        "{HEADER}\n{GOOD},extra\nSKU-9,short\n{}\n",
        GOOD.replace("SKU-1", "SKU-3")
    );
    let rows = read_all(csv.as_bytes()).unwrap();
    assert_eq!(
        rows,
        vec![
            Outcome {
                line: 2,
                id: Some("SKU-1".into()),
                problems: vec!["field_count"]
            },
            Outcome {
                line: 3,
                id: Some("SKU-9".into()),
                problems: vec!["field_count"]
            },
            valid(4, "SKU-3"),
        ]
    );
}

#[test]
fn invalid_utf8_in_a_row_rejects_the_row_not_the_file() {
    let mut csv = format!("{HEADER}\n").into_bytes();
    csv.extend_from_slice(&GOOD.replace("Blue mug", "Blue m\u{fc}g").into_bytes());
    // Replace the UTF-8 'ü' (C3 BC) with Latin-1 'ü' (FC): a mixed-encoding export.
    let at = csv.windows(2).position(|w| w == [0xC3, 0xBC]).unwrap();
    csv.splice(at..at + 2, [0xFC]);
    csv.extend_from_slice(format!("\n{}\n", GOOD.replace("SKU-1", "SKU-2")).as_bytes());
    let rows = read_all(&csv).unwrap();
    assert_eq!(rows[0].problems, vec!["not_utf8"]);
    assert_eq!(rows[0].id.as_deref(), Some("SKU-1"));
    assert_eq!(rows[1], valid(3, "SKU-2"));
}

#[test]
fn an_invalid_utf8_header_rejects_the_file() {
    let mut csv = HEADER.as_bytes().to_vec();
    csv.extend_from_slice(b",\xFF\n");
    csv.extend_from_slice(GOOD.as_bytes());
    assert!(matches!(read_all(&csv), Err(FileError::HeaderNotUtf8)));
}

#[test]
fn a_row_breaking_several_rules_lists_every_reason() {
    let csv = format!(
        "{HEADER}\n,{},,ftp://x,https://a.example/i,soon,$4,,mint,\n",
        "t".repeat(201)
    );
    let rows = read_all(csv.as_bytes()).unwrap();
    assert_eq!(rows[0].id, None);
    let mut codes = rows[0].problems.clone();
    codes.sort_unstable();
    assert_eq!(
        codes,
        vec![
            "bad_price",
            "bad_url",
            "empty",
            "empty",
            "empty",
            "not_allowed",
            "not_allowed",
            "too_long"
        ]
    );
}

#[test]
fn an_unclosed_quote_ends_in_a_clear_record_too_large_error() {
    let limits = ReaderLimits {
        max_record_bytes: 1000,
        ..ReaderLimits::default()
    };
    let mut csv = format!("{HEADER}\n{GOOD}\nSKU-2,\"unclosed\n").into_bytes();
    csv.extend(std::iter::repeat_n(b'x', 200_000));
    let mut reader = ProductReader::with_limits(&csv[..], limits).unwrap();
    assert!(matches!(reader.next_row(), Ok(Some(Row::Valid { .. }))));
    let err = reader.next_row().unwrap_err();
    assert!(
        matches!(
            err,
            FileError::RecordTooLarge {
                line: 3,
                max_bytes: 1000
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("unclosed quote"));
}

#[test]
fn one_endless_line_is_stopped_without_reading_it_all() {
    struct Endless(u64);
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b'a');
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }
    let mut source = Endless(0);
    let limits = ReaderLimits::default();
    let err = ProductReader::with_limits(&mut source, limits)
        .err()
        .unwrap();
    assert!(
        matches!(err, FileError::RecordTooLarge { line: 1, .. }),
        "{err:?}"
    );
    assert!(source.0 < 2 * limits.max_record_bytes + 1024 * 1024);
}

#[test]
fn row_and_file_size_limits_are_enforced() {
    let csv = format!("{HEADER}\n{GOOD}\n{GOOD}\n{GOOD}\n");
    let rows_limited = ReaderLimits {
        max_rows: 2,
        ..ReaderLimits::default()
    };
    assert!(matches!(
        read_with(csv.as_bytes(), rows_limited),
        Err(FileError::TooManyRows { max: 2 })
    ));
    let bytes_limited = ReaderLimits {
        max_file_bytes: 10,
        max_record_bytes: 10,
        ..ReaderLimits::default()
    };
    let big = format!("{HEADER}\n{}", format!("{GOOD}\n").repeat(2000));
    assert!(matches!(
        read_with(big.as_bytes(), bytes_limited),
        Err(FileError::FileTooLarge { .. } | FileError::RecordTooLarge { .. })
    ));
}

#[test]
fn too_many_columns_rejects_the_file() {
    let csv = format!("{HEADER}{}\n", ",x".repeat(100_000));
    let limits = ReaderLimits {
        max_record_bytes: 10 * 1024 * 1024,
        ..ReaderLimits::default()
    };
    assert!(matches!(
        read_with(csv.as_bytes(), limits),
        Err(FileError::TooManyColumns {
            found: 100_010,
            max: 1000
        })
    ));
}

#[test]
fn binary_garbage_never_panics() {
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let _ = read_all(&garbage);
    let mut with_nul = format!("{HEADER}\n").into_bytes();
    with_nul.extend_from_slice(b"\0\0\0,\0\n");
    let rows = read_all(&with_nul).unwrap();
    assert_eq!(rows[0].problems, vec!["field_count"]);
}

#[test]
fn superseded_problem_kind_has_a_readable_message() {
    let problem = catalog::Problem {
        field: Some(catalog::Field::Id),
        kind: ProblemKind::Superseded { by_line: 9 },
    };
    assert_eq!(
        problem.to_string(),
        "id appears again on line 9; the last row wins, so this one is not sent"
    );
}

#[test]
fn position_tracks_lines_bytes_and_rows_for_resuming() {
    let csv = format!("{HEADER}\n{GOOD}\n{}\n", GOOD.replace("SKU-1", "SKU-2"));
    let mut reader = ProductReader::new(csv.as_bytes()).unwrap();
    reader.next_row().unwrap();
    let at = reader.position();
    assert_eq!(at.line, 3);
    assert_eq!(at.rows, 1);
    assert_eq!(at.byte as usize, HEADER.len() + 1 + GOOD.len() + 1);
    // Resume from that byte with the same layout: the next row keeps its real line number.
    let layout = reader.layout().clone();
    let rest = &csv.as_bytes()[at.byte as usize..];
    let mut resumed = ProductReader::resume(rest, layout, at, ReaderLimits::default());
    match resumed.next_row().unwrap().unwrap() {
        Row::Valid { line, product } => {
            assert_eq!(line, 3);
            assert_eq!(product.id, "SKU-2");
        }
        Row::Rejected(r) => panic!("{r:?}"),
    }
    assert!(resumed.next_row().unwrap().is_none());
    assert_eq!(resumed.position().rows, 2);
}

#[test]
fn a_column_mapping_renames_columns_and_fixes_values() {
    let mapping: catalog::ColumnMapping = "sale_price=salePrice; brand=Marke; condition:=new"
        .parse()
        .unwrap();
    // No condition column at all: the fixed value stands in for it.
    let csv = "id,title,description,link,image_link,availability,price,Marke,salePrice\n\
               A,T,D,https://a.example/,https://a.example/i.png,in stock,5 EUR,Acme,4 EUR\n\
               B,T,D,https://a.example/,https://a.example/i.png,in stock,5 EUR,Acme,6 EUR\n";
    let mut reader =
        ProductReader::with_mapping(csv.as_bytes(), ReaderLimits::default(), &mapping).unwrap();
    assert!(reader.extra_columns().is_empty());
    match reader.next_row().unwrap().unwrap() {
        Row::Valid { product, .. } => {
            assert_eq!(product.get(Field::Brand), Some("Acme"));
            assert_eq!(product.get(Field::Condition), Some("new"));
            assert_eq!(product.sale_price().unwrap().to_string(), "4 EUR");
        }
        Row::Rejected(r) => panic!("{r:?}"),
    }
    match reader.next_row().unwrap().unwrap() {
        Row::Rejected(r) => assert_eq!(r.problems[0].kind.code(), "sale_above_price"),
        Row::Valid { .. } => panic!("a sale price above the price passed"),
    }
    // Without the mapping the same file misses its condition and identifier columns.
    assert!(matches!(
        ProductReader::new(csv.as_bytes()),
        Err(FileError::MissingColumns { .. })
    ));
    // A renamed column and a column of the field's own name are one field twice.
    let twice = "id,brand,Marke\nA,B,C\n";
    assert!(matches!(
        ProductReader::with_mapping(twice.as_bytes(), ReaderLimits::default(), &mapping),
        Err(FileError::DuplicateColumn { name: "brand", .. })
    ));
}
