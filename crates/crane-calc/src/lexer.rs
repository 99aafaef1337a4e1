//! The lexer: turns the input's characters into tokens, each tagged with
//! its 1-based character position, in one linear pass.

use crate::error::{CalcError, excerpt};
use crate::number::{Number, literal_value};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A number literal and its value.
    Number(Number),
    /// A name (constant or function), as written.
    Ident(String),
    /// `+`
    Plus,
    /// `-` or `−` (U+2212)
    Minus,
    /// `*` or `×`
    Star,
    /// `/` or `÷`
    Slash,
    /// `%`
    Percent,
    /// `^` or `**`
    Caret,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
}

/// A token and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    /// 1-based character position of the token's first character.
    pub(crate) position: usize,
    /// The source text, shortened for error messages.
    pub(crate) text: String,
}

/// Splits `chars` into tokens; whitespace separates tokens and is dropped.
pub(crate) fn tokenize(chars: &[char]) -> Result<Vec<Token>, CalcError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let position = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let starts_number =
            c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit()));
        let (kind, end) = if starts_number {
            lex_number(chars, i)
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = scan(chars, i, |ch| ch.is_ascii_alphanumeric() || ch == '_');
            (TokenKind::Ident(collect(chars, i, end)), end)
        } else {
            let kind = match c {
                '+' => TokenKind::Plus,
                '-' | '\u{2212}' => TokenKind::Minus,
                '*' if next == Some('*') => TokenKind::Caret,
                '*' | '×' => TokenKind::Star,
                '/' | '÷' => TokenKind::Slash,
                '%' => TokenKind::Percent,
                '^' => TokenKind::Caret,
                '(' => TokenKind::LParen,
                ')' => TokenKind::RParen,
                ',' => TokenKind::Comma,
                other => {
                    return Err(CalcError::Unexpected {
                        found: other.to_string(),
                        position,
                    });
                }
            };
            let len = if c == '*' && next == Some('*') { 2 } else { 1 };
            (kind, i + len)
        };
        tokens.push(Token {
            kind,
            position,
            text: excerpt(&collect(chars, i, end)),
        });
        i = end;
    }
    Ok(tokens)
}

/// Lexes the number literal starting at `start`: digits, an optional `.`
/// with more digits, and an optional exponent (`e`/`E`, optional sign, at
/// least one digit; an `e` not followed by that is left for the next token).
fn lex_number(chars: &[char], start: usize) -> (TokenKind, usize) {
    let is_digit = |ch: char| ch.is_ascii_digit();
    let int_end = scan(chars, start, is_digit);
    let int_digits = collect(chars, start, int_end);
    let mut end = int_end;
    let mut frac_digits = String::new();
    if chars.get(end) == Some(&'.') {
        let frac_end = scan(chars, end + 1, is_digit);
        frac_digits = collect(chars, end + 1, frac_end);
        end = frac_end;
    }
    let mut exponent: i64 = 0;
    if matches!(chars.get(end), Some('e' | 'E')) {
        let mut digits_start = end + 1;
        let negative = chars.get(digits_start) == Some(&'-');
        if matches!(chars.get(digits_start), Some('+' | '-')) {
            digits_start += 1;
        }
        let digits_end = scan(chars, digits_start, is_digit);
        if digits_end > digits_start {
            for ch in chars.get(digits_start..digits_end).unwrap_or_default() {
                let digit = i64::from(ch.to_digit(10).unwrap_or(0));
                // Saturate far beyond any representable exponent.
                exponent = (exponent * 10 + digit).min(1_000_000_000);
            }
            if negative {
                exponent = -exponent;
            }
            end = digits_end;
        }
    }
    let value = literal_value(&int_digits, &frac_digits, exponent);
    (TokenKind::Number(value), end)
}

/// The index of the first character at or after `from` that fails `accept`.
fn scan(chars: &[char], from: usize, accept: impl Fn(char) -> bool) -> usize {
    let mut end = from;
    while chars.get(end).is_some_and(|&ch| accept(ch)) {
        end += 1;
    }
    end
}

/// The characters in `from..to` as a string.
fn collect(chars: &[char], from: usize, to: usize) -> String {
    chars.get(from..to).unwrap_or_default().iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn kinds(input: &str) -> Vec<TokenKind> {
        let chars: Vec<char> = input.chars().collect();
        tokenize(&chars)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn num(mantissa: i64, scale: u32) -> TokenKind {
        TokenKind::Number(Number::Exact(Decimal::new(mantissa, scale)))
    }

    #[test]
    fn numbers_in_all_forms() {
        assert_eq!(kinds("12"), vec![num(12, 0)]);
        assert_eq!(kinds("3.5"), vec![num(35, 1)]);
        assert_eq!(kinds(".5"), vec![num(5, 1)]);
        assert_eq!(kinds("5."), vec![num(5, 0)]);
        assert_eq!(kinds("1e3"), vec![num(1000, 0)]);
        assert_eq!(kinds("2.5E-3"), vec![num(25, 4)]);
        assert_eq!(kinds("2e+2"), vec![num(200, 0)]);
    }

    #[test]
    fn an_e_without_exponent_digits_is_a_name() {
        assert_eq!(
            kinds("2e"),
            vec![num(2, 0), TokenKind::Ident("e".to_owned())]
        );
        assert_eq!(
            kinds("2e+"),
            vec![num(2, 0), TokenKind::Ident("e".to_owned()), TokenKind::Plus]
        );
    }

    #[test]
    fn operators_and_aliases() {
        use TokenKind::*;
        assert_eq!(
            kinds("+-−*×/÷%^**(),"),
            vec![
                Plus, Minus, Minus, Star, Star, Slash, Slash, Percent, Caret, Caret, LParen,
                RParen, Comma
            ]
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let chars: Vec<char> = "×  sqrt ( 2 )".chars().collect();
        let tokens = tokenize(&chars).unwrap();
        let positions: Vec<usize> = tokens.iter().map(|t| t.position).collect();
        assert_eq!(positions, vec![1, 4, 9, 11, 13]);
        assert_eq!(tokens[1].text, "sqrt");
    }

    #[test]
    fn unknown_characters_are_rejected_with_their_position() {
        let chars: Vec<char> = "2 + $".chars().collect();
        assert_eq!(
            tokenize(&chars),
            Err(CalcError::Unexpected {
                found: "$".to_owned(),
                position: 5
            })
        );
        let chars: Vec<char> = "é".chars().collect();
        assert!(tokenize(&chars).is_err());
    }

    #[test]
    fn whitespace_only_gives_no_tokens() {
        assert!(kinds(" \t\n ").is_empty());
    }
}
