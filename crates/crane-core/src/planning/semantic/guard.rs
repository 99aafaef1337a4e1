//! The guard: whether a cached plan template may be served for a new prompt that the
//! embedding search found similar, and with which re-bound plan.
//!
//! A near hit is served in one of two ways, and refused otherwise:
//!
//! 1. **Re-bound** — the new prompt has the template's skeleton: the same words and symbols
//!    outside the slots in the same order (lower-cased; `,` `:` and sentence ends must match
//!    too, except at either end — "3 plus 4, times 2" is not "3 plus 4 times 2"; other
//!    punctuation is ignored), and the slots line up with the prompt in exactly one way: a
//!    number slot with one number, a quoted slot with one quoted text, an id
//!    slot with one id, a text slot with a run of tokens that is plain text — no operation
//!    word, negation, joiner ("and", "then", a comma or period), todo noun, politeness,
//!    reference ("it", "first"), quote, and no first/last word a planner may read as the
//!    phrase around a title ("for", "to", "the", "all"...) — when the original title was plain;
//!    a title with such structure of its own only re-binds to exactly itself. Every
//!    occurrence of a slot must get the same new text, no new text may contain `${`, and a
//!    template with a text, quoted or id slot but no operation word outside its slots ("buy
//!    milk" planned as `todo_add`) is never re-bound. Numbers must also be written the same
//!    way (grouping commas, a leading `.`, an exponent). The plan is the template's with each
//!    slot's new text: "add a todo to buy eggs" against the entry of "add a todo to buy milk"
//!    is served `todo_add {"title": "buy eggs"}`.
//! 2. **Same literals** — every slot's original value occurs in the new prompt exactly as
//!    often as in the original (as its own span: at token boundaries, between quotes, or as a
//!    number of the same value and form), no literal (number, quoted text, id, mixed token
//!    like `5pm`) is left outside the slots, the negation count and the operation multiset
//!    outside the slots are equal, and so is the canonical signature, item for item and in
//!    order (synonyms mapped: "show"/"display" → list, "tasks" → todos; fillers dropped only
//!    where paraphrases put them, see [`literals::analyse`]). The plan is the cached one,
//!    unchanged: "show me all my tasks" is served the plan of "list my todos".
//!
//! The number and tools of the steps never change (by construction). The caller validates the
//! served plan like any other ([`PlanTemplate::bind_checked`] does it with a registry).
//! Conservative by design: a refused near hit costs one planner call, a wrong plan is a bug.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Number, Value};

use super::literals::{self, MAX_PROMPT_BYTES, Op, Span, Token, TokenKind};
use super::template::{
    self, Fill, NumberForm, Piece, PlanTemplate, Positions, SlotKind, TEMPLATE_FORMAT_VERSION,
};
use crate::domain::PlanStep;
use crate::planning::validate::validate_plan;
use crate::tools::ToolRegistry;

/// Most DP cells × range steps the skeleton alignment may take; past it, only the
/// same-literals way is tried.
const MAX_ALIGN_WORK: usize = 4_000_000;

/// Reasoning of a re-bound step (the original reasoning may quote the old literals).
pub const REBOUND_REASONING: &str = "Served from the semantic plan cache: the plan of a similar prompt, with this prompt's literals.";

/// Why a near hit was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The prompt is over [`MAX_PROMPT_BYTES`].
    #[error("the prompt is too long for the semantic cache")]
    TooLong,
    /// The template was made by another version of crane.
    #[error(
        "the cached template has format version {found}, this crane reads {TEMPLATE_FORMAT_VERSION}"
    )]
    UnsupportedFormat { found: u32 },
    /// The template does not fit its own steps (a hole's pointer is missing).
    #[error("the cached template is inconsistent: {detail}")]
    Corrupt { detail: String },
    /// A slot's literal is missing, differs in kind or sign, or its occurrences disagree.
    #[error("the literals differ: {detail}")]
    LiteralMismatch { detail: String },
    /// The new prompt has a literal no slot consumed.
    #[error("the prompt's literal '{literal}' has no place in the cached plan")]
    UnboundLiteral { literal: String },
    /// The operation words outside the slots differ.
    #[error("the operations differ: cached [{cached}], prompt [{prompt}]")]
    OperationMismatch { cached: String, prompt: String },
    /// One prompt is negated and the other is not (or differently).
    #[error("the polarity differs: cached {cached} negation(s), prompt {prompt}")]
    PolarityMismatch { cached: u32, prompt: u32 },
    /// The words outside the slots differ beyond fillers and synonyms.
    #[error("the wording differs from the cached prompt's")]
    WordingMismatch,
    /// The skeleton matches in more than one way (e.g. where a title ends).
    #[error("the slots can be lined up with the prompt in more than one way")]
    AmbiguousBinding,
    /// A text slot would take text with other structure (a new "and", operation, quote...) or
    /// text that reads as a reference (`${`).
    #[error("the text for a slot is not plain: {detail}")]
    SlotContent { detail: String },
    /// The re-bound plan failed validation.
    #[error("the re-bound plan is invalid: {message}")]
    Invalid { message: String },
}

impl Refusal {
    /// A label for metrics (`refused{reason=...}`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::Corrupt { .. } => "corrupt",
            Self::LiteralMismatch { .. } => "literal_mismatch",
            Self::UnboundLiteral { .. } => "unbound_literal",
            Self::OperationMismatch { .. } => "operation_mismatch",
            Self::PolarityMismatch { .. } => "polarity_mismatch",
            Self::WordingMismatch => "wording_mismatch",
            Self::AmbiguousBinding => "ambiguous_binding",
            Self::SlotContent { .. } => "slot_content",
            Self::Invalid { .. } => "invalid_plan",
        }
    }

    /// The human reason.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// How a near hit was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HitKind {
    /// Every slot has its original value: the cached plan as it was.
    SameLiterals,
    /// At least one slot took a new value from the prompt.
    Rebound,
}

impl HitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SameLiterals => "same_literals",
            Self::Rebound => "rebound",
        }
    }
}

/// A served near hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub steps: Vec<PlanStep>,
    pub kind: HitKind,
}

fn ops_text(ops: &[Op]) -> String {
    ops.iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outcome of lining the skeleton up with the new prompt.
enum Alignment {
    /// For each skeleton slot item, in order: `(slot, first token, last token)`.
    Unique(Vec<(usize, usize, usize)>),
    Ambiguous,
    None,
}

impl PlanTemplate {
    /// The plan to serve for `prompt`, or why not.
    pub fn bind(&self, prompt: &str) -> Result<Vec<PlanStep>, Refusal> {
        self.serve(prompt).map(|s| s.steps)
    }

    /// [`Self::serve`], then [`validate_plan`] on the result.
    pub fn bind_checked(&self, prompt: &str, registry: &ToolRegistry) -> Result<Served, Refusal> {
        let served = self.serve(prompt)?;
        validate_plan(&served.steps, registry).map_err(|violations| Refusal::Invalid {
            message: violations
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        Ok(served)
    }

    /// The plan to serve for `prompt` and how it was found, or why not (see the module doc).
    pub fn serve(&self, prompt: &str) -> Result<Served, Refusal> {
        if self.format_version != TEMPLATE_FORMAT_VERSION {
            return Err(Refusal::UnsupportedFormat {
                found: self.format_version,
            });
        }
        if prompt.len() > MAX_PROMPT_BYTES {
            return Err(Refusal::TooLong);
        }
        let tokens = literals::tokenize(prompt);
        // A title with no operation word around it ("buy milk" or a bare quoted text planned
        // as todo_add) would re-bind to any plain text ("what is the weather"): only the
        // same-literals way.
        let anchored =
            !self.operations.is_empty() || self.slots.iter().all(|s| s.kind == SlotKind::Number);
        let alignment = if anchored {
            self.align(&tokens, prompt)
        } else {
            Alignment::None
        };
        let ambiguous = match alignment {
            Alignment::Unique(found) => return self.rebind(prompt, &tokens, &found),
            Alignment::Ambiguous => true,
            Alignment::None => false,
        };
        match self.same_literals(prompt, &tokens) {
            Ok(served) => Ok(served),
            Err(_) if ambiguous => Err(Refusal::AmbiguousBinding),
            Err(refusal) => Err(refusal),
        }
    }

    /// Lines the skeleton up with `tokens`: counts the ways (up to two) by dynamic
    /// programming over (skeleton item, token), punctuation outside slots skipped.
    fn align(&self, tokens: &[Token], prompt: &str) -> Alignment {
        let p = self.skeleton.len();
        let t = tokens.len();
        let text_items = self
            .skeleton
            .iter()
            .filter(|it| {
                matches!(it, literals::Item::Slot(s)
                    if self.slots.get(*s).is_some_and(|sl| sl.kind == SlotKind::Text))
            })
            .count();
        if (p + 1) * (t + 1) + text_items * (t + 1) * (t + 1) > MAX_ALIGN_WORK {
            return Alignment::None;
        }
        let markers: Vec<Option<String>> = (0..tokens.len())
            .map(|i| literals::token_marker(tokens, i))
            .collect();
        // The last tokens `b` a text slot may end at when it starts at `a`: the markers of
        // `a..=b` (first- and last-word markers included) equal the slot's, in order. Markers
        // only accumulate, so the scan stops once they stop being a prefix of the slot's.
        let text_ends = |slot: usize, a: usize| -> Vec<usize> {
            let mut out = Vec::new();
            let Some(target) = self.slots.get(slot).map(|s| &s.structure) else {
                return out;
            };
            if tokens[a].is_gap() {
                return out;
            }
            let mut have: Vec<&str> = Vec::new();
            if let Some(m) = literals::edge_marker(&tokens[a], true) {
                if target.first() != Some(&m) {
                    return out;
                }
                have.push(target[0].as_str());
            }
            for (b, tok) in tokens.iter().enumerate().skip(a) {
                if let Some(m) = &markers[b] {
                    if target.get(have.len()) != Some(m) {
                        break;
                    }
                    have.push(m.as_str());
                }
                if tok.is_gap() {
                    continue;
                }
                let end = literals::edge_marker(tok, false);
                let complete = match &end {
                    Some(e) => have.len() + 1 == target.len() && target.last() == Some(e),
                    None => have.len() == target.len(),
                };
                // Text with structure of its own ("think then act", "Dr. Müller") only
                // re-binds to itself: where a planner splits such text depends on the words
                // ("think then 88" is two steps).
                let complete = complete
                    && (target.is_empty()
                        || self.slots.get(slot).is_some_and(|s| {
                            Span::new(tokens[a].span.start, tok.span.end).text(prompt) == s.value
                        }));
                if complete {
                    out.push(b);
                }
            }
            out
        };
        let idx = |i: usize, j: usize| i * (t + 1) + j;
        let mut ways = vec![0u8; (p + 1) * (t + 1)];
        // Only punctuation left.
        let mut rest_punct = true;
        for j in (0..=t).rev() {
            if j < t && !tokens[j].is_gap() {
                rest_punct = false;
            }
            ways[idx(p, j)] = u8::from(rest_punct);
        }
        let mut ends_cache: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for i in (0..p).rev() {
            for j in (0..t).rev() {
                let tok = &tokens[j];
                // Other punctuation is skipped anywhere, boundaries only before the first item
                // (the skeleton has none at either end); elsewhere a boundary must match one.
                let w = if tok.kind == TokenKind::Punct
                    || (tok.kind == TokenKind::Boundary && i == 0)
                {
                    ways[idx(i, j + 1)]
                } else if tok.kind == TokenKind::Boundary {
                    match &self.skeleton[i] {
                        literals::Item::Word(word) if tok.norm == *word => ways[idx(i + 1, j + 1)],
                        _ => 0,
                    }
                } else {
                    match &self.skeleton[i] {
                        literals::Item::Word(word) => {
                            if matches!(tok.kind, TokenKind::Word | TokenKind::Symbol)
                                && tok.norm == *word
                            {
                                ways[idx(i + 1, j + 1)]
                            } else {
                                0
                            }
                        }
                        literals::Item::Slot(s) => match self.slots.get(*s).map(|sl| sl.kind) {
                            Some(SlotKind::Number) if tok.kind == TokenKind::Number => {
                                ways[idx(i + 1, j + 1)]
                            }
                            Some(SlotKind::Quoted) if tok.kind == TokenKind::Quoted => {
                                ways[idx(i + 1, j + 1)]
                            }
                            Some(SlotKind::Id) if tok.kind == TokenKind::Id => {
                                ways[idx(i + 1, j + 1)]
                            }
                            Some(SlotKind::Text) => {
                                let ends = ends_cache
                                    .entry((*s, j))
                                    .or_insert_with(|| text_ends(*s, j));
                                let mut sum = 0u8;
                                for &b in ends.iter() {
                                    sum = sum.saturating_add(ways[idx(i + 1, b + 1)]).min(2);
                                }
                                sum
                            }
                            _ => 0,
                        },
                        literals::Item::Op(_) | literals::Item::Not => 0,
                    }
                };
                ways[idx(i, j)] = w;
            }
        }
        match ways[idx(0, 0)] {
            0 => return Alignment::None,
            1 => {}
            _ => return Alignment::Ambiguous,
        }
        // Walk the unique alignment.
        let mut found = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < p && j < t {
            if tokens[j].kind == TokenKind::Punct
                || (tokens[j].kind == TokenKind::Boundary && i == 0)
            {
                j += 1;
                continue;
            }
            match &self.skeleton[i] {
                literals::Item::Slot(s) => {
                    let kind = self.slots.get(*s).map(|sl| sl.kind);
                    if kind == Some(SlotKind::Text) {
                        let ends = ends_cache
                            .get(&(*s, j))
                            .cloned()
                            .unwrap_or_else(|| text_ends(*s, j));
                        let Some(&b) = ends.iter().find(|&&b| ways[idx(i + 1, b + 1)] > 0) else {
                            return Alignment::None;
                        };
                        found.push((*s, j, b));
                        j = b + 1;
                    } else {
                        found.push((*s, j, j));
                        j += 1;
                    }
                }
                _ => j += 1,
            }
            i += 1;
        }
        Alignment::Unique(found)
    }

    /// Serves the plan with each slot's text from the aligned tokens.
    fn rebind(
        &self,
        prompt: &str,
        tokens: &[Token],
        found: &[(usize, usize, usize)],
    ) -> Result<Served, Refusal> {
        let mut new_text: Vec<Option<String>> = vec![None; self.slots.len()];
        let mut new_spans: Vec<Vec<Span>> = vec![Vec::new(); self.slots.len()];
        for &(s, a, b) in found {
            let slot = self.slots.get(s).ok_or_else(|| Refusal::Corrupt {
                detail: format!("slot {s} does not exist"),
            })?;
            let (first, last) = (&tokens[a], &tokens[b]);
            let (text, span) = match slot.kind {
                SlotKind::Number => {
                    let original = slot
                        .spans
                        .first()
                        .map_or(slot.value.as_str(), |sp| sp.text(&self.prompt));
                    if first.norm.starts_with('-') != slot.negative()
                        || literals::number_shape(&first.norm) != literals::number_shape(original)
                    {
                        return Err(Refusal::LiteralMismatch {
                            detail: format!(
                                "{} is not written like {original} (sign, grouping, exponent)",
                                first.norm
                            ),
                        });
                    }
                    let form = slot.form.unwrap_or(NumberForm::Canonical);
                    (form.render(&first.norm), first.span)
                }
                SlotKind::Quoted => (first.inner.text(prompt).to_owned(), first.inner),
                SlotKind::Id => (first.span.text(prompt).to_owned(), first.span),
                SlotKind::Text => {
                    let span = Span::new(first.span.start, last.span.end);
                    (span.text(prompt).to_owned(), span)
                }
            };
            if text.contains("${") {
                return Err(Refusal::SlotContent {
                    detail: format!("'{text}' reads as a step reference"),
                });
            }
            match &new_text[s] {
                Some(prev) if *prev != text => {
                    return Err(Refusal::LiteralMismatch {
                        detail: format!(
                            "'{}' occurs {} times in the cached prompt; here they differ ('{prev}', '{text}')",
                            slot.value,
                            slot.spans.len()
                        ),
                    });
                }
                _ => new_text[s] = Some(text),
            }
            new_spans[s].push(span);
        }
        let mut texts = Vec::with_capacity(self.slots.len());
        for (s, text) in new_text.into_iter().enumerate() {
            match text {
                Some(t) => texts.push(t),
                None => {
                    return Err(Refusal::Corrupt {
                        detail: format!("slot {s} is not in the skeleton"),
                    });
                }
            }
        }
        // Defense in depth: the same checks as for the same-literals way.
        self.check_outside(tokens, &new_spans)?;
        let unchanged = texts.iter().zip(&self.slots).all(|(t, s)| *t == s.value);
        let steps = self.render(&texts, unchanged)?;
        Ok(Served {
            steps,
            kind: if unchanged {
                HitKind::SameLiterals
            } else {
                HitKind::Rebound
            },
        })
    }

    /// Serves the cached plan unchanged if the prompt holds the same literals with the same
    /// operations, polarity and canonical wording.
    fn same_literals(&self, prompt: &str, tokens: &[Token]) -> Result<Served, Refusal> {
        let positions = Positions::new(tokens);
        let mut claimed: Vec<Span> = Vec::new();
        let mut new_spans: Vec<Vec<Span>> = vec![Vec::new(); self.slots.len()];
        let mut order: Vec<usize> = (0..self.slots.len())
            .filter(|&s| self.slots[s].kind != SlotKind::Number)
            .collect();
        order.sort_by_key(|&s| std::cmp::Reverse(self.slots[s].value.len()));
        for s in order {
            let slot = &self.slots[s];
            let occ: Vec<template::Occurrence> = positions
                .occurrences(prompt, &slot.value)
                .into_iter()
                .filter(|o| !claimed.iter().any(|c| c.overlaps(&o.span)))
                .filter(|o| match slot.kind {
                    SlotKind::Quoted => o.quoted,
                    SlotKind::Id => {
                        !o.quoted && o.first == o.last && tokens[o.first].kind == TokenKind::Id
                    }
                    _ => true,
                })
                .collect();
            if occ.len() != slot.spans.len() || template::any_overlap(&occ) {
                return Err(Refusal::LiteralMismatch {
                    detail: format!(
                        "'{}' occurs {} times here and {} times in the cached prompt",
                        slot.value,
                        occ.len(),
                        slot.spans.len()
                    ),
                });
            }
            claimed.extend(occ.iter().map(|o| o.span));
            new_spans[s] = occ.iter().map(|o| o.span).collect();
        }
        for (s, slot) in self.slots.iter().enumerate() {
            if slot.kind != SlotKind::Number {
                continue;
            }
            let form = slot.form.unwrap_or(NumberForm::Canonical);
            let spans: Vec<Span> = tokens
                .iter()
                .filter(|t| t.kind == TokenKind::Number)
                .filter(|t| !claimed.iter().any(|c| c.overlaps(&t.span)))
                .filter(|t| form.render(&t.norm) == slot.value)
                .map(|t| t.span)
                .collect();
            if spans.len() != slot.spans.len() {
                return Err(Refusal::LiteralMismatch {
                    detail: format!(
                        "{} occurs {} times here and {} times in the cached prompt",
                        slot.value,
                        spans.len(),
                        slot.spans.len()
                    ),
                });
            }
            claimed.extend(spans.iter().copied());
            new_spans[s] = spans;
        }
        let analysis = self.check_outside(tokens, &new_spans)?;
        if analysis.signature != self.signature {
            return Err(Refusal::WordingMismatch);
        }
        Ok(Served {
            steps: self.original_steps(),
            kind: HitKind::SameLiterals,
        })
    }

    /// Unbound literals, polarity and operations outside the given slot spans.
    fn check_outside(
        &self,
        tokens: &[Token],
        spans: &[Vec<Span>],
    ) -> Result<literals::Analysis, Refusal> {
        let slot_spans: Vec<(SlotKind, Vec<Span>)> = self
            .slots
            .iter()
            .zip(spans)
            .map(|(s, sp)| (s.kind, sp.clone()))
            .collect();
        let cover = template::cover_tokens(tokens, &slot_spans);
        let analysis = literals::analyse(tokens, &cover);
        if let Some(&i) = analysis.unbound.first() {
            return Err(Refusal::UnboundLiteral {
                literal: tokens[i].norm.clone(),
            });
        }
        if analysis.negations != self.negations {
            return Err(Refusal::PolarityMismatch {
                cached: self.negations,
                prompt: analysis.negations,
            });
        }
        if analysis.operations != self.operations {
            return Err(Refusal::OperationMismatch {
                cached: ops_text(&self.operations),
                prompt: ops_text(&analysis.operations),
            });
        }
        Ok(analysis)
    }

    /// The steps with each slot's text filled in.
    fn render(&self, texts: &[String], keep_reasoning: bool) -> Result<Vec<PlanStep>, Refusal> {
        let text_of = |slot: usize| {
            texts.get(slot).ok_or_else(|| Refusal::Corrupt {
                detail: format!("slot {slot} does not exist"),
            })
        };
        let mut out = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let mut input = step.input.clone();
            for hole in &step.holes {
                let value = match &hole.fill {
                    Fill::Text { slot } => Value::String(text_of(*slot)?.clone()),
                    Fill::Number { slot, integer } => {
                        let text = text_of(*slot)?;
                        let number = if *integer {
                            text.parse::<i64>().ok().map(Number::from)
                        } else {
                            text.parse::<f64>().ok().and_then(Number::from_f64)
                        };
                        Value::Number(number.ok_or_else(|| Refusal::LiteralMismatch {
                            detail: format!(
                                "{text} is not {} number",
                                if *integer { "a whole" } else { "a" }
                            ),
                        })?)
                    }
                    Fill::Pieces { pieces } => {
                        let mut s = String::new();
                        for p in pieces {
                            match p {
                                Piece::Text(t) => s.push_str(t),
                                Piece::Slot(slot) => s.push_str(text_of(*slot)?),
                            }
                        }
                        Value::String(s)
                    }
                };
                let target = input
                    .pointer_mut(&hole.pointer)
                    .ok_or_else(|| Refusal::Corrupt {
                        detail: format!("step {} has no {}", i + 1, hole.pointer),
                    })?;
                *target = value;
            }
            out.push(PlanStep {
                step_number: i as u32 + 1,
                tool: step.tool.clone(),
                input,
                reasoning: if keep_reasoning {
                    step.reasoning.clone()
                } else {
                    REBOUND_REASONING.to_owned()
                },
            });
        }
        Ok(out)
    }
}

impl fmt::Display for HitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
