//! Text formatting shared by what people read: alert reasons, webhook messages, reports.

/// Whole numbers without a fraction, others to two places: "12", "0.35". Huge values (beyond
/// what an f64 holds exactly as an integer) keep two places rather than print 16+ made-up digits.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(-75.0), "-75");
        assert_eq!(number(0.354), "0.35");
        assert_eq!(number(1e20), "100000000000000000000.00");
        assert_eq!(truncate_at_char("héllo", 2), "h");
    }
}
