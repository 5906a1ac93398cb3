//! Country calling codes (ITU-T E.164 assignments): which code a phone number in E.164 digits
//! starts with, so that a pool can prefer numbers of the recipient's country.
//!
//! The assigned codes form a prefix-free set (no code is the start of another), so the match
//! is unambiguous; the lookup still tries the longest prefix first.

/// Every assigned country calling code (and the shared international services such as 800,
/// 870, 881–883), ascending. Codes 1 (NANP) and 7 (Russia, Kazakhstan) cover several
/// countries each; that is fine for a country preference.
pub const CALLING_CODES: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
    55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211,
    212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
    235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298,
    299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377,
    378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675,
    676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808, 850,
    852, 853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965, 966,
    967, 968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992, 993, 994, 995, 996, 998,
];

/// The calling code a number in E.164 digits (no `+`) starts with; `None` when the input is
/// not all digits or starts with no assigned code.
pub fn calling_code(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (1..=3.min(digits.len())).rev().find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        CALLING_CODES.binary_search(&code).is_ok().then_some(code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_prefix_free() {
        assert!(CALLING_CODES.windows(2).all(|w| w[0] < w[1]));
        for &a in CALLING_CODES {
            for &b in CALLING_CODES {
                let (a, b) = (a.to_string(), b.to_string());
                assert!(a == b || !b.starts_with(&a), "{a} is a prefix of {b}");
            }
        }
    }

    #[test]
    fn codes_of_common_numbers() {
        assert_eq!(calling_code("5511999999999"), Some(55), "Brazil");
        assert_eq!(calling_code("14155550100"), Some(1), "United States");
        assert_eq!(calling_code("447700900123"), Some(44), "United Kingdom");
        assert_eq!(calling_code("351912345678"), Some(351), "Portugal");
        assert_eq!(calling_code("2348012345678"), Some(234), "Nigeria");
        assert_eq!(calling_code("79161234567"), Some(7), "Russia");
        assert_eq!(calling_code("380501234567"), Some(380), "Ukraine");
        assert_eq!(calling_code("9715012345678"), Some(971), "United Arab Emirates");
    }

    #[test]
    fn unassigned_or_malformed_input_has_no_code() {
        assert_eq!(calling_code(""), None);
        assert_eq!(calling_code("+5511999999999"), None);
        assert_eq!(calling_code("0800123"), None);
        assert_eq!(calling_code("28123456"), None, "28x is unassigned");
        assert_eq!(calling_code("42"), None, "42 alone is no code");
        assert_eq!(calling_code("2"), None);
    }
}
