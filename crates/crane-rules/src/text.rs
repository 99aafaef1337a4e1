//! Text helpers: the tokenizer (words, numbers, symbols with their byte spans in the prompt),
//! quoted-region marking, token-sequence matching and title clean-up.
//!
//! Everything here is a single linear pass; keyword matching works on lower-cased word tokens
//! while titles are always cut from the original prompt by byte span, so they keep their case,
//! Unicode and inner punctuation exactly.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Letters, with inner apostrophes and hyphens (`don't`, `to-do`, `forty-two`).
    Word,
    /// An ASCII number literal: digits, optional `.digits`, optional exponent (`1e5`).
    Number,
    /// Any other single non-space character.
    Sym(char),
    /// A line break (a strong clause boundary).
    Newline,
}

/// One token and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub(crate) kind: Kind,
    /// Byte offset of the first character in the prompt.
    pub(crate) start: usize,
    /// Byte offset one past the last character.
    pub(crate) end: usize,
    /// Lower-cased text for words (typographic apostrophes folded to `'`), the literal for
    /// numbers, the character for symbols.
    pub(crate) lower: String,
    /// Inside a matched pair of quotes (the quote characters themselves are not).
    pub(crate) quoted: bool,
}

impl Tok {
    /// True for a word token whose lower-cased text is `w`.
    pub(crate) fn is_word(&self, w: &str) -> bool {
        self.kind == Kind::Word && self.lower == w
    }

    /// True for the symbol `c`.
    pub(crate) fn is_sym(&self, c: char) -> bool {
        self.kind == Kind::Sym(c)
    }

    /// The word text, if this is a word.
    pub(crate) fn word(&self) -> Option<&str> {
        (self.kind == Kind::Word).then_some(self.lower.as_str())
    }
}

/// Characters that continue a word even though they are not alphanumeric (combining marks,
/// joiners, variation selectors).
fn is_word_continuation(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}' | '\u{200C}' | '\u{200D}' | '\u{FE0F}'
    )
}

fn is_letter(c: char) -> bool {
    c.is_alphanumeric() && !c.is_ascii_digit()
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Splits `s` into tokens in one pass.
pub(crate) fn tokenize(s: &str) -> Vec<Tok> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(s.len(), |&(b, _)| b);
    let ch = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(c) = ch(i) {
        let start = i;
        let kind;
        if c == '\n' {
            kind = Kind::Newline;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit() || (c == '.' && ch(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            kind = Kind::Number;
            while ch(i).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
            }
            if ch(i) == Some('.') && ch(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while ch(i).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                }
            }
            if matches!(ch(i), Some('e' | 'E')) {
                let mut j = i + 1;
                if matches!(ch(j), Some('+' | '-')) {
                    j += 1;
                }
                if ch(j).is_some_and(|d| d.is_ascii_digit()) {
                    i = j;
                    while ch(i).is_some_and(|d| d.is_ascii_digit()) {
                        i += 1;
                    }
                }
            }
        } else if is_letter(c) {
            kind = Kind::Word;
            i += 1;
            loop {
                match ch(i) {
                    Some(d) if is_letter(d) || is_word_continuation(d) => i += 1,
                    Some(d)
                        if (is_apostrophe(d) || d == '-') && ch(i + 1).is_some_and(is_letter) =>
                    {
                        i += 2;
                    }
                    _ => break,
                }
            }
        } else {
            kind = Kind::Sym(c);
            i += 1;
        }
        let (b0, b1) = (byte_at(start), byte_at(i));
        let text = s.get(b0..b1).unwrap_or_default();
        let lower = match kind {
            Kind::Word => text.to_lowercase().replace('\u{2019}', "'"),
            _ => text.to_owned(),
        };
        toks.push(Tok {
            kind,
            start: b0,
            end: b1,
            lower,
            quoted: false,
        });
    }
    mark_quotes(s, &mut toks);
    toks
}

/// The closing quote for an opening quote character, if `c` opens quotes.
pub(crate) fn closing_quote(c: char) -> Option<char> {
    match c {
        '"' => Some('"'),
        '\'' => Some('\''),
        '`' => Some('`'),
        '\u{201C}' => Some('\u{201D}'), // “ ”
        '\u{201E}' => Some('\u{201C}'), // „ “
        '\u{2018}' => Some('\u{2019}'), // ‘ ’
        '\u{00AB}' => Some('\u{00BB}'), // « »
        '\u{300C}' => Some('\u{300D}'), // 「 」
        _ => None,
    }
}

/// Single quotes double as apostrophes, so they only open at a word start and close at a
/// word end.
fn is_single(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '`')
}

/// Marks the tokens strictly inside each matched quote pair as `quoted`. Pairs do not nest;
/// an unclosed quote protects nothing. Linear: every token is marked at most once.
fn mark_quotes(s: &str, toks: &mut [Tok]) {
    let before = |t: &Tok| s.get(..t.start).and_then(|p| p.chars().next_back());
    let after = |t: &Tok| s.get(t.end..).and_then(|p| p.chars().next());
    let mut open: Option<(usize, char)> = None;
    for i in 0..toks.len() {
        let Some(tok) = toks.get(i) else { break };
        let Kind::Sym(c) = tok.kind else { continue };
        match open {
            Some((o, close)) if c == close => {
                let ok = !is_single(c)
                    || (before(tok).is_some_and(|p| !p.is_whitespace())
                        && after(tok).is_none_or(|n| !n.is_alphanumeric()));
                if ok {
                    for t in toks.iter_mut().take(i).skip(o + 1) {
                        t.quoted = true;
                    }
                    open = None;
                }
            }
            Some(_) => {}
            None => {
                if let Some(close) = closing_quote(c) {
                    let ok = !is_single(c)
                        || (before(tok).is_none_or(|p| p.is_whitespace() || "([{:".contains(p))
                            && after(tok).is_some_and(|n| !n.is_whitespace()));
                    if ok {
                        open = Some((i, close));
                    }
                }
            }
        }
    }
}

/// True when `toks` starts with the word/symbol sequence `pat` (compared on `lower`).
pub(crate) fn starts_with(toks: &[Tok], pat: &[&str]) -> bool {
    toks.len() >= pat.len() && toks.iter().zip(pat).all(|(t, p)| t.lower == *p)
}

/// True when `toks` ends with `pat`.
pub(crate) fn ends_with(toks: &[Tok], pat: &[&str]) -> bool {
    toks.len() >= pat.len()
        && toks[toks.len() - pat.len()..]
            .iter()
            .zip(pat)
            .all(|(t, p)| t.lower == *p)
}

/// `toks` without the leading `pat`, if it starts with it.
pub(crate) fn strip_prefix<'t>(toks: &'t [Tok], pat: &[&str]) -> Option<&'t [Tok]> {
    starts_with(toks, pat).then(|| &toks[pat.len()..])
}

/// `toks` without the longest of `pats` it starts with.
pub(crate) fn strip_any_prefix<'t>(toks: &'t [Tok], pats: &[&[&str]]) -> Option<&'t [Tok]> {
    pats.iter()
        .filter(|p| starts_with(toks, p))
        .max_by_key(|p| p.len())
        .map(|p| &toks[p.len()..])
}

/// `toks` without the longest of `pats` it ends with.
pub(crate) fn strip_any_suffix<'t>(toks: &'t [Tok], pats: &[&[&str]]) -> Option<&'t [Tok]> {
    pats.iter()
        .filter(|p| ends_with(toks, p))
        .max_by_key(|p| p.len())
        .map(|p| &toks[..toks.len() - p.len()])
}

/// True when `toks` is exactly `pat` (compared on `lower`).
pub(crate) fn is_exactly(toks: &[Tok], pat: &[&str]) -> bool {
    toks.len() == pat.len() && starts_with(toks, pat)
}

/// The prompt text covered by `toks` (from the first token's start to the last one's end).
pub(crate) fn span<'s>(src: &'s str, toks: &[Tok]) -> &'s str {
    match (toks.first(), toks.last()) {
        (Some(a), Some(b)) => src.get(a.start..b.end).unwrap_or_default(),
        _ => "",
    }
}

/// Sentence punctuation dropped from the end of a clause or title.
pub(crate) fn is_trailing_punct(t: &Tok) -> bool {
    matches!(
        t.kind,
        Kind::Sym(
            '.' | ',' | '!' | '?' | ';' | ':' | '\u{2026}' | '\u{FF1F}' | '\u{FF01}' | '\u{3002}'
        )
    )
}

/// `toks` without trailing sentence punctuation.
pub(crate) fn trim_trailing_punct(toks: &[Tok]) -> &[Tok] {
    let mut end = toks.len();
    while end > 0 && toks.get(end - 1).is_some_and(is_trailing_punct) {
        end -= 1;
    }
    &toks[..end]
}

/// True if `toks` is exactly one quoted string: an opening quote whose matching closing quote
/// is the last token.
pub(crate) fn quoted_whole(toks: &[Tok]) -> bool {
    let (Some(first), Some(last)) = (toks.first(), toks.last()) else {
        return false;
    };
    if toks.len() < 2 {
        return false;
    }
    let (Kind::Sym(open), Kind::Sym(close)) = (first.kind, last.kind) else {
        return false;
    };
    if closing_quote(open) != Some(close) {
        return false;
    }
    // The first closing quote after the opening one must be the last token.
    toks[1..toks.len() - 1]
        .iter()
        .all(|t| t.kind != Kind::Sym(close) || t.quoted)
}

/// Cleans a title cut from `toks`: trailing sentence punctuation is dropped, then one pair of
/// matching surrounding quotes (their content is kept verbatim), then surrounding whitespace.
/// `None` when nothing is left.
pub(crate) fn clean_title(src: &str, toks: &[Tok]) -> Option<String> {
    let toks = trim_trailing_punct(toks);
    let (first, last) = (toks.first()?, toks.last()?);
    let text = if quoted_whole(toks) {
        src.get(first.end..last.start)?.trim()
    } else {
        span(src, toks).trim()
    };
    (!text.is_empty()).then(|| text.to_owned())
}

/// Escapes a user string for a step input: a literal `${` becomes `$${` so the runtime does
/// not read it as a step reference.
pub(crate) fn escape_refs(s: &str) -> String {
    s.replace("${", "$${")
}

/// True if `w` is in `set`.
pub(crate) fn in_set(w: &str, set: &[&str]) -> bool {
    set.contains(&w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowers(s: &str) -> Vec<String> {
        tokenize(s).into_iter().map(|t| t.lower).collect()
    }

    #[test]
    fn words_numbers_and_symbols() {
        assert_eq!(
            lowers("Don't add To-Do 3.5e2x, 1,000 (ok)"),
            [
                "don't", "add", "to-do", "3.5e2", "x", ",", "1", ",", "000", "(", "ok", ")"
            ]
        );
        assert_eq!(lowers("I’ve .5 7x6"), ["i've", ".5", "7", "x", "6"]);
        assert_eq!(lowers("2e+"), ["2", "e", "+"]);
    }

    #[test]
    fn spans_keep_the_original_text() {
        let s = "Add «Café Ünïcode» 🥛";
        let toks = tokenize(s);
        assert_eq!(span(s, &toks[1..]), "«Café Ünïcode» 🥛");
        assert!(toks[2].quoted && toks[3].quoted && !toks[1].quoted);
    }

    #[test]
    fn apostrophes_are_not_quotes() {
        let toks = tokenize("mom's 'big' day and the kids' toys");
        assert!(toks.iter().all(|t| t.lower != "mom" && t.lower != "s"));
        let big = toks.iter().find(|t| t.lower == "big").unwrap();
        assert!(big.quoted);
        assert!(!toks.iter().any(|t| t.lower == "toys" && t.quoted));
    }

    #[test]
    fn titles_are_cleaned_but_kept_verbatim() {
        let s = "\"Buy Milk!\".";
        assert_eq!(clean_title(s, &tokenize(s)).unwrap(), "Buy Milk!");
        let s = "Call Dr. Who, now?!";
        assert_eq!(clean_title(s, &tokenize(s)).unwrap(), "Call Dr. Who, now");
        let s = "\"a\" and \"b\"";
        assert_eq!(clean_title(s, &tokenize(s)).unwrap(), "\"a\" and \"b\"");
        assert_eq!(clean_title("?!", &tokenize("?!")), None);
        assert_eq!(escape_refs("a ${x} $${y}"), "a $${x} $$${y}");
    }
}
