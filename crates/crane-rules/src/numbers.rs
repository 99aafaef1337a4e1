//! Number words ("forty-two", "one hundred and five", "three point five") and ordinals
//! ("first", "2nd", "last") used by the arithmetic and todo-reference parsers.

use crate::text::{Kind, Tok};

fn unit(w: &str) -> Option<u64> {
    Some(match w {
        "zero" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

fn tens(w: &str) -> Option<u64> {
    Some(match w {
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

fn scale(w: &str) -> Option<u64> {
    Some(match w {
        "thousand" => 1_000,
        "million" => 1_000_000,
        "billion" => 1_000_000_000,
        "trillion" => 1_000_000_000_000,
        _ => return None,
    })
}

/// True if `w` can start a number phrase.
pub(crate) fn is_number_word(w: &str) -> bool {
    w.split('-').all(|p| unit(p).is_some() || tens(p).is_some())
        && !w.is_empty()
        && !w.starts_with('-')
}

/// Parses the longest number phrase at the start of `toks`. Returns the value as decimal text
/// and the number of tokens used. Linear in the tokens used.
pub(crate) fn parse_number_words(toks: &[Tok]) -> Option<(String, usize)> {
    let mut total: u64 = 0;
    let mut current: u64 = 0;
    let mut used = 0;
    // What the last word was, to reject "one two" and "twenty thirty".
    #[derive(PartialEq, Clone, Copy)]
    enum Last {
        None,
        Unit,
        Tens,
        Hundred,
        Scale,
    }
    let mut last = Last::None;
    let mut i = 0;
    while let Some(t) = toks.get(i) {
        let Some(w) = t.word() else { break };
        if w == "and" {
            // "one hundred and five": only after hundred/thousand and before a small number.
            let next_small = toks
                .get(i + 1)
                .and_then(Tok::word)
                .is_some_and(is_number_word);
            if matches!(last, Last::Hundred | Last::Scale) && next_small {
                i += 1;
                continue;
            }
            break;
        }
        if w == "hundred" {
            if !matches!(last, Last::Unit | Last::Tens) {
                break;
            }
            current = current.checked_mul(100)?;
            last = Last::Hundred;
        } else if let Some(s) = scale(w) {
            if last == Last::None || last == Last::Scale {
                break;
            }
            total = total.checked_add(current.checked_mul(s)?)?;
            current = 0;
            last = Last::Scale;
        } else if is_number_word(w) {
            let mut value = 0;
            let mut parts_last = last;
            for part in w.split('-') {
                if let Some(u) = unit(part) {
                    if matches!(parts_last, Last::Unit) || (parts_last == Last::Tens && u >= 10) {
                        return finish(total, current, used, toks);
                    }
                    value += u;
                    parts_last = Last::Unit;
                } else if let Some(t) = tens(part) {
                    if matches!(parts_last, Last::Unit | Last::Tens) {
                        return finish(total, current, used, toks);
                    }
                    value += t;
                    parts_last = Last::Tens;
                }
            }
            if matches!(last, Last::Unit) || (last == Last::Tens && value >= 10) {
                break;
            }
            current = current.checked_add(value)?;
            last = parts_last;
        } else {
            break;
        }
        i += 1;
        used = i;
    }
    finish(total, current, used, toks)
}

/// Completes a parse: adds a "point five" decimal tail if present.
fn finish(total: u64, current: u64, used: usize, toks: &[Tok]) -> Option<(String, usize)> {
    if used == 0 {
        return None;
    }
    let value = total.checked_add(current)?;
    let mut text = value.to_string();
    let mut used = used;
    if toks.get(used).is_some_and(|t| t.is_word("point")) {
        let mut digits = String::new();
        let mut j = used + 1;
        while let Some(d) = toks
            .get(j)
            .and_then(Tok::word)
            .and_then(unit)
            .filter(|d| *d < 10)
        {
            digits.push_str(&d.to_string());
            j += 1;
        }
        if !digits.is_empty() {
            text = format!("{text}.{digits}");
            used = j;
        }
    }
    Some((text, used))
}

/// The 1-based position named by an ordinal word ("first" = 1), or `None`.
pub(crate) fn ordinal_word(w: &str) -> Option<i64> {
    Some(match w {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        _ => return None,
    })
}

/// Parses an ordinal at the start of `toks`: a word ("third") or digits with a suffix glued on
/// ("3rd"). Returns the 1-based position and the tokens used.
pub(crate) fn parse_ordinal(toks: &[Tok]) -> Option<(i64, usize)> {
    let first = toks.first()?;
    if let Some(n) = first.word().and_then(ordinal_word) {
        return Some((n, 1));
    }
    if first.kind == Kind::Number && first.lower.bytes().all(|b| b.is_ascii_digit()) {
        let suffix = toks.get(1)?;
        let glued = suffix.start == first.end;
        if glued && matches!(suffix.word(), Some("st" | "nd" | "rd" | "th")) {
            let n: i64 = first.lower.parse().ok()?;
            return (n >= 1).then_some((n, 2));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn words(s: &str) -> Option<(String, usize)> {
        parse_number_words(&tokenize(s))
    }

    #[test]
    fn number_phrases() {
        assert_eq!(words("seven times"), Some(("7".into(), 1)));
        assert_eq!(words("forty-two"), Some(("42".into(), 1)));
        assert_eq!(words("twenty one"), Some(("21".into(), 2)));
        assert_eq!(words("one hundred and five and"), Some(("105".into(), 4)));
        assert_eq!(
            words("two thousand three hundred"),
            Some(("2300".into(), 4))
        );
        assert_eq!(words("three point one four"), Some(("3.14".into(), 4)));
        assert_eq!(words("one two"), Some(("1".into(), 1)));
        assert_eq!(words("twenty thirty"), Some(("20".into(), 1)));
        assert_eq!(words("hundred"), None);
        assert_eq!(words("apples"), None);
    }

    #[test]
    fn ordinals() {
        assert_eq!(parse_ordinal(&tokenize("second one")), Some((2, 1)));
        assert_eq!(parse_ordinal(&tokenize("3rd")), Some((3, 2)));
        assert_eq!(parse_ordinal(&tokenize("3 rd")), None);
        assert_eq!(parse_ordinal(&tokenize("0th")), None);
    }
}
