//! `Timestamp`: a UTC instant written as RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`.
//!
//! One spelling only (what TUF metadata uses for `expires`): UTC with a
//! literal `Z`, whole seconds, no offsets, no fractions, years 1970-9999.
//! Inside it is unix seconds, so comparisons are plain integer compares and
//! no clock is read here: callers pass "now" in.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {value:?} is not RFC 3339 UTC like \"2030-01-31T23:59:59Z\": {problem}")]
pub struct TimestampError {
    pub value: String,
    pub problem: &'static str,
}

const SECS_PER_DAY: u64 = 86_400;

impl Timestamp {
    pub const fn from_unix_seconds(secs: u64) -> Timestamp {
        Timestamp(secs)
    }

    pub const fn unix_seconds(self) -> u64 {
        self.0
    }

    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        let err = |problem| TimestampError {
            value: s.chars().take(40).collect(),
            problem,
        };
        let b = s.as_bytes();
        if b.len() != 20 {
            return Err(err("expected exactly 20 characters"));
        }
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return Err(err("separators must be '-', '-', 'T', ':', ':'"));
        }
        if b[19] != b'Z' {
            return Err(err("must end in 'Z' (UTC); offsets are not accepted"));
        }
        let num = |from: usize, to: usize| -> Result<u64, TimestampError> {
            b[from..to].iter().try_fold(0u64, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + u64::from(c - b'0'))
                } else {
                    Err(err("date and time fields must be decimal digits"))
                }
            })
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        if year < 1970 {
            return Err(err("years before 1970 are not accepted"));
        }
        if !(1..=12).contains(&month) {
            return Err(err("month must be 01-12"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(err("day does not exist in that month"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(err("time must be 00:00:00-23:59:59 (no leap seconds)"));
        }
        let days = days_from_epoch(year, month, day);
        Ok(Timestamp(
            days * SECS_PER_DAY + hour * 3600 + minute * 60 + second,
        ))
    }
}

fn is_leap(year: u64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a valid date (year >= 1970): whole years, then
/// whole months of that year, then the day.
fn days_from_epoch(year: u64, month: u64, day: u64) -> u64 {
    let leaps_before = |y: u64| (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400;
    let years = year - 1970;
    let mut days = years * 365 + leaps_before(year) - leaps_before(1970);
    for m in 1..month {
        days += days_in_month(year, m);
    }
    days + day - 1
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut days = self.0 / SECS_PER_DAY;
        let rem = self.0 % SECS_PER_DAY;
        // The Gregorian calendar repeats every 400 years (146,097 days), so
        // the loop below runs at most 400 times whatever the value.
        let mut year = 1970 + 400 * (days / 146_097);
        days %= 146_097;
        loop {
            let len = if is_leap(year) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
        }
        let mut month = 1;
        while days >= days_in_month(year, month) {
            days -= days_in_month(year, month);
            month += 1;
        }
        write!(
            f,
            "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
            days + 1,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        for (s, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:00:00Z", 951_825_600),
            ("2030-01-01T00:00:00Z", 1_893_456_000),
            ("2038-01-19T03:14:08Z", 2_147_483_648),
        ] {
            let t = Timestamp::parse(s).expect(s);
            assert_eq!(t.unix_seconds(), secs, "{s}");
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn other_spellings_are_refused() {
        for s in [
            "2030-01-01T00:00:00+00:00",
            "2030-01-01T00:00:00.5Z",
            "2030-01-01 00:00:00Z",
            "2030-01-01t00:00:00z",
            "2030-02-30T00:00:00Z",
            "2029-02-29T00:00:00Z",
            "2030-13-01T00:00:00Z",
            "2030-01-01T24:00:00Z",
            "2030-01-01T23:59:60Z",
            "1969-12-31T23:59:59Z",
            "20300101T000000Z",
            "",
            "1893456000",
        ] {
            assert!(Timestamp::parse(s).is_err(), "{s}");
        }
        let e = Timestamp::parse("2030-01-01T00:00:00+01:00").expect_err("offset");
        assert!(e.to_string().contains("2030-01-31T23:59:59Z"), "{e}");
    }

    proptest! {
        #[test]
        fn display_and_parse_agree(secs in 0u64..253_402_300_800) {
            let t = Timestamp::from_unix_seconds(secs);
            prop_assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        }

        #[test]
        fn display_is_cheap_for_any_value(secs in any::<u64>()) {
            let s = Timestamp::from_unix_seconds(secs).to_string();
            prop_assert!(s.ends_with('Z'));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            if let Ok(t) = Timestamp::parse(&s) {
                prop_assert_eq!(t.to_string(), s);
            }
        }
    }
}
