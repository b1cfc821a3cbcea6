//! Reading command arguments: numbers exactly as Redis reads them, and option keywords.

use bytes::Bytes;

use super::error::{CommandError, CommandResult};

/// Parses a signed 64-bit integer the way Redis's `string2ll` does: optional `-`, no `+`, no
/// leading zeros, no spaces, nothing after the digits, no overflow.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    match bytes {
        [] => None,
        [b'0'] => Some(0),
        [b'-', rest @ ..] => {
            let magnitude = parse_magnitude(rest)?;
            // -(i64::MIN) does not fit in i64, so negate in u64 space.
            if magnitude <= i64::MAX as u64 + 1 {
                Some((magnitude as i64).wrapping_neg())
            } else {
                None
            }
        }
        digits => i64::try_from(parse_magnitude(digits)?).ok(),
    }
}

/// Digits with no leading zero, as an unsigned value.
fn parse_magnitude(digits: &[u8]) -> Option<u64> {
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Parses a float the way Redis's `string2ld` does: decimal or exponent notation, `inf` and
/// `-inf` allowed, no spaces, nothing trailing, never NaN.
pub fn parse_f64(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty()
        || text.starts_with(|c: char| c.is_whitespace())
        || text.ends_with(|c: char| c.is_whitespace())
    {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    // A finite number too large for a double is out of range (Redis's strtold sets ERANGE);
    // only a spelled-out infinity is infinite.
    let spelled_infinity = text
        .trim_start_matches(['+', '-'])
        .get(..3)
        .is_some_and(|start| start.eq_ignore_ascii_case("inf"));
    (!value.is_nan() && (value.is_finite() || spelled_infinity)).then_some(value)
}

/// An integer argument, or Redis's "not an integer" error.
pub fn int_arg(bytes: &[u8]) -> CommandResult<i64> {
    parse_i64(bytes).ok_or(CommandError::NotInteger)
}

/// A float argument, or Redis's "not a valid float" error.
pub fn float_arg(bytes: &[u8]) -> CommandResult<f64> {
    parse_f64(bytes).ok_or(CommandError::NotFloat)
}

/// Whether `arg` is the keyword `word` (ASCII case-insensitive).
pub fn is_keyword(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The arguments after the command name, read front to back.
pub struct ArgReader<'a> {
    args: &'a [Bytes],
    next: usize,
}

impl<'a> ArgReader<'a> {
    pub fn new(args: &'a [Bytes]) -> Self {
        ArgReader { args, next: 0 }
    }

    /// The next argument, if any.
    pub fn next(&mut self) -> Option<&'a Bytes> {
        let arg = self.args.get(self.next)?;
        self.next += 1;
        Some(arg)
    }

    /// The next argument, which an option requires: its absence is a syntax error.
    pub fn value(&mut self) -> CommandResult<&'a Bytes> {
        self.next().ok_or(CommandError::Syntax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_accept_redis_forms() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-3"), Some(-3.0));
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e308"), Some(1e308));
        for bad in [
            &b""[..],
            b"nan",
            b" 1",
            b"1 ",
            b"1.5x",
            b"abc",
            b"1e400",
            b"-1e400",
        ] {
            assert_eq!(parse_f64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
