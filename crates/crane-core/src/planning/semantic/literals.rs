//! Literals of a prompt: numbers, quoted text, todo ids and arithmetic expressions with their
//! byte spans, plus the words around them — canonical operation words ("remove" → delete,
//! "times" → times), negations (polarity) and the filler words a paraphrase may add or drop.
//!
//! This is the vocabulary the semantic cache's [`super::template`] and [`super::guard`] work
//! with: [`tokenize`] splits a prompt into [`Token`]s (each with its span, so literal text is
//! always cut verbatim from the prompt), [`literals`] lists the literals, and [`analyse`] turns
//! the tokens outside a template's slots into the skeleton, the canonical signature, the
//! operation multiset and the negation count that the guard compares.
//!
//! Hand-written (no regex, no NLP crate): one linear pass per prompt with an exact, reviewable
//! lexicon. The guard's safety rests on every rule here being predictable; a statistical
//! tokenizer or stemmer would make "when is a literal the same literal" fuzzy, and a regex
//! engine would add nothing to a scanner this small. Nothing here panics on any input (text
//! is only sliced at token spans, which fall on char boundaries; a property test feeds
//! arbitrary text), and quote matching is linear (a failed search for a closing quote is
//! remembered, so a prompt of a thousand stray quotes is not quadratic).

use serde::{Deserialize, Serialize};

/// A byte range `start..end` in a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The text of this span in `s` (empty if the span does not fit `s`).
    pub fn text<'a>(&self, s: &'a str) -> &'a str {
        s.get(self.start..self.end).unwrap_or("")
    }

    /// True if the two ranges share at least one byte.
    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// True if `other` lies inside this span.
    pub fn contains(&self, other: &Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Letters (with inner apostrophes and hyphens: `don't`, `to-do`), or a run of other
    /// symbols such as an emoji.
    Word,
    /// A number: `42`, `-3`, `2.5`, `.5`, `1,000`, `2.5e3`.
    Number,
    /// Text in matching quotes (`"…"`, `'…'`, `“…”`, `‘…’`, `«…»`); `inner` is the text
    /// between the quotes.
    Quoted,
    /// A todo id (a UUID, as `uuid::Uuid::now_v7` prints them).
    Id,
    /// Letters and digits mixed (`5pm`, `2nd`, `h2o`, `1,2,3`): a literal that is not a number.
    Other,
    /// An arithmetic or joining symbol: `+ - * / ^ % ( ) = < > × ÷ − &`.
    Symbol,
    /// Punctuation that can change how a prompt is read: `,` (it groups arithmetic: "3 plus 4,
    /// times 2" is `(3 + 4) * 2`), `:`, and sentence ends (`.` `!` `?` `;` and line breaks).
    /// `norm` is the class: `,`, `:` or `.`. Part of the wording, except at either end.
    Boundary,
    /// Other punctuation (brackets other than parentheses, dashes, stray quotes). Ignored
    /// when wording is compared.
    Punct,
}

/// One token of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// Where the token is in the prompt (for a quoted token: quotes included).
    pub span: Span,
    /// For [`TokenKind::Quoted`], the text between the quotes; otherwise equal to `span`.
    pub inner: Span,
    /// Normalised text: words lower-cased with typographic apostrophes folded to `'`; numbers,
    /// ids and quoted text as written; the character for symbols and punctuation.
    pub norm: String,
}

impl Token {
    /// Punctuation of either kind: a slot never starts or ends with it.
    pub fn is_gap(&self) -> bool {
        matches!(self.kind, TokenKind::Boundary | TokenKind::Punct)
    }

    /// Numbers, quoted text, ids and mixed letter/digit tokens: text that a plan may carry.
    pub fn is_literal(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Number | TokenKind::Quoted | TokenKind::Id | TokenKind::Other
        )
    }
}

/// What a literal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiteralKind {
    Number,
    Quoted,
    Id,
    /// Letters and digits mixed (`5pm`, `2nd`).
    Other,
    /// A run of numbers and arithmetic symbols with at least one operator (`(41*7)+13`). Its
    /// numbers are literals of their own too; the guard binds them one by one and treats the
    /// operators as wording.
    Expression,
}

/// A literal found in a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub kind: LiteralKind,
    /// Where it is (for quoted text: the text between the quotes).
    pub span: Span,
    /// Its text, verbatim.
    pub text: String,
}

/// Longest prompt (bytes) the semantic cache looks at. crane refuses prompts over 8,000
/// characters; a longer text is never templated or bound (the exact cache still works).
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Characters that continue a word although they are not alphanumeric (combining marks,
/// joiners, variation selectors).
fn is_word_continuation(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}' | '\u{200C}' | '\u{200D}' | '\u{FE0E}' | '\u{FE0F}'
    )
}

/// Invisible characters treated as spaces (zero-width space, word joiner, BOM, soft hyphen).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}'
    )
}

fn is_symbol(c: char) -> bool {
    matches!(
        c,
        '+' | '-' | '*' | '/' | '^' | '%' | '(' | ')' | '=' | '<' | '>' | '×' | '÷' | '−' | '&'
    )
}

/// The class of a boundary character ([`TokenKind::Boundary`]).
fn boundary_class(c: char) -> Option<&'static str> {
    match c {
        ',' | '，' | '、' => Some(","),
        ':' | '：' => Some(":"),
        '.' | '!' | '?' | ';' | '\n' | '。' | '！' | '？' | '；' => Some("."),
        _ => None,
    }
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '“' | '”'
                | '‘'
                | '’'
                | '«'
                | '»'
                | '„'
                | '…'
                | '–'
                | '—'
                | '·'
                | '¿'
                | '¡'
                | '、'
                | '。'
                | '，'
                | '：'
                | '；'
                | '！'
                | '？'
        )
}

/// The closing quotes for an opening quote character.
fn closers(c: char) -> &'static [char] {
    match c {
        '"' => &['"'],
        '\'' => &['\''],
        '“' => &['”'],
        '„' => &['“', '”'],
        '‘' => &['’'],
        '«' => &['»'],
        '`' => &['`'],
        _ => &[],
    }
}

struct Chars<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
}

impl Chars<'_> {
    fn ch(&self, i: usize) -> Option<char> {
        self.chars.get(i).map(|&(_, c)| c)
    }

    fn byte(&self, i: usize) -> usize {
        self.chars.get(i).map_or(self.text.len(), |&(b, _)| b)
    }

    fn alnum_at(&self, i: usize) -> bool {
        self.ch(i).is_some_and(char::is_alphanumeric)
    }

    fn digit_at(&self, i: usize) -> bool {
        self.ch(i).is_some_and(|c| c.is_ascii_digit())
    }

    fn letter_at(&self, i: usize) -> bool {
        self.ch(i)
            .is_some_and(|c| c.is_alphanumeric() && !c.is_ascii_digit())
    }
}

/// A UUID (8-4-4-4-12 hex digits) starting at char `i`, not glued to more letters or digits:
/// its length in chars.
fn uuid_at(cs: &Chars<'_>, i: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut k = i;
    for (g, len) in GROUPS.iter().enumerate() {
        if g > 0 {
            if cs.ch(k) != Some('-') {
                return None;
            }
            k += 1;
        }
        for _ in 0..*len {
            if !cs.ch(k).is_some_and(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            k += 1;
        }
    }
    if cs.alnum_at(k) || (cs.ch(k) == Some('-') && cs.alnum_at(k + 1)) {
        return None;
    }
    Some(k - i)
}

/// The end (exclusive, in chars) of the alphanumeric run starting at `i`: letters and digits,
/// apostrophes and hyphens between letters, `.` and `,` between digits, an exponent sign.
fn run_end(cs: &Chars<'_>, i: usize) -> usize {
    let mut k = i;
    loop {
        match cs.ch(k) {
            Some(c) if c.is_alphanumeric() || is_word_continuation(c) => k += 1,
            Some(c)
                if (is_apostrophe(c) || c == '-')
                    && k > i
                    && cs.letter_at(k - 1)
                    && cs.letter_at(k + 1) =>
            {
                k += 2;
            }
            Some('.' | ',') if k > i && cs.digit_at(k - 1) && cs.digit_at(k + 1) => k += 2,
            Some('+' | '-')
                if k > i + 1
                    && matches!(cs.ch(k - 1), Some('e' | 'E'))
                    && cs.digit_at(k - 2)
                    && cs.digit_at(k + 1) =>
            {
                k += 2;
            }
            _ => return k,
        }
    }
}

/// True for the number forms crane reads: `42`, `1,000` (groups of three), `2.5`, `.5`,
/// `2.5e3`, each optionally with a leading `-`.
pub fn is_number(text: &str) -> bool {
    let s = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    if let Some(e) = exponent {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    if let Some(f) = frac
        && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if int.is_empty() {
        return frac.is_some();
    }
    if int.contains(',') {
        let mut groups = int.split(',');
        let first = groups.next().unwrap_or("");
        (1..=3).contains(&first.len())
            && first.bytes().all(|b| b.is_ascii_digit())
            && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
    } else {
        int.bytes().all(|b| b.is_ascii_digit())
    }
}

/// How a number is written, apart from its digits: grouping commas, a bare leading `.`, an
/// exponent. A re-bound number must be written the same way ("add 3 to 10" is arithmetic to
/// a planner that reads "add 1,000 to 10" as a todo).
pub fn number_shape(text: &str) -> (bool, bool, bool) {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    (
        text.contains(','),
        unsigned.starts_with('.'),
        text.contains(['e', 'E']),
    )
}

/// The canonical text of a number as a planner writes it: grouping commas dropped and a bare
/// leading `.` given its `0` (`1,000` → `1000`, `.5` → `0.5`, `-.5` → `-0.5`). Everything else
/// (leading zeros, trailing zeros, the exponent) is kept.
pub fn canonical_number(text: &str) -> String {
    let mut out: String = text.chars().filter(|&c| c != ',').collect();
    if out.starts_with('.') {
        out.insert(0, '0');
    } else if out.starts_with("-.") {
        out.insert(1, '0');
    }
    out
}

fn lower(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect::<String>()
        .to_lowercase()
}

/// Splits `text` into tokens in one pass. Whitespace separates tokens and is dropped, except
/// line breaks, which are punctuation tokens.
pub fn tokenize(text: &str) -> Vec<Token> {
    let cs = Chars {
        text,
        chars: text.char_indices().collect(),
    };
    let mut toks: Vec<Token> = Vec::new();
    // For each opening quote character, the char index after which no closing quote exists.
    let mut no_closer_after: Vec<(char, usize)> = Vec::new();
    let mut i = 0;
    while let Some(c) = cs.ch(i) {
        let start = i;
        let push = |toks: &mut Vec<Token>, kind: TokenKind, s: usize, e: usize| {
            let span = Span::new(cs.byte(s), cs.byte(e));
            let raw = span.text(text);
            let norm = match kind {
                TokenKind::Word => lower(raw),
                _ => raw.to_owned(),
            };
            toks.push(Token {
                kind,
                span,
                inner: span,
                norm,
            });
        };
        if c == '\n' {
            let span = Span::new(cs.byte(i), cs.byte(i + 1));
            toks.push(Token {
                kind: TokenKind::Boundary,
                span,
                inner: span,
                norm: ".".to_owned(),
            });
            i += 1;
            continue;
        }
        if c.is_whitespace() || is_invisible(c) {
            i += 1;
            continue;
        }
        let prev_alnum = i > 0 && cs.alnum_at(i - 1);
        // Quoted text.
        let close = closers(c);
        if !close.is_empty() && !prev_alnum {
            let known_none = no_closer_after
                .iter()
                .any(|&(q, after)| q == c && after <= i);
            let mut found = None;
            if !known_none {
                let mut k = i + 1;
                let mut aborted = false;
                while let Some(d) = cs.ch(k) {
                    if close.contains(&d) || d == c {
                        let closes = close.contains(&d)
                            && !cs.alnum_at(k + 1)
                            && !(is_apostrophe(d) && cs.ch(k - 1).is_some_and(char::is_whitespace));
                        if closes {
                            found = Some(k);
                            break;
                        }
                        // An apostrophe inside a word ("mom's") goes on; any other quote
                        // character of this kind makes the quoting ambiguous ("Buy "x"): no
                        // quoted text starts here.
                        if !(is_apostrophe(d) && cs.alnum_at(k - 1) && cs.alnum_at(k + 1)) {
                            aborted = true;
                            break;
                        }
                    }
                    k += 1;
                }
                if found.is_none() && !aborted {
                    no_closer_after.push((c, i));
                }
            }
            if let Some(k) = found {
                let span = Span::new(cs.byte(i), cs.byte(k + 1));
                let inner = Span::new(cs.byte(i + 1), cs.byte(k));
                toks.push(Token {
                    kind: TokenKind::Quoted,
                    span,
                    inner,
                    norm: inner.text(text).to_owned(),
                });
                i = k + 1;
                continue;
            }
        }
        // A todo id.
        if c.is_ascii_hexdigit()
            && !prev_alnum
            && let Some(len) = uuid_at(&cs, i)
        {
            push(&mut toks, TokenKind::Id, i, i + len);
            i += len;
            continue;
        }
        // A negative number: `-` before a digit where no value precedes it.
        let starts_number = |k: usize| {
            cs.digit_at(k)
                || (cs.ch(k) == Some('.') && cs.digit_at(k + 1) && !cs.alnum_at(k.wrapping_sub(1)))
        };
        if c == '-' && starts_number(i + 1) {
            let value_before = toks.last().is_some_and(|t| {
                matches!(t.kind, TokenKind::Number | TokenKind::Other | TokenKind::Id)
                    || (t.kind == TokenKind::Symbol && t.norm == ")")
            });
            if !value_before {
                let end = run_end(&cs, i + 1).max(i + 2);
                let body = Span::new(cs.byte(i + 1), cs.byte(end)).text(text);
                if is_number(body) {
                    push(&mut toks, TokenKind::Number, i, end);
                    i = end;
                    continue;
                }
            }
        }
        // Numbers, words and mixed runs.
        if c.is_alphanumeric() || (c == '.' && cs.digit_at(i + 1) && !prev_alnum) {
            let end = if c == '.' {
                run_end(&cs, i + 1).max(i + 2)
            } else {
                run_end(&cs, i)
            };
            let raw = Span::new(cs.byte(i), cs.byte(end)).text(text);
            let has_digit = raw.bytes().any(|b| b.is_ascii_digit());
            let kind = if is_number(raw) {
                TokenKind::Number
            } else if has_digit || c == '.' {
                TokenKind::Other
            } else {
                TokenKind::Word
            };
            push(&mut toks, kind, i, end);
            i = end;
            continue;
        }
        if is_symbol(c) {
            push(&mut toks, TokenKind::Symbol, i, i + 1);
            i += 1;
            continue;
        }
        if let Some(class) = boundary_class(c) {
            let span = Span::new(cs.byte(i), cs.byte(i + 1));
            toks.push(Token {
                kind: TokenKind::Boundary,
                span,
                inner: span,
                norm: class.to_owned(),
            });
            i += 1;
            continue;
        }
        if is_punct(c) {
            push(&mut toks, TokenKind::Punct, i, i + 1);
            i += 1;
            continue;
        }
        // Anything else (emoji, other symbols): a word of its own, with its joiners.
        i += 1;
        while let Some(d) = cs.ch(i) {
            if is_word_continuation(d) {
                i += 1;
                // A joiner glues the next symbol on (emoji sequences).
                if d == '\u{200D}' && cs.ch(i).is_some_and(|e| !e.is_whitespace()) {
                    i += 1;
                }
            } else {
                break;
            }
        }
        push(&mut toks, TokenKind::Word, start, i);
    }
    toks
}

/// Function names and constants the calculator reads (`sqrt(16)`, `pi * 2`).
pub fn is_calculator_word(w: &str) -> bool {
    matches!(
        w,
        "sqrt" | "abs" | "round" | "floor" | "ceil" | "min" | "max" | "pi" | "e"
    )
}

fn is_arithmetic_symbol(s: &str) -> bool {
    matches!(
        s,
        "+" | "-" | "*" | "/" | "^" | "%" | "(" | ")" | "×" | "÷" | "−"
    )
}

/// The literals of a prompt: numbers, quoted text, ids, mixed letter/digit tokens, and
/// arithmetic expressions (runs of numbers and operators, listed besides their numbers).
pub fn literals(prompt: &str) -> Vec<Literal> {
    let toks = tokenize(prompt);
    let mut out = Vec::new();
    for t in &toks {
        let kind = match t.kind {
            TokenKind::Number => LiteralKind::Number,
            TokenKind::Quoted => LiteralKind::Quoted,
            TokenKind::Id => LiteralKind::Id,
            TokenKind::Other => LiteralKind::Other,
            _ => continue,
        };
        out.push(Literal {
            kind,
            span: t.inner,
            text: t.inner.text(prompt).to_owned(),
        });
    }
    // Expressions: maximal runs of numbers, operators, parentheses and calculator words with
    // at least two numbers and one operator.
    let in_expr = |t: &Token| {
        t.kind == TokenKind::Number
            || (t.kind == TokenKind::Symbol && is_arithmetic_symbol(&t.norm))
            || (t.kind == TokenKind::Word && is_calculator_word(&t.norm))
            || (t.kind == TokenKind::Boundary && t.norm == ",")
    };
    let mut k = 0;
    while k < toks.len() {
        if !in_expr(&toks[k]) {
            k += 1;
            continue;
        }
        let begin = k;
        while k < toks.len() && in_expr(&toks[k]) {
            k += 1;
        }
        let mut run = &toks[begin..k];
        // Trim what cannot start or end an expression.
        while let Some(first) = run.first()
            && (first.norm == ","
                || first.norm == ")"
                || (first.kind == TokenKind::Symbol && first.norm != "(" && first.norm != "-"))
        {
            run = &run[1..];
        }
        while let Some(last) = run.last()
            && (last.norm == ","
                || last.norm == "("
                || (last.kind == TokenKind::Symbol && last.norm != ")" && last.norm != "%"))
        {
            run = &run[..run.len() - 1];
        }
        let numbers = run.iter().filter(|t| t.kind == TokenKind::Number).count();
        let operators = run
            .iter()
            .filter(|t| t.kind == TokenKind::Symbol && !matches!(t.norm.as_str(), "(" | ")"))
            .count();
        if let (Some(first), Some(last)) = (run.first(), run.last())
            && numbers >= 2
            && operators >= 1
        {
            let span = Span::new(first.span.start, last.span.end);
            out.push(Literal {
                kind: LiteralKind::Expression,
                span,
                text: span.text(prompt).to_owned(),
            });
        }
    }
    out.sort_by_key(|l| (l.span.start, std::cmp::Reverse(l.span.end)));
    out
}

/// A canonical operation word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Add,
    Delete,
    Complete,
    List,
    Calc,
    Plus,
    Minus,
    Times,
    Divide,
    Power,
    Sqrt,
    Percent,
    Mod,
    Abs,
    Round,
    Floor,
    Ceil,
    Min,
    Max,
    Average,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Delete => "delete",
            Self::Complete => "complete",
            Self::List => "list",
            Self::Calc => "calc",
            Self::Plus => "plus",
            Self::Minus => "minus",
            Self::Times => "times",
            Self::Divide => "divide",
            Self::Power => "power",
            Self::Sqrt => "sqrt",
            Self::Percent => "percent",
            Self::Mod => "mod",
            Self::Abs => "abs",
            Self::Round => "round",
            Self::Floor => "floor",
            Self::Ceil => "ceil",
            Self::Min => "min",
            Self::Max => "max",
            Self::Average => "average",
        }
    }

    /// An arithmetic operation (as opposed to a todo verb or "calculate").
    pub fn is_arithmetic(self) -> bool {
        !matches!(
            self,
            Self::Add | Self::Delete | Self::Complete | Self::List | Self::Calc
        )
    }
}

/// Kinds of filler words, by where a paraphrase may drop them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filler {
    /// `the`, `my`: dropped only before "todo(s)" ("list my todos"); elsewhere one class,
    /// `det` ("delete the last todo" = "delete my last todo" ≠ "delete last the todo"). `a` is
    /// a word like any other ("complete a first one" is not "complete the first one").
    Det,
    /// Politeness: dropped at either end of the prompt.
    Polite,
    /// Openers ("could you", "I want to", "ok", "just"): dropped at the start only ("me" and
    /// "all" also right after "list"/"show").
    Lead,
}

/// What one word or phrase means to the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Filler(Filler),
    Op(Op),
    /// A negation.
    Not,
    /// A synonym of a canonical word.
    Word(&'static str),
}

/// Operation words with a grammar of their own: in the signature they stay words (so "remind
/// me to X" never equals "add me to X", nor "delete X and done Y" "delete X and complete
/// Y"), in the operation multiset they count as the operation.
fn word_op(w: &str) -> Option<Op> {
    match w {
        "done" => Some(Op::Complete),
        "remind" | "put" | "new" => Some(Op::Add),
        _ => None,
    }
}

/// The single-word lexicon.
fn word_lex(w: &str) -> Option<Lex> {
    Some(match w {
        "the" | "my" => Lex::Filler(Filler::Det),
        "please" | "thanks" | "thank" | "thx" => Lex::Filler(Filler::Polite),
        "pls" | "plz" | "kindly" | "ok" | "okay" | "now" | "me" | "mine" | "i" | "i'd" | "you"
        | "can" | "could" | "would" | "will" | "just" | "hey" | "hi" | "hello" | "all"
        | "entire" | "whole" => Lex::Filler(Filler::Lead),
        "add" | "create" | "make" => Lex::Op(Op::Add),
        "remind" => Lex::Word("remind"),
        "put" => Lex::Word("put"),
        "new" => Lex::Word("new"),
        "delete" | "remove" | "clear" | "erase" | "drop" | "trash" | "cancel" | "scrap"
        | "discard" => Lex::Op(Op::Delete),
        "complete" | "finish" => Lex::Op(Op::Complete),
        // The adjectives: "mark it as done", "my completed todos". The operation is the same,
        // the wording is not ("delete X and done Y" is no request to complete Y).
        "done" | "completed" | "finished" => Lex::Word("done"),
        "list" | "show" | "display" | "view" | "see" | "print" => Lex::Op(Op::List),
        "calculate" | "compute" | "evaluate" | "solve" | "what's" | "whats" | "calc" => {
            Lex::Op(Op::Calc)
        }
        "plus" | "sum" | "total" | "+" => Lex::Op(Op::Plus),
        "minus" | "subtract" | "difference" | "-" | "−" => Lex::Op(Op::Minus),
        "times" | "multiply" | "multiplied" | "product" | "*" | "×" => Lex::Op(Op::Times),
        "divide" | "divided" | "quotient" | "over" | "/" | "÷" => Lex::Op(Op::Divide),
        "power" | "squared" | "cubed" | "^" => Lex::Op(Op::Power),
        "sqrt" => Lex::Op(Op::Sqrt),
        "percent" | "percentage" | "%" => Lex::Op(Op::Percent),
        "mod" | "modulo" => Lex::Op(Op::Mod),
        "abs" | "absolute" => Lex::Op(Op::Abs),
        "round" => Lex::Op(Op::Round),
        "floor" => Lex::Op(Op::Floor),
        "ceil" | "ceiling" => Lex::Op(Op::Ceil),
        "min" | "minimum" | "smallest" | "lowest" => Lex::Op(Op::Min),
        "max" | "maximum" | "largest" | "biggest" | "highest" => Lex::Op(Op::Max),
        "average" | "mean" | "avg" => Lex::Op(Op::Average),
        "todos" | "tasks" | "to-dos" => Lex::Word("todos"),
        "todo" | "task" | "to-do" => Lex::Word("todo"),
        "open" | "pending" | "incomplete" | "unfinished" | "remaining" | "outstanding"
        | "undone" => Lex::Word("open"),
        _ if is_negation(w) => Lex::Not,
        _ => return None,
    })
}

/// Negation words: `not`, `no`, `never`, `without`, `except`, every `…n't` and its
/// apostrophe-less spelling.
pub fn is_negation(w: &str) -> bool {
    matches!(
        w,
        "not"
            | "no"
            | "never"
            | "none"
            | "nothing"
            | "nor"
            | "neither"
            | "without"
            | "except"
            | "excluding"
            | "unless"
            | "cannot"
            | "stop"
            | "avoid"
            | "skip"
            | "refrain"
            | "dont"
            | "doesnt"
            | "didnt"
            | "wont"
            | "cant"
            | "isnt"
            | "arent"
            | "wasnt"
            | "werent"
            | "shouldnt"
            | "wouldnt"
            | "couldnt"
            | "havent"
            | "hasnt"
            | "hadnt"
            | "mustnt"
            | "neednt"
            | "aint"
    ) || w.ends_with("n't")
}

/// Multi-word phrases, matched before single words (longest first at each position).
const PHRASES: &[(&[&str], Lex)] = &[
    (&["i", "would", "like", "to"], Lex::Filler(Filler::Lead)),
    (&["i", "want", "to"], Lex::Filler(Filler::Lead)),
    (&["i'd", "like", "to"], Lex::Filler(Filler::Lead)),
    (&["would", "like", "to"], Lex::Filler(Filler::Lead)),
    (&["want", "you", "to"], Lex::Filler(Filler::Lead)),
    (&["like", "you", "to"], Lex::Filler(Filler::Lead)),
    (&["want", "to"], Lex::Filler(Filler::Lead)),
    (&["like", "to"], Lex::Filler(Filler::Lead)),
    (&["i", "wanna"], Lex::Filler(Filler::Lead)),
    (&["for", "me"], Lex::Filler(Filler::Lead)),
    (&["thank", "you"], Lex::Filler(Filler::Polite)),
    (&["do", "not"], Lex::Not),
    (&["no", "longer"], Lex::Not),
    (&["get", "rid", "of"], Lex::Op(Op::Delete)),
    (&["check", "off"], Lex::Op(Op::Complete)),
    (&["tick", "off"], Lex::Op(Op::Complete)),
    (&["cross", "off"], Lex::Op(Op::Complete)),
    (&["what", "is"], Lex::Op(Op::Calc)),
    (&["how", "much", "is"], Lex::Op(Op::Calc)),
    (&["what", "are"], Lex::Op(Op::List)),
    (&["multiplied", "by"], Lex::Op(Op::Times)),
    (&["divided", "by"], Lex::Op(Op::Divide)),
    (&["to", "the", "power", "of"], Lex::Op(Op::Power)),
    (&["raised", "to"], Lex::Op(Op::Power)),
    (&["square", "root"], Lex::Op(Op::Sqrt)),
    (&["take", "away"], Lex::Op(Op::Minus)),
    (&["to", "do", "list"], Lex::Word("todos")),
    (&["to-do", "list"], Lex::Word("todos")),
    (&["todo", "list"], Lex::Word("todos")),
    (&["task", "list"], Lex::Word("todos")),
];

/// Number words and words that stand for a number the prompt does not write in digits
/// ("squared" is `^ 2`, "half" is `/ 2`, "average" divides by a count, "15%" is `/ 100`,
/// "first" may be an index). A template with number slots is not made from a prompt that
/// has one outside its slots: the plan's numbers could come from the word rather than from
/// the digits they happen to equal.
pub fn is_implicit_number(t: &Token) -> bool {
    if t.kind == TokenKind::Symbol {
        return t.norm == "%";
    }
    if t.kind != TokenKind::Word {
        return false;
    }
    let w = t.norm.as_str();
    const WORDS: &[&str] = &[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "thousand",
        "million",
        "billion",
        "trillion",
        "dozen",
        "half",
        "halve",
        "halved",
        "double",
        "doubled",
        "twice",
        "triple",
        "tripled",
        "thrice",
        "quarter",
        "squared",
        "square",
        "cubed",
        "cube",
        "percent",
        "percentage",
        "average",
        "mean",
        "avg",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "last",
        "pair",
        "couple",
        "both",
        "once",
    ];
    w.split('-').any(|part| WORDS.contains(&part))
}

/// One item of a skeleton or signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// A word (skeleton: lower-cased; signature: canonical).
    Word(String),
    /// A canonical operation word (signature only).
    Op(Op),
    /// A negation (signature only).
    Not,
    /// A slot of the template, by index.
    Slot(usize),
}

/// What lies outside a template's slots, as the guard compares it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Analysis {
    /// Every token outside the slots except [`TokenKind::Punct`] (boundaries at either end
    /// trimmed), lower-cased, with each slot occurrence as one [`Item::Slot`].
    pub skeleton: Vec<Item>,
    /// The skeleton with synonyms canonicalised, operations and negations marked, and
    /// fillers dropped only where paraphrases put them (see [`analyse`]).
    pub signature: Vec<Item>,
    /// The operations in the signature, sorted (a multiset; "done", "remind", "put", "new"
    /// count as theirs). "calculate"/"what is" at the start is left out when an arithmetic
    /// operation is present (it adds nothing to "7 times 6").
    pub operations: Vec<Op>,
    /// How many negations the signature holds.
    pub negations: u32,
    /// Indexes of literal tokens outside every slot.
    pub unbound: Vec<usize>,
}

/// Which slot occurrence covers a token: `(slot, occurrence)`, and whether that slot is a
/// title (fillers next to it are kept: they might be part of the title).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cover {
    pub slot: usize,
    pub occurrence: usize,
    /// A text, quoted or id slot (a title), as opposed to a number.
    pub text: bool,
}

/// Analyses `tokens`, where `cover[i]` says which slot occurrence covers token `i` (if any).
///
/// Fillers are dropped from the signature only where a paraphrase naturally puts them, and
/// kept as written elsewhere (a planner reads word order strictly):
/// - never next to a title (text, quoted or id slot): "buy milk for me" may be the title;
/// - any filler at the start of the prompt ("could you", "please", "I want to", "hey");
/// - politeness at the end ("..., thanks", "please", "thank you", "thx");
/// - "me" and "all" right after "list"/"show" ("show me all my tasks");
/// - determiners (`the`, `my`) before a title stay as written; elsewhere they are one class
///   `det`, dropped before "todo(s)" right after a verb or preposition ("list my todos" =
///   "list todos"), never when two come in a row.
pub fn analyse(tokens: &[Token], cover: &[Option<Cover>]) -> Analysis {
    let cover_of = |i: usize| cover.get(i).copied().flatten();
    let mut out = Analysis::default();
    // Skeleton and unbound literals.
    let mut last: Option<Cover> = None;
    for (i, t) in tokens.iter().enumerate() {
        match cover_of(i) {
            Some(c) => {
                if last != Some(c) {
                    out.skeleton.push(Item::Slot(c.slot));
                }
                last = Some(c);
            }
            None => {
                last = None;
                if t.kind == TokenKind::Punct {
                    continue;
                }
                if t.kind == TokenKind::Boundary {
                    out.skeleton.push(Item::Word(t.norm.clone()));
                    continue;
                }
                if t.is_literal() {
                    out.unbound.push(i);
                }
                out.skeleton.push(Item::Word(t.norm.clone()));
            }
        }
    }
    // Signature: segments of uncovered word/symbol tokens, phrases matched inside a segment;
    // fillers are decided once their position is known.
    enum Raw {
        Item(Item),
        Filler {
            kind: Filler,
            words: Vec<String>,
            /// A text slot right before or after, nothing in between.
            touching: bool,
            /// A text slot before or after with only punctuation in between.
            near: bool,
        },
    }
    let text_at = |i: Option<usize>| i.and_then(cover_of).is_some_and(|c| c.text);
    // The nearest token before `from` / from `to` on that is not punctuation.
    let before_gap = |from: usize| {
        let mut k = from;
        while k > 0 && tokens[k - 1].is_gap() {
            k -= 1;
        }
        k.checked_sub(1)
    };
    let after_gap = |to: usize| (to..tokens.len()).find(|&k| !tokens[k].is_gap());
    let mut raw: Vec<Raw> = Vec::new();
    let mut last: Option<Cover> = None;
    let mut i = 0;
    while i < tokens.len() {
        if let Some(c) = cover_of(i) {
            if last != Some(c) {
                raw.push(Raw::Item(Item::Slot(c.slot)));
            }
            last = Some(c);
            i += 1;
            continue;
        }
        last = None;
        let t = &tokens[i];
        if t.kind == TokenKind::Punct {
            i += 1;
            continue;
        }
        if t.kind == TokenKind::Boundary || !matches!(t.kind, TokenKind::Word | TokenKind::Symbol) {
            raw.push(Raw::Item(Item::Word(t.norm.clone())));
            i += 1;
            continue;
        }
        let mut seg_end = i;
        while seg_end < tokens.len()
            && cover_of(seg_end).is_none()
            && matches!(tokens[seg_end].kind, TokenKind::Word | TokenKind::Symbol)
        {
            seg_end += 1;
        }
        let mut k = i;
        while k < seg_end {
            let phrase = PHRASES.iter().find(|(words, _)| {
                k + words.len() <= seg_end
                    && words
                        .iter()
                        .enumerate()
                        .all(|(j, w)| tokens[k + j].norm == *w)
            });
            let (len, lex) = match phrase {
                Some((words, lex)) => (words.len(), Some(*lex)),
                None => (1, word_lex(&tokens[k].norm)),
            };
            raw.push(match lex {
                Some(Lex::Filler(kind)) => Raw::Filler {
                    kind,
                    words: tokens[k..k + len].iter().map(|t| t.norm.clone()).collect(),
                    touching: text_at(k.checked_sub(1)) || text_at(Some(k + len)),
                    near: text_at(before_gap(k)) || text_at(after_gap(k + len)),
                },
                // "my list", "the list": the noun.
                Some(Lex::Op(Op::List))
                    if tokens[k].norm == "list"
                        && matches!(
                            raw.last(),
                            Some(Raw::Filler {
                                kind: Filler::Det,
                                ..
                            })
                        ) =>
                {
                    Raw::Item(Item::Word("todos".to_owned()))
                }
                Some(Lex::Op(op)) => Raw::Item(Item::Op(op)),
                Some(Lex::Not) => Raw::Item(Item::Not),
                Some(Lex::Word(w)) => Raw::Item(Item::Word(w.to_owned())),
                None => Raw::Item(Item::Word(tokens[k].norm.clone())),
            });
            k += len;
        }
        i = seg_end;
    }
    // Where a filler may be dropped: see the doc comment. "calculate"/"what is" at the start
    // (or after a period or "then") is dropped later if the prompt has an arithmetic
    // operation ("what is 7 times 6" = "7 times 6"); elsewhere it stays.
    let counts = |r: &Raw| matches!(r, Raw::Item(it) if !is_boundary_item(it));
    let first = raw.iter().position(counts).unwrap_or(raw.len());
    let last_counting = raw.iter().rposition(counts);
    let text_slots: std::collections::HashSet<usize> = cover
        .iter()
        .flatten()
        .filter(|c| c.text)
        .map(|c| c.slot)
        .collect();
    let is_text_slot = |r: &Raw| matches!(r, Raw::Item(Item::Slot(s)) if text_slots.contains(s));
    let mut text_later = vec![false; raw.len() + 1];
    for (k, r) in raw.iter().enumerate().rev() {
        text_later[k] = text_later[k + 1] || is_text_slot(r);
    }
    let raw_next_det: Vec<bool> = (0..raw.len())
        .map(|k| {
            matches!(
                raw.get(k + 1),
                Some(Raw::Filler {
                    kind: Filler::Det,
                    ..
                })
            )
        })
        .collect();
    let before_todo: Vec<bool> = (0..raw.len())
        .map(|k| {
            matches!(raw.get(k + 1), Some(Raw::Item(Item::Word(w))) if w == "todo" || w == "todos")
        })
        .collect();
    let at_clause_start = |sig: &[Item]| match sig.last() {
        None => true,
        Some(Item::Word(w)) => matches!(w.as_str(), "." | "then"),
        _ => false,
    };
    // Indexes of "calculate"/"what is" at a clause start.
    let mut leading_calc = Vec::new();
    // After "list"/"show" (and the fillers dropped after it).
    let mut after_list = false;
    // The previous item was a determiner ("from the my list" keeps both).
    let mut after_det = false;
    for (k, r) in raw.into_iter().enumerate() {
        let det = matches!(
            r,
            Raw::Filler {
                kind: Filler::Det,
                ..
            }
        );
        let previous_det = std::mem::replace(&mut after_det, det);
        let (kind, words, touching, near) = match r {
            Raw::Item(it) => {
                after_list = it == Item::Op(Op::List);
                if it == Item::Op(Op::Calc) && at_clause_start(&out.signature) {
                    leading_calc.push(out.signature.len());
                }
                out.signature.push(it);
                continue;
            }
            Raw::Filler {
                kind,
                words,
                touching,
                near,
            } => (kind, words, touching, near),
        };
        let leading = k < first;
        let trailing = last_counting.is_none_or(|l| k > l);
        let after_verb = match out.signature.last() {
            None | Some(Item::Op(_)) => true,
            Some(Item::Word(w)) => {
                matches!(
                    w.as_str(),
                    "to" | "on" | "off" | "from" | "in" | "of" | "into" | "onto"
                )
            }
            _ => false,
        };
        let single = |w: &str| words.len() == 1 && words[0] == w;
        let title_near = near || text_later[k];
        let drop = !touching
            && match kind {
                Filler::Det => {
                    !title_near
                        && !previous_det
                        && !matches!(raw_next_det.get(k), Some(true))
                        && (leading || (before_todo[k] && after_verb))
                }
                Filler::Polite => leading || trailing,
                Filler::Lead => leading || (after_list && (single("me") || single("all"))),
            };
        if drop {
            continue;
        }
        after_list = false;
        if kind == Filler::Det && !touching && !title_near {
            out.signature.push(Item::Word("det".to_owned()));
        } else {
            out.signature.extend(words.into_iter().map(Item::Word));
        }
    }
    if out
        .signature
        .iter()
        .any(|it| matches!(it, Item::Op(op) if op.is_arithmetic()))
    {
        for &k in leading_calc.iter().rev() {
            out.signature.remove(k);
        }
    }
    // Boundaries at either end say nothing.
    trim_boundaries(&mut out.skeleton);
    trim_boundaries(&mut out.signature);
    out.operations = out
        .signature
        .iter()
        .filter_map(|it| match it {
            Item::Op(op) => Some(*op),
            Item::Word(w) => word_op(w),
            _ => None,
        })
        .collect();
    out.operations.sort_unstable();
    out.negations = out.signature.iter().filter(|it| **it == Item::Not).count() as u32;
    out
}

fn is_boundary_item(item: &Item) -> bool {
    matches!(item, Item::Word(w) if matches!(w.as_str(), "," | ":" | "."))
}

fn trim_boundaries(items: &mut Vec<Item>) {
    let start = items
        .iter()
        .position(|it| !is_boundary_item(it))
        .unwrap_or(items.len());
    items.drain(..start);
    while items.last().is_some_and(is_boundary_item) {
        items.pop();
    }
}

/// The words inside free text that could change how a planner reads it, in order:
/// operations, negations, joiners ("and", "then", punctuation), the todo nouns, politeness,
/// references ("it", "first"), quotes, and a first or last word a planner may take for the
/// phrase around the title ([`edge_marker`]), ordinals ("second", "2nd": a position in the
/// list) and numbers after an arithmetic word ("walk the dog from 50"). `first..=last` are
/// the indexes of the text's tokens in `tokens`. A text slot only re-binds to text with
/// exactly the same markers in the same order, so "buy milk" never re-binds to "buy milk and
/// delete eggs", "buy milk please" or "for 2 apples", and "X and don't delete Y" never to
/// "X and delete don't Y".
pub fn structure_markers(tokens: &[Token], first: usize, last: usize) -> Vec<String> {
    let mut out = Vec::new();
    let Some(span) = tokens.get(first..=last) else {
        return out;
    };
    let f = span.iter().position(|t| !t.is_gap());
    let l = span.iter().rposition(|t| !t.is_gap());
    if let Some(f) = f {
        out.extend(edge_marker(&span[f], true));
    }
    out.extend((first..=last).filter_map(|i| token_marker(tokens, i)));
    if let Some(l) = l {
        out.extend(edge_marker(&span[l], false));
    }
    out
}

/// The structure marker of token `i` inside free text, if any.
pub fn token_marker(tokens: &[Token], i: usize) -> Option<String> {
    let t = tokens.get(i)?;
    let previous = tokens[..i].iter().rev().find(|p| !p.is_gap());
    // "from 50", "by 3", "to 40": a planner may read arithmetic there.
    if t.kind == TokenKind::Number
        && previous.is_some_and(|p| {
            p.kind == TokenKind::Symbol
                || matches!(
                    word_lex(&p.norm),
                    Some(Lex::Op(op)) if op.is_arithmetic() || op == Op::Add
                )
                || matches!(
                    p.norm.as_str(),
                    "from" | "by" | "to" | "of" | "into" | "and" | "over" | "with" | "what" | "is"
                )
        })
    {
        return Some("arith".to_owned());
    }
    if is_ordinal(t) {
        return Some("ordinal".to_owned());
    }
    match t.kind {
        TokenKind::Quoted => Some("quote".to_owned()),
        TokenKind::Boundary => Some(t.norm.clone()),
        // A planner may split "1,000" at its comma or drop a sign.
        TokenKind::Number if t.norm.contains(',') => Some(",".to_owned()),
        TokenKind::Number if t.norm.starts_with('-') => Some("-".to_owned()),
        TokenKind::Symbol if t.norm != "(" && t.norm != ")" => Some(t.norm.clone()),
        TokenKind::Word => word_marker(&t.norm),
        _ => None,
    }
}

/// A position in a list: "second", "tenth", "2nd", "second-to-last".
fn is_ordinal(t: &Token) -> bool {
    const WORDS: &[&str] = &[
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "last",
        "penultimate",
        "previous",
        "next",
    ];
    match t.kind {
        TokenKind::Word => t.norm.split('-').any(|p| WORDS.contains(&p)),
        TokenKind::Other => {
            let n = t.norm.to_lowercase();
            let digits = n.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && matches!(&n[digits.len()..], "st" | "nd" | "rd" | "th")
        }
        _ => false,
    }
}

/// Words a planner may read as the start (`start`) or end of the phrase around a title
/// rather than as part of it: "add todo *for* 2 apples", "add *the* milk", "buy milk *to*".
pub fn edge_marker(t: &Token, start: bool) -> Option<String> {
    if t.kind != TokenKind::Word {
        return None;
    }
    let w = t.norm.as_str();
    let edge = if start {
        matches!(
            w,
            "to" | "for"
                | "called"
                | "named"
                | "titled"
                | "saying"
                | "says"
                | "that"
                | "about"
                | "which"
                | "reading"
                | "labelled"
                | "labeled"
                | "with"
                | "a"
                | "an"
                | "the"
                | "my"
                | "some"
                | "another"
                | "me"
                | "this"
                | "these"
                | "those"
                | "what"
                | "what's"
                | "how"
                | "why"
                | "when"
                | "where"
                | "who"
                | "all"
                | "every"
                | "each"
                | "both"
                | "any"
                | "everything"
        )
    } else {
        matches!(
            w,
            "to" | "for"
                | "on"
                | "off"
                | "from"
                | "as"
                | "in"
                | "into"
                | "onto"
                | "of"
                | "with"
                | "by"
                | "at"
                | "me"
                | "a"
                | "an"
                | "the"
                | "my"
        )
    };
    edge.then(|| format!("{}:{w}", if start { "start" } else { "end" }))
}

fn word_marker(w: &str) -> Option<String> {
    match word_lex(w) {
        Some(Lex::Op(op)) => return Some(format!("op:{}", op.as_str())),
        Some(Lex::Word(w)) if word_op(w).is_some() => {
            return word_op(w).map(|op| format!("op:{}", op.as_str()));
        }
        Some(Lex::Not) => return Some("not".to_owned()),
        _ => {}
    }
    let marker = match w {
        "and" | "then" | "also" | "or" | "after" | "afterwards" | "before" | "next" | "finally" => {
            w
        }
        "todo" | "todos" | "task" | "tasks" | "to-do" | "to-dos" | "item" | "items"
        | "reminder" | "reminders" => "noun",
        "please" | "pls" | "plz" | "thanks" | "thank" | "thx" | "kindly" | "ok" | "okay" => {
            "polite"
        }
        "it" | "them" | "first" | "last" | "mark" | "check" | "tick" | "cross" | "take" | "off"
        | "rid" => w,
        _ => return None,
    };
    Some(marker.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(TokenKind, String)> {
        tokenize(s)
            .into_iter()
            .map(|t| (t.kind, t.inner.text(s).to_owned()))
            .collect()
    }

    #[test]
    fn numbers_signs_and_groups() {
        use TokenKind::*;
        assert_eq!(
            kinds("what is -3 times 1,000.5 - 2"),
            [
                (Word, "what".into()),
                (Word, "is".into()),
                (Number, "-3".into()),
                (Word, "times".into()),
                (Number, "1,000.5".into()),
                (Symbol, "-".into()),
                (Number, "2".into()),
            ]
        );
        assert_eq!(
            kinds("(41*7)+13"),
            [
                (Symbol, "(".into()),
                (Number, "41".into()),
                (Symbol, "*".into()),
                (Number, "7".into()),
                (Symbol, ")".into()),
                (Symbol, "+".into()),
                (Number, "13".into()),
            ]
        );
        assert_eq!(
            kinds("10-3 .5 2.5e3 5pm 2nd 1,2,3 2."),
            [
                (Number, "10".into()),
                (Symbol, "-".into()),
                (Number, "3".into()),
                (Number, ".5".into()),
                (Number, "2.5e3".into()),
                (Other, "5pm".into()),
                (Other, "2nd".into()),
                (Other, "1,2,3".into()),
                (Number, "2".into()),
                (Boundary, ".".into()),
            ]
        );
        assert_eq!(canonical_number("1,000"), "1000");
        assert_eq!(canonical_number(".5"), "0.5");
        assert_eq!(canonical_number("-.5"), "-0.5");
        assert!(is_number("1,000,000") && !is_number("1,00") && !is_number("1.2.3"));
        assert!(is_number("-2.5e-3") && !is_number("e3") && !is_number("-"));
    }

    #[test]
    fn quotes_apostrophes_and_ids() {
        use TokenKind::*;
        assert_eq!(
            kinds("add 'mom's cake' and “Café ☕” don't"),
            [
                (Word, "add".into()),
                (Quoted, "mom's cake".into()),
                (Word, "and".into()),
                (Quoted, "Café ☕".into()),
                (Word, "don't".into()),
            ]
        );
        // Unbalanced quotes are punctuation.
        assert_eq!(
            kinds("say \"hi"),
            [
                (Word, "say".into()),
                (Punct, "\"".into()),
                (Word, "hi".into())
            ]
        );
        let id = "0190b4a2-5c3e-7d4f-8a9b-123456789abc";
        assert_eq!(
            kinds(&format!("complete {id}.")),
            [
                (Word, "complete".into()),
                (Id, id.into()),
                (Boundary, ".".into())
            ]
        );
        let lits = literals(&format!("delete {id} and \"x\" then 2+3*4"));
        let got: Vec<_> = lits.iter().map(|l| (l.kind, l.text.as_str())).collect();
        assert_eq!(
            got,
            [
                (LiteralKind::Id, id),
                (LiteralKind::Quoted, "x"),
                (LiteralKind::Expression, "2+3*4"),
                (LiteralKind::Number, "2"),
                (LiteralKind::Number, "3"),
                (LiteralKind::Number, "4"),
            ]
        );
    }

    #[test]
    fn signature_canonicalises_and_keeps_fillers_next_to_titles() {
        let sig = |s: &str| analyse(&tokenize(s), &[]).signature;
        assert_eq!(sig("Show me all my tasks!"), sig("list my todos"));
        assert_eq!(
            sig("could you please display my to-do list"),
            sig("list todos")
        );
        assert_ne!(sig("list my done todos"), sig("list my todos"));
        let a = analyse(&tokenize("don't delete my todos"), &[]);
        assert_eq!((a.negations, a.operations.clone()), (1, vec![Op::Delete]));
        let a = analyse(&tokenize("what is 7 times 6"), &[]);
        assert_eq!(a.operations, [Op::Times]);
        // "for me" right after a title stays: it may be part of the title.
        let toks = tokenize("add buy milk for me");
        let text = Some(Cover {
            slot: 0,
            occurrence: 0,
            text: true,
        });
        let a = analyse(&toks, &[None, text, text]);
        assert_eq!(
            a.signature,
            [
                Item::Op(Op::Add),
                Item::Slot(0),
                Item::Word("for".into()),
                Item::Word("me".into())
            ]
        );
    }

    #[test]
    fn ambiguous_quotes_are_not_quoted_text() {
        use TokenKind::*;
        assert_eq!(
            kinds("add \"Buy \"x\""),
            [
                (Word, "add".into()),
                (Punct, "\"".into()),
                (Word, "Buy".into()),
                (Quoted, "x".into()),
            ]
        );
        // “ closes only with ”.
        assert_eq!(
            kinds("“a\" b"),
            [
                (Punct, "“".into()),
                (Word, "a".into()),
                (Punct, "\"".into()),
                (Word, "b".into()),
            ]
        );
    }

    #[test]
    fn wording_that_planners_read_differently_stays_different() {
        let sig = |s: &str| analyse(&tokenize(s), &[]).signature;
        assert_eq!(sig("list my todos"), sig("list todos"));
        assert_eq!(
            sig("delete the last todo"),
            sig("please delete my last todo")
        );
        assert_ne!(sig("delete the last todo"), sig("delete last the todo"));
        assert_ne!(sig("complete the first one"), sig("complete a first one"));
        assert_ne!(sig("remind me to go"), sig("add me to go"));
        assert_ne!(sig("mark it as done"), sig("mark it as complete"));
        assert_ne!(sig("3 plus 4, times 2"), sig("3 plus 4 times 2"));
        assert_ne!(sig("then show my todos"), sig("then me show my todos"));
        assert_ne!(sig("min of 4, 8 and 15"), sig("min of 4, 8 and compute 15"));
        assert_eq!(sig("what is 7 times 6"), sig("7 times 6"));
        assert_eq!(sig("what is 7 times 6?"), sig("what is 7 times 6"));
        // Ordinals and numbers after arithmetic words are structure inside a title.
        let toks = tokenize("walk the dog from 50 and the 2nd one");
        let markers = structure_markers(&toks, 0, toks.len() - 1);
        assert_eq!(markers, ["arith", "and", "ordinal"]);
        assert_eq!(
            analyse(&tokenize("mark it done"), &[]).operations,
            [Op::Complete]
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "",
            "\"",
            "'''''",
            "“",
            "-",
            "-.",
            ".",
            "1e",
            "1e+",
            "e-5",
            "a'-b",
            "\u{200D}",
            "👩\u{200D}💻",
            "\u{0301}x",
            "ab\u{FEFF}cd",
            "0190b4a2-5c3e-7d4f-8a9b-123456789abcd",
        ] {
            let toks = tokenize(s);
            for t in &toks {
                assert!(s.get(t.span.start..t.span.end).is_some(), "{s:?}");
            }
            let _ = literals(s);
            let _ = analyse(&toks, &[]);
        }
        for long in [
            "\"'“«".repeat(5000),
            "'".repeat(20_000),
            "a'".repeat(10_000),
        ] {
            assert!(!tokenize(&long).is_empty());
        }
    }
}
