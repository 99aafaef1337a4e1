//! A plan template: a validated plan whose literals are slots bound to spans of its prompt.
//!
//! [`PlanTemplate::from_plan`] walks every value in the plan's step inputs:
//! - structure, kept as is: booleans, nulls, strings whose schema is an `enum`/`const`
//!   (`"order": "newest_first"`), and `${steps.N.path}` references;
//! - arithmetic strings (only numbers, operators, parentheses and calculator words, e.g. the
//!   calculator's `"7 * 6"` or `"(${steps.1.value}) + 8"`): each number becomes a number slot
//!   bound to a number in the prompt with the same value (`"{n1} * {n2}"`), the rest is
//!   structure;
//! - JSON numbers (`"limit": 5`): a number slot;
//! - any other string (free text such as a title): a text slot, found verbatim (case and all)
//!   in the prompt at token boundaries, or the text between a pair of quotes (a quoted slot),
//!   or a todo id (an id slot).
//!
//! There is no expression slot: an arithmetic expression in the prompt (`(41*7)+13`) is bound
//! number by number and its operators stay wording, so a re-bound expression can change its
//! numbers but never its operators or grouping.
//!
//! A value that cannot be bound makes the plan [`NotCacheable`]: serving it for another
//! prompt could carry this prompt's literal into that one. So does a prompt literal that no
//! slot consumed (a number the plan does not use was still meant for something), a number
//! that could have come from a word ("squared", "half", "average", "first") when the plan has
//! number slots, and a number value that occurs a different number of times in the plan and in
//! the prompt (`"2 ^ 2"` from "2 squared"), or a title that occurs several times and reads as
//! a command word ("list my todos and add a todo to list"), or more than
//! `MAX_OCCURRENCES` (16) times. Every occurrence of a slot's value is bound: all of them must
//! re-bind to the same new text ("2 plus 2" re-binds to "5 plus 5", never to "5 plus 7").
//! A text slot keeps its structure markers ([`literals::structure_markers`]): the guard
//! re-binds a plain title only to plain text, and a title with structure only to itself.
//!
//! The template is persisted as JSON (SQLite and PostgreSQL); [`TEMPLATE_FORMAT_VERSION`]
//! changes whenever its meaning does, and the guard refuses templates of another version.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::literals::{self, Analysis, Cover, Item, MAX_PROMPT_BYTES, Op, Span, Token, TokenKind};
use crate::domain::PlanStep;
use crate::domain::reference;
use crate::planning::validate::MAX_STEPS;
use crate::tools::ToolRegistry;

/// The version of the template's JSON form and meaning.
pub const TEMPLATE_FORMAT_VERSION: u32 = 1;

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    /// A number in the prompt (inside an arithmetic string or a JSON number).
    Number,
    /// Free text cut from the prompt at token boundaries (a todo title).
    Text,
    /// The text between a pair of quotes.
    Quoted,
    /// A todo id.
    Id,
}

impl SlotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Text => "text",
            Self::Quoted => "quoted",
            Self::Id => "id",
        }
    }
}

/// How a number slot's prompt text becomes plan text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberForm {
    /// [`literals::canonical_number`]: `1,000` → `1000`, `.5` → `0.5`.
    Canonical,
    /// As written in the prompt.
    Verbatim,
}

impl NumberForm {
    pub fn render(self, prompt_text: &str) -> String {
        match self {
            Self::Canonical => literals::canonical_number(prompt_text),
            Self::Verbatim => prompt_text.to_owned(),
        }
    }
}

/// One slot: a literal of the prompt that the plan carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub kind: SlotKind,
    /// The value as the plan has it (for numbers: the plan's text, e.g. `1000`).
    pub value: String,
    /// Every place in the prompt it was bound to (for quoted slots: the text between the
    /// quotes). More than one: the same value occurs several times and every occurrence must
    /// re-bind to the same text.
    pub spans: Vec<Span>,
    /// Number slots: how the prompt's text is written into the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<NumberForm>,
    /// Text slots: the structure markers inside the text ([`literals::structure_markers`]);
    /// a re-bound text must have exactly these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub structure: Vec<String>,
}

impl Slot {
    /// True for a number written with a leading minus.
    pub(super) fn negative(&self) -> bool {
        self.value.starts_with('-')
    }
}

/// A piece of an arithmetic string: text kept as is, or a number slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Piece {
    Text(String),
    Slot(usize),
}

/// What a hole in a step's input is filled with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fill")]
pub enum Fill {
    /// The whole string is a text, quoted or id slot.
    Text { slot: usize },
    /// A JSON number from a number slot; `integer`: the plan had an integer (a re-bound value
    /// must be one too).
    Number { slot: usize, integer: bool },
    /// An arithmetic string: text pieces and number slots.
    Pieces { pieces: Vec<Piece> },
}

/// One hole: where in a step's input (a JSON pointer) and what fills it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hole {
    pub pointer: String,
    #[serde(flatten)]
    pub fill: Fill,
}

/// One step of the template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTemplate {
    pub tool: String,
    /// The step's input as planned; holes are overwritten when the plan is re-bound.
    pub input: Value,
    pub reasoning: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holes: Vec<Hole>,
}

/// A plan whose literals are slots bound to spans of the prompt it was planned for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanTemplate {
    /// [`TEMPLATE_FORMAT_VERSION`] when it was made.
    pub format_version: u32,
    /// The prompt the plan was made for.
    pub prompt: String,
    pub steps: Vec<StepTemplate>,
    pub slots: Vec<Slot>,
    /// The prompt's words outside the slots, lower-cased, punctuation dropped, each slot
    /// occurrence as one item.
    pub skeleton: Vec<Item>,
    /// The skeleton canonicalised for paraphrases ([`literals::Analysis::signature`]).
    pub signature: Vec<Item>,
    /// Canonical operations outside the slots, sorted.
    pub operations: Vec<Op>,
    /// Negations outside the slots.
    pub negations: u32,
}

/// Why a plan cannot be served for other prompts (only for its exact prompt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCacheable {
    #[error("the prompt is longer than {MAX_PROMPT_BYTES} bytes")]
    TooLong,
    #[error("the plan has no steps or more than {MAX_STEPS}")]
    PlanSize,
    #[error("step {step} calls the unknown tool '{tool}'")]
    UnknownTool { step: usize, tool: String },
    #[error("step {step} {pointer}: a reference cannot be read: {message}")]
    BadReference {
        step: usize,
        pointer: String,
        message: String,
    },
    #[error("step {step} {pointer}: the text '{value}' is not in the prompt")]
    UnboundText {
        step: usize,
        pointer: String,
        value: String,
    },
    #[error("step {step} {pointer}: the number {value} is not in the prompt")]
    UnboundNumber {
        step: usize,
        pointer: String,
        value: String,
    },
    #[error(
        "the number {value} occurs {in_plan} times in the plan but {in_prompt} times in the prompt"
    )]
    AmbiguousNumber {
        value: String,
        in_plan: usize,
        in_prompt: usize,
    },
    #[error("'{value}' is bound to overlapping or mixed places in the prompt")]
    OverlappingSlots { value: String },
    #[error("'{value}' occurs several times in the prompt and reads as a command word")]
    AmbiguousText { value: String },
    #[error("the prompt has '{word}', which may stand for a number the plan uses")]
    ImplicitNumber { word: String },
    #[error("the prompt's literal '{literal}' is not used by the plan")]
    UnusedLiteral { literal: String },
}

impl NotCacheable {
    /// A label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::PlanSize => "plan_size",
            Self::UnknownTool { .. } => "unknown_tool",
            Self::BadReference { .. } => "bad_reference",
            Self::UnboundText { .. } => "unbound_text",
            Self::UnboundNumber { .. } => "unbound_number",
            Self::AmbiguousNumber { .. } => "ambiguous_number",
            Self::OverlappingSlots { .. } => "overlapping_slots",
            Self::AmbiguousText { .. } => "ambiguous_text",
            Self::ImplicitNumber { .. } => "implicit_number",
            Self::UnusedLiteral { .. } => "unused_literal",
        }
    }
}

/// A number found in a plan value.
struct PlanNumber {
    text: String,
}

/// What one leaf of a step's input is.
enum Leaf {
    /// A JSON number.
    Number {
        step: usize,
        pointer: String,
        text: String,
        integer: bool,
    },
    /// An arithmetic string: text and numbers, in order.
    Arithmetic {
        step: usize,
        pointer: String,
        parts: Vec<Result<String, PlanNumber>>,
    },
    /// A free-text string.
    Text {
        step: usize,
        pointer: String,
        value: String,
    },
}

/// Most places one value may be bound to.
pub(super) const MAX_OCCURRENCES: usize = 16;

/// Where a text value can sit in a prompt: starting at a token start and ending at a token end
/// (neither token punctuation), or exactly the text between a pair of quotes.
pub(super) struct Positions {
    starts: HashMap<usize, usize>,
    ends: HashMap<usize, usize>,
    quoted: HashMap<(usize, usize), usize>,
}

impl Positions {
    pub(super) fn new(tokens: &[Token]) -> Self {
        let mut starts = HashMap::new();
        let mut ends = HashMap::new();
        let mut quoted = HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            if !t.is_gap() {
                starts.insert(t.span.start, i);
                ends.insert(t.span.end, i);
            }
            if t.kind == TokenKind::Quoted {
                quoted.insert((t.inner.start, t.inner.end), i);
            }
        }
        Self {
            starts,
            ends,
            quoted,
        }
    }

    /// Every place `value` occurs in `prompt` as its own span, with the tokens it covers and
    /// whether it is a quoted token's inner text. Overlapping places are all listed; past
    /// [`MAX_OCCURRENCES`] the search stops (the caller refuses that many).
    pub(super) fn occurrences(&self, prompt: &str, value: &str) -> Vec<Occurrence> {
        let mut out = Vec::new();
        if value.is_empty() {
            return out;
        }
        let mut from = 0;
        while out.len() <= MAX_OCCURRENCES
            && let Some(found) = prompt.get(from..).and_then(|rest| rest.find(value))
        {
            let start = from + found;
            let end = start + value.len();
            if let Some(&tok) = self.quoted.get(&(start, end)) {
                out.push(Occurrence {
                    span: Span::new(start, end),
                    first: tok,
                    last: tok,
                    quoted: true,
                });
            } else if let (Some(&first), Some(&last)) =
                (self.starts.get(&start), self.ends.get(&end))
                && first <= last
            {
                out.push(Occurrence {
                    span: Span::new(start, end),
                    first,
                    last,
                    quoted: false,
                });
            }
            // Next char boundary after `start`.
            from = start
                + prompt
                    .get(start..)
                    .and_then(|r| r.chars().next())
                    .map_or(1, char::len_utf8);
        }
        out
    }
}

/// One place a text value occurs: its span and the tokens it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Occurrence {
    pub(super) span: Span,
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) quoted: bool,
}

/// The kind of a text value's slot from where it occurs, if the places agree.
pub(super) fn text_kind(tokens: &[Token], occ: &[Occurrence]) -> Option<SlotKind> {
    let all_quoted = occ.iter().all(|o| o.quoted);
    let none_quoted = occ.iter().all(|o| !o.quoted);
    let all_ids = occ
        .iter()
        .all(|o| !o.quoted && o.first == o.last && tokens[o.first].kind == TokenKind::Id);
    if occ.is_empty() {
        None
    } else if all_ids {
        Some(SlotKind::Id)
    } else if all_quoted {
        Some(SlotKind::Quoted)
    } else if none_quoted {
        Some(SlotKind::Text)
    } else {
        None
    }
}

/// True if any two occurrences overlap.
pub(super) fn any_overlap(occ: &[Occurrence]) -> bool {
    occ.iter()
        .enumerate()
        .any(|(i, a)| occ[i + 1..].iter().any(|b| a.span.overlaps(&b.span)))
}

/// Splits an arithmetic string into text and numbers, or `None` if it is not arithmetic (a
/// word other than a calculator name, a quote, an id...). References are kept as text.
fn arithmetic_parts(value: &str) -> Option<Vec<Result<String, PlanNumber>>> {
    let mut parts = Vec::new();
    let mut numbers = 0;
    let mut text = String::new();
    let mut segment =
        |seg: &str, parts: &mut Vec<Result<String, PlanNumber>>, text: &mut String| {
            let toks = literals::tokenize(seg);
            let mut at = 0;
            for t in &toks {
                let ok = match t.kind {
                    TokenKind::Number => true,
                    TokenKind::Symbol => {
                        t.norm != "&" && t.norm != "=" && t.norm != "<" && t.norm != ">"
                    }
                    TokenKind::Boundary => matches!(t.span.text(seg), "," | "."),
                    TokenKind::Word => literals::is_calculator_word(&t.norm),
                    _ => false,
                };
                if !ok {
                    return false;
                }
                if t.kind == TokenKind::Number {
                    text.push_str(seg.get(at..t.span.start).unwrap_or(""));
                    if !text.is_empty() {
                        parts.push(Ok(std::mem::take(text)));
                    }
                    parts.push(Err(PlanNumber {
                        text: t.norm.clone(),
                    }));
                    numbers += 1;
                    at = t.span.end;
                }
            }
            text.push_str(seg.get(at..).unwrap_or(""));
            true
        };
    let mut rest = value;
    while let Some(pos) = rest.find("${") {
        let end = rest[pos..].find('}').map(|e| pos + e + 1)?;
        if !segment(&rest[..pos], &mut parts, &mut text) {
            return None;
        }
        text.push_str(&rest[pos..end]);
        rest = &rest[end..];
    }
    if !segment(rest, &mut parts, &mut text) {
        return None;
    }
    if !text.is_empty() {
        parts.push(Ok(text));
    }
    (numbers > 0).then_some(parts)
}

/// True if the schema accepts only listed values (`enum`/`const`, possibly behind `$ref` and
/// `anyOf`/`oneOf` with `null`).
fn is_enum_like(root: &Value, schema: &Value, depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    let schema = resolve(root, schema, depth);
    if schema.get("enum").is_some() || schema.get("const").is_some() {
        return true;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            return !branches.is_empty()
                && branches.iter().all(|b| {
                    let b = resolve(root, b, depth + 1);
                    b.get("type").and_then(Value::as_str) == Some("null")
                        || is_enum_like(root, b, depth + 1)
                });
        }
    }
    false
}

fn resolve<'a>(root: &'a Value, schema: &'a Value, depth: usize) -> &'a Value {
    let mut s = schema;
    for _ in depth..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => s = target,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

/// The schema of the value at `key` under `schema` (an object property or array items).
fn child<'a>(root: &'a Value, schema: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    let schema = resolve(root, schema, 0);
    let direct = match key {
        Some(k) => schema.get("properties").and_then(|p| p.get(k)),
        None => schema.get("items"),
    };
    if direct.is_some() {
        return direct;
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            for b in branches {
                if let Some(found) = child(root, b, key) {
                    return Some(found);
                }
            }
        }
    }
    None
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Collects the leaves of one step's input that may carry literals.
fn collect(
    step: usize,
    root: &Value,
    schema: Option<&Value>,
    value: &Value,
    pointer: String,
    leaves: &mut Vec<Leaf>,
) -> Result<(), NotCacheable> {
    match value {
        Value::Null | Value::Bool(_) => {}
        Value::Number(n) => leaves.push(Leaf::Number {
            step,
            pointer,
            text: n.to_string(),
            integer: n.is_i64() || n.is_u64(),
        }),
        Value::String(s) => {
            if schema.is_some_and(|sc| is_enum_like(root, sc, 0)) || s.trim().is_empty() {
                return Ok(());
            }
            if s.contains("${") {
                reference::parse_string(s).map_err(|e| NotCacheable::BadReference {
                    step,
                    pointer: pointer.clone(),
                    message: e.to_string(),
                })?;
                if s.contains("$${") {
                    return Err(NotCacheable::UnboundText {
                        step,
                        pointer,
                        value: s.clone(),
                    });
                }
                match arithmetic_parts(s) {
                    Some(parts) => leaves.push(Leaf::Arithmetic {
                        step,
                        pointer,
                        parts,
                    }),
                    None => {
                        // References and nothing else that could carry a literal: structure.
                        let bare = strip_references(s);
                        if !bare.chars().all(|c| {
                            c.is_whitespace()
                                || matches!(c, '(' | ')' | '+' | '-' | '*' | '/' | '^' | '%' | ',')
                        }) {
                            return Err(NotCacheable::UnboundText {
                                step,
                                pointer,
                                value: s.clone(),
                            });
                        }
                    }
                }
                return Ok(());
            }
            match arithmetic_parts(s) {
                Some(parts) => leaves.push(Leaf::Arithmetic {
                    step,
                    pointer,
                    parts,
                }),
                None => leaves.push(Leaf::Text {
                    step,
                    pointer,
                    value: s.clone(),
                }),
            }
        }
        Value::Array(items) => {
            let sub = schema.and_then(|sc| child(root, sc, None));
            for (i, item) in items.iter().enumerate() {
                collect(step, root, sub, item, format!("{pointer}/{i}"), leaves)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let sub = schema.and_then(|sc| child(root, sc, Some(k)));
                collect(
                    step,
                    root,
                    sub,
                    v,
                    format!("{pointer}/{}", escape_pointer(k)),
                    leaves,
                )?;
            }
        }
    }
    Ok(())
}

fn strip_references(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        out.push_str(&rest[..pos]);
        match rest[pos..].find('}') {
            Some(e) => rest = &rest[pos + e + 1..],
            None => return out + &rest[pos..],
        }
    }
    out.push_str(rest);
    out
}

/// Marks the tokens each slot span covers.
pub(super) fn cover_tokens(
    tokens: &[Token],
    slots: &[(SlotKind, Vec<Span>)],
) -> Vec<Option<Cover>> {
    let mut cover = vec![None; tokens.len()];
    for (slot, (kind, spans)) in slots.iter().enumerate() {
        for (occurrence, span) in spans.iter().enumerate() {
            for (i, t) in tokens.iter().enumerate() {
                if span.contains(&t.span) || (t.kind == TokenKind::Quoted && t.inner == *span) {
                    cover[i] = Some(Cover {
                        slot,
                        occurrence,
                        text: *kind != SlotKind::Number,
                    });
                }
            }
        }
    }
    cover
}

impl PlanTemplate {
    /// Makes the template of a validated plan for `prompt`, or says why the plan must only be
    /// served for exactly this prompt. `registry` gives the tools' input schemas (to tell enum
    /// strings, which are structure, from free text).
    pub fn from_plan(
        prompt: &str,
        steps: &[PlanStep],
        registry: &ToolRegistry,
    ) -> Result<Self, NotCacheable> {
        if prompt.len() > MAX_PROMPT_BYTES {
            return Err(NotCacheable::TooLong);
        }
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return Err(NotCacheable::PlanSize);
        }
        let tokens = literals::tokenize(prompt);
        let mut leaves = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let Some(tool) = registry.get(&step.tool) else {
                return Err(NotCacheable::UnknownTool {
                    step: i + 1,
                    tool: step.tool.clone(),
                });
            };
            let root = tool.input_schema();
            collect(i, root, Some(root), &step.input, String::new(), &mut leaves)?;
        }

        let mut slots: Vec<Slot> = Vec::new();
        let mut claimed: Vec<Span> = Vec::new();

        // Text slots, longest value first (a shorter value inside a longer one's span is
        // that one's, not its own).
        let positions = Positions::new(&tokens);
        let mut texts: BTreeMap<(std::cmp::Reverse<usize>, &str), (usize, &str)> = BTreeMap::new();
        for leaf in &leaves {
            if let Leaf::Text {
                step,
                pointer,
                value,
            } = leaf
            {
                texts
                    .entry((std::cmp::Reverse(value.len()), value.as_str()))
                    .or_insert((*step, pointer.as_str()));
            }
        }
        let mut text_slot: HashMap<&str, usize> = HashMap::new();
        for ((_, value), (step, pointer)) in &texts {
            let occ: Vec<Occurrence> = positions
                .occurrences(prompt, value)
                .into_iter()
                .filter(|o| !claimed.iter().any(|c| c.overlaps(&o.span)))
                .collect();
            if occ.len() > MAX_OCCURRENCES {
                return Err(NotCacheable::AmbiguousText {
                    value: (*value).to_owned(),
                });
            }
            if occ.is_empty() {
                return Err(NotCacheable::UnboundText {
                    step: step + 1,
                    pointer: (*pointer).to_owned(),
                    value: (*value).to_owned(),
                });
            }
            let kind = text_kind(&tokens, &occ)
                .filter(|_| !any_overlap(&occ))
                .ok_or_else(|| NotCacheable::OverlappingSlots {
                    value: (*value).to_owned(),
                })?;
            let structure = if kind == SlotKind::Text {
                let o = occ[0];
                literals::structure_markers(&tokens, o.first, o.last)
            } else {
                Vec::new()
            };
            // A title that occurs more than once is bound to every occurrence; if it has
            // structure of its own ("list", "done", "and") one of them may be a command word.
            if occ.len() > 1 && !structure.is_empty() {
                return Err(NotCacheable::AmbiguousText {
                    value: (*value).to_owned(),
                });
            }
            claimed.extend(occ.iter().map(|o| o.span));
            text_slot.insert(value, slots.len());
            slots.push(Slot {
                kind,
                value: (*value).to_owned(),
                spans: occ.iter().map(|o| o.span).collect(),
                form: None,
                structure,
            });
        }

        // Number slots: every occurrence of a value in the plan against every number with that
        // value in the prompt (outside text slots).
        let mut plan_numbers: BTreeMap<&str, (usize, usize, &str)> = BTreeMap::new();
        for leaf in &leaves {
            match leaf {
                Leaf::Number {
                    step,
                    pointer,
                    text,
                    ..
                } => {
                    plan_numbers
                        .entry(text.as_str())
                        .or_insert((0, *step, pointer.as_str()))
                        .0 += 1;
                }
                Leaf::Arithmetic {
                    step,
                    pointer,
                    parts,
                } => {
                    for p in parts {
                        if let Err(n) = p {
                            plan_numbers
                                .entry(n.text.as_str())
                                .or_insert((0, *step, pointer.as_str()))
                                .0 += 1;
                        }
                    }
                }
                Leaf::Text { .. } => {}
            }
        }
        let mut number_slot: HashMap<&str, usize> = HashMap::new();
        for (text, (count, step, pointer)) in &plan_numbers {
            let candidates: Vec<&Token> = tokens
                .iter()
                .filter(|t| t.kind == TokenKind::Number)
                .filter(|t| !claimed.iter().any(|c| c.overlaps(&t.span)))
                .filter(|t| literals::canonical_number(&t.norm) == *text || t.norm == *text)
                .collect();
            if candidates.is_empty() {
                return Err(NotCacheable::UnboundNumber {
                    step: step + 1,
                    pointer: (*pointer).to_owned(),
                    value: (*text).to_owned(),
                });
            }
            if candidates.len() != *count {
                return Err(NotCacheable::AmbiguousNumber {
                    value: (*text).to_owned(),
                    in_plan: *count,
                    in_prompt: candidates.len(),
                });
            }
            let form = if candidates
                .iter()
                .all(|t| literals::canonical_number(&t.norm) == *text)
            {
                NumberForm::Canonical
            } else if candidates.iter().all(|t| t.norm == *text) {
                NumberForm::Verbatim
            } else {
                return Err(NotCacheable::OverlappingSlots {
                    value: (*text).to_owned(),
                });
            };
            let spans: Vec<Span> = candidates.iter().map(|t| t.span).collect();
            if spans.iter().any(|s| claimed.contains(s)) {
                return Err(NotCacheable::OverlappingSlots {
                    value: (*text).to_owned(),
                });
            }
            claimed.extend(spans.iter().copied());
            number_slot.insert(text, slots.len());
            slots.push(Slot {
                kind: SlotKind::Number,
                value: (*text).to_owned(),
                spans,
                form: Some(form),
                structure: Vec::new(),
            });
        }

        // Slots numbered in prompt order.
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| slots[i].spans.first().map_or(usize::MAX, |s| s.start));
        let mut renumber = vec![0; slots.len()];
        for (new, &old) in order.iter().enumerate() {
            renumber[old] = new;
        }
        let slots: Vec<Slot> = order.iter().map(|&i| slots[i].clone()).collect();
        for index in text_slot.values_mut().chain(number_slot.values_mut()) {
            *index = renumber[*index];
        }

        let slot_spans: Vec<(SlotKind, Vec<Span>)> =
            slots.iter().map(|s| (s.kind, s.spans.clone())).collect();
        let cover = cover_tokens(&tokens, &slot_spans);
        let has_numbers = slots.iter().any(|s| s.kind == SlotKind::Number);
        // "square root" is not "squared".
        let square_root = |i: usize| {
            tokens[i].norm == "square"
                && tokens
                    .get(i + 1)
                    .is_some_and(|n| n.kind == TokenKind::Word && n.norm == "root")
        };
        if has_numbers
            && let Some(t) = tokens
                .iter()
                .enumerate()
                .find(|&(i, t)| {
                    cover[i].is_none() && literals::is_implicit_number(t) && !square_root(i)
                })
                .map(|(_, t)| t)
        {
            return Err(NotCacheable::ImplicitNumber {
                word: t.norm.clone(),
            });
        }
        let Analysis {
            skeleton,
            signature,
            operations,
            negations,
            unbound,
        } = literals::analyse(&tokens, &cover);
        if let Some(&i) = unbound.first() {
            return Err(NotCacheable::UnusedLiteral {
                literal: tokens[i].span.text(prompt).to_owned(),
            });
        }

        // The steps with their holes.
        let mut templates: Vec<StepTemplate> = steps
            .iter()
            .map(|s| StepTemplate {
                tool: s.tool.clone(),
                input: s.input.clone(),
                reasoning: s.reasoning.clone(),
                holes: Vec::new(),
            })
            .collect();
        for leaf in &leaves {
            let (step, hole) = match leaf {
                Leaf::Number {
                    step,
                    pointer,
                    text,
                    integer,
                } => (
                    *step,
                    Hole {
                        pointer: pointer.clone(),
                        fill: Fill::Number {
                            slot: number_slot.get(text.as_str()).copied().unwrap_or(0),
                            integer: *integer,
                        },
                    },
                ),
                Leaf::Arithmetic {
                    step,
                    pointer,
                    parts,
                } => (
                    *step,
                    Hole {
                        pointer: pointer.clone(),
                        fill: Fill::Pieces {
                            pieces: parts
                                .iter()
                                .map(|p| match p {
                                    Ok(text) => Piece::Text(text.clone()),
                                    Err(n) => Piece::Slot(
                                        number_slot.get(n.text.as_str()).copied().unwrap_or(0),
                                    ),
                                })
                                .collect(),
                        },
                    },
                ),
                Leaf::Text {
                    step,
                    pointer,
                    value,
                } => (
                    *step,
                    Hole {
                        pointer: pointer.clone(),
                        fill: Fill::Text {
                            slot: text_slot.get(value.as_str()).copied().unwrap_or(0),
                        },
                    },
                ),
            };
            if let Some(t) = templates.get_mut(step) {
                t.holes.push(hole);
            }
        }

        Ok(Self {
            format_version: TEMPLATE_FORMAT_VERSION,
            prompt: prompt.to_owned(),
            steps: templates,
            slots,
            skeleton,
            signature,
            operations,
            negations,
        })
    }

    /// The plan exactly as it was made (for the prompt it was made for).
    pub fn original_steps(&self) -> Vec<PlanStep> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| PlanStep {
                step_number: i as u32 + 1,
                tool: s.tool.clone(),
                input: s.input.clone(),
                reasoning: s.reasoning.clone(),
            })
            .collect()
    }
}

impl fmt::Display for PlanTemplate {
    /// The skeleton with slots as `{n}`, e.g. `add a todo to {0}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.skeleton.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match item {
                Item::Word(w) => f.write_str(w)?,
                Item::Slot(s) => write!(f, "{{{s}}}")?,
                Item::Op(op) => f.write_str(op.as_str())?,
                Item::Not => f.write_str("not")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tools::builtin_registry;

    pub(crate) fn steps(raw: &[(&str, Value)]) -> Vec<PlanStep> {
        raw.iter()
            .enumerate()
            .map(|(i, (tool, input))| PlanStep {
                step_number: i as u32 + 1,
                tool: (*tool).to_owned(),
                input: input.clone(),
                reasoning: String::new(),
            })
            .collect()
    }

    fn template(prompt: &str, raw: &[(&str, Value)]) -> Result<PlanTemplate, NotCacheable> {
        PlanTemplate::from_plan(prompt, &steps(raw), &builtin_registry())
    }

    #[test]
    fn a_title_becomes_a_text_slot() {
        let t = template(
            "add a todo to buy milk",
            &[("todo_add", json!({"title": "buy milk"}))],
        )
        .unwrap();
        assert_eq!(t.to_string(), "add a todo to {0}");
        assert_eq!(t.slots.len(), 1);
        assert_eq!(t.slots[0].kind, SlotKind::Text);
        assert_eq!(t.slots[0].spans, [Span::new(14, 22)]);
        assert_eq!(t.operations, [Op::Add]);
        assert_eq!(t.negations, 0);
    }

    #[test]
    fn calculator_numbers_become_number_slots() {
        let t = template(
            "What is 7 times 6?",
            &[("calculator", json!({"expression": "7 * 6"}))],
        )
        .unwrap();
        assert_eq!(t.to_string(), "what is {0} times {1}");
        assert_eq!(
            t.steps[0].holes[0].fill,
            Fill::Pieces {
                pieces: vec![Piece::Slot(0), Piece::Text(" * ".into()), Piece::Slot(1)]
            }
        );
        // Reordered numbers keep their own spans.
        let t = template(
            "add 2 to 40",
            &[("calculator", json!({"expression": "40 + 2"}))],
        )
        .unwrap();
        assert_eq!(t.to_string(), "add {0} to {1}");
        assert_eq!(
            t.steps[0].holes[0].fill,
            Fill::Pieces {
                pieces: vec![Piece::Slot(1), Piece::Text(" + ".into()), Piece::Slot(0)]
            }
        );
        // Grouped numbers and leading dots.
        let t = template(
            "what is 1,000 * .5",
            &[("calculator", json!({"expression": "1000 * 0.5"}))],
        )
        .unwrap();
        assert_eq!(t.slots[0].form, Some(NumberForm::Canonical));
        // A reference and a number.
        let t = template(
            "what is 7 times 6, then add 8 to it",
            &[
                ("calculator", json!({"expression": "7 * 6"})),
                (
                    "calculator",
                    json!({"expression": "(${steps.1.value}) + 8"}),
                ),
            ],
        )
        .unwrap();
        assert_eq!(t.slots.len(), 3);
        assert_eq!(
            t.steps[1].holes[0].fill,
            Fill::Pieces {
                pieces: vec![Piece::Text("(${steps.1.value}) + ".into()), Piece::Slot(2)]
            }
        );
    }

    #[test]
    fn enums_booleans_and_references_are_structure() {
        let t = template(
            "list my todos and delete the last one",
            &[
                ("todo_list", json!({"order": "newest_first"})),
                ("todo_delete", json!({"id": "${steps.1.todos.0.id}"})),
            ],
        )
        .unwrap();
        assert!(t.slots.is_empty());
        assert!(t.steps.iter().all(|s| s.holes.is_empty()));
        let t = template(
            "show my completed todos",
            &[("todo_list", json!({"done": true}))],
        )
        .unwrap();
        assert!(t.slots.is_empty());
        // A limit is a number slot.
        let t = template(
            "show my 5 newest todos",
            &[("todo_list", json!({"limit": 5, "order": "newest_first"}))],
        )
        .unwrap();
        assert_eq!(t.slots[0].kind, SlotKind::Number);
        assert_eq!(
            t.steps[0].holes[0].fill,
            Fill::Number {
                slot: 0,
                integer: true
            }
        );
    }

    #[test]
    fn quoted_ids_and_repeated_values() {
        let t = template(
            "add \"Buy Milk\" to my list",
            &[("todo_add", json!({"title": "Buy Milk"}))],
        )
        .unwrap();
        assert_eq!(t.slots[0].kind, SlotKind::Quoted);
        let id = "0190b4a2-5c3e-7d4f-8a9b-123456789abc";
        let t = template(
            &format!("complete {id}"),
            &[("todo_complete", json!({ "id": id }))],
        )
        .unwrap();
        assert_eq!(t.slots[0].kind, SlotKind::Id);
        // The same title twice in the plan and the prompt: one slot, two spans.
        let t = template(
            "add buy milk and then delete the todo buy milk",
            &[
                ("todo_add", json!({"title": "buy milk"})),
                ("todo_delete", json!({"title": "buy milk"})),
            ],
        )
        .unwrap();
        assert_eq!(t.slots.len(), 1);
        assert_eq!(t.slots[0].spans.len(), 2);
        // A shorter title inside a longer one binds to its own place.
        let t = template(
            "add buy milk powder and milk",
            &[
                ("todo_add", json!({"title": "buy milk powder"})),
                ("todo_add", json!({"title": "milk"})),
            ],
        )
        .unwrap();
        assert_eq!(t.to_string(), "add {0} and {1}");
        // Digits inside a title belong to the title.
        let t = template(
            "what is 6 times 7 and add a todo to buy 42 eggs",
            &[
                ("calculator", json!({"expression": "6 * 7"})),
                ("todo_add", json!({"title": "buy 42 eggs"})),
            ],
        )
        .unwrap();
        assert_eq!(t.slots.len(), 3);
        assert_eq!(t.to_string(), "what is {0} times {1} and add a todo to {2}");
    }

    #[test]
    fn unbound_or_unused_literals_are_not_cacheable() {
        let err = |p: &str, raw: &[(&str, Value)]| template(p, raw).unwrap_err().as_str();
        // A title the prompt does not hold verbatim.
        assert_eq!(
            err(
                "add a todo: Buy Milk",
                &[("todo_add", json!({"title": "buy milk"}))]
            ),
            "unbound_text"
        );
        // A number the prompt does not write.
        assert_eq!(
            err(
                "what is 15% of 80",
                &[("calculator", json!({"expression": "(15 / 100) * 80"}))]
            ),
            "unbound_number"
        );
        assert_eq!(
            err(
                "5 squared",
                &[("calculator", json!({"expression": "5 ^ 2"}))]
            ),
            "unbound_number"
        );
        // A number used more often than written.
        assert_eq!(
            err(
                "2 squared",
                &[("calculator", json!({"expression": "2 ^ 2"}))]
            ),
            "ambiguous_number"
        );
        // A number word next to a number slot.
        assert_eq!(
            err(
                "compute 5 squared, not 2",
                &[("calculator", json!({"expression": "5 ^ 2"}))]
            ),
            "implicit_number"
        );
        // A literal the plan ignores.
        assert_eq!(
            err(
                "add buy milk and 3 other things",
                &[("todo_add", json!({"title": "buy milk"}))]
            ),
            "unused_literal"
        );
        assert_eq!(
            err(
                "complete the 2nd todo",
                &[
                    ("todo_list", json!({})),
                    ("todo_complete", json!({"id": "${steps.1.todos.1.id}"}))
                ]
            ),
            "unused_literal"
        );
        // Free text with a reference and words.
        assert_eq!(
            err(
                "what is 1 and add a todo",
                &[
                    ("calculator", json!({"expression": "1"})),
                    ("todo_add", json!({"title": "result ${steps.1.value}"}))
                ]
            ),
            "unbound_text"
        );
        assert_eq!(
            err("list my todos", &[("todo_list", json!({"cursor": "abc"}))]),
            "unbound_text"
        );
        assert_eq!(
            err(
                "add a todo to pay ${rent}",
                &[("todo_add", json!({"title": "pay $${rent}"}))]
            ),
            "unbound_text"
        );
        assert_eq!(err("x", &[]), "plan_size");
        assert_eq!(err("x", &[("nope", json!({}))]), "unknown_tool");
    }

    #[test]
    fn templates_round_trip_through_json() {
        let t = template(
            "add \"Buy Milk\" and then what is 1,000 * 3",
            &[
                ("todo_add", json!({"title": "Buy Milk"})),
                ("calculator", json!({"expression": "1000 * 3"})),
            ],
        )
        .unwrap();
        let text = serde_json::to_string(&t).unwrap();
        assert!(text.contains("\"format_version\":1"), "{text}");
        let back: PlanTemplate = serde_json::from_str(&text).unwrap();
        assert_eq!(back, t);
    }
}
