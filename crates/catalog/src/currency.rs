//! ISO 4217 currency codes accepted in the `price` column.

/// Active ISO 4217 alphabetic codes, in alphabetical order.
///
/// Kept in the source rather than pulled from a crate: the list changes every few years, a
/// catalog needs only membership, and a dependency for 180 strings would cost more than it saves.
const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
    "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// Every three-letter code `AAA` to `ZZZ` as one bit, set for the codes in [`CODES`].
///
/// Checked on every row: a bit test costs a few instructions, where a binary search made
/// eight string comparisons with unpredictable branches.
const KNOWN: [u64; BITSET_WORDS] = {
    let mut bits = [0u64; BITSET_WORDS];
    let mut i = 0;
    while i < CODES.len() {
        let code = CODES[i].as_bytes();
        assert!(code.len() == 3, "ISO 4217 codes have three letters");
        let index = match bit_index([code[0], code[1], code[2]]) {
            Some(index) => index,
            None => panic!("ISO 4217 codes are upper-case letters"),
        };
        bits[index / 64] |= 1 << (index % 64);
        i += 1;
    }
    bits
};

/// Words in [`KNOWN`]: one bit for each of the 26³ codes.
const BITSET_WORDS: usize = (26 * 26 * 26usize).div_ceil(64);

/// Position of an upper-case three-letter code in [`KNOWN`].
const fn bit_index(code: [u8; 3]) -> Option<usize> {
    if !(code[0].is_ascii_uppercase()
        && code[1].is_ascii_uppercase()
        && code[2].is_ascii_uppercase())
    {
        return None;
    }
    let [a, b, c] = [code[0] - b'A', code[1] - b'A', code[2] - b'A'];
    Some((a as usize * 26 + b as usize) * 26 + c as usize)
}

/// The upper-case form of `code` when that is an active ISO 4217 code, ignoring ASCII case.
pub fn known_upper(code: &str) -> Option<[u8; 3]> {
    let upper: [u8; 3] = code.as_bytes().try_into().ok()?;
    let upper = upper.map(|b| b.to_ascii_uppercase());
    let index = bit_index(upper)?;
    let known = KNOWN.get(index / 64)? & (1 << (index % 64)) != 0;
    known.then_some(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_and_the_bitset_holds_exactly_the_list() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
        let set: u32 = KNOWN.iter().map(|word| word.count_ones()).sum();
        assert_eq!(set as usize, CODES.len());
        for code in CODES {
            assert!(known_upper(code).is_some(), "{code}");
        }
    }

    #[test]
    fn knows_common_codes_in_any_case_and_rejects_others() {
        for code in ["USD", "EUR", "IQD", "JPY", "GBP", "XOF"] {
            assert_eq!(
                known_upper(code).as_ref().map(|c| c.as_slice()),
                Some(code.as_bytes()),
                "{code}"
            );
        }
        assert_eq!(known_upper("usd"), Some(*b"USD"));
        assert_eq!(known_upper("Eur"), Some(*b"EUR"));
        for code in ["US", "USDD", "XXX", "BTC", "", "€", "uß"] {
            assert_eq!(known_upper(code), None, "{code}");
        }
    }
}
