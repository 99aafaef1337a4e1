//! Incremental plan parsing for streamed LLM answers: [`StepScanner`] finds each complete
//! element of the answer's `steps` array in the text received so far, and [`StepFeed`] numbers
//! it, validates it on its own (with the steps before it) and hands it to a [`StepSink`], so the
//! runtime can start a step while the model is still writing the next ones.
//!
//! Rules:
//! - A step is handed out only when its closing brace has arrived, it parses as JSON, and the
//!   plan made of it and the steps before it passes [`super::validate_plan`] (known tool, input
//!   valid against the tool's schema, references only to earlier steps and to fields their
//!   output has, the tool's own check). Every check of a step depends only on the steps before
//!   it, so a step that passes here passes in the whole plan too.
//! - At the first step that is not valid on its own (a reference to a later step, a typo in the
//!   tool name, an input the schema refuses) the feed stops: that step and every later one wait
//!   for the whole plan, which goes through the normal validation (and, when nothing was handed
//!   out, the repair round). Likewise when the text stops looking like JSON.
//! - Only the first top-level object that has a `steps` key counts. Text before it (prose,
//!   a Markdown fence, `<think>` blocks) is skipped; a `{...}` span in prose that is not JSON
//!   (`set {x} first`) is abandoned when a character that cannot appear in JSON turns up.
//!
//! The scanner is hand-written (~150 lines): it tracks string/escape state and nesting depth
//! byte by byte over the accumulated text, which is all this needs; incremental JSON parser
//! crates (e.g. `struson`, `json-event-parser`) would add a dependency, give up at the first
//! byte of prose before the JSON (models often prefix text), and report tokens rather than the
//! exact text span of an element, which serde_json then parses like the final answer.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;

use super::validate::{MAX_STEPS, validate_plan};
use crate::domain::{PlanStep, PlannerInfo};
use crate::tools::ToolRegistry;

/// `{` candidates tried at most before the scanner gives up (bounds the work on prose full of
/// braces; the final answer is still extracted as usual).
const MAX_CANDIDATES: usize = 64;

/// A step handed out before the plan is complete.
#[derive(Debug, Clone)]
pub struct EarlyStep {
    /// The step, numbered from 1 in the order the model wrote them.
    pub step: PlanStep,
    /// Who is planning (layer, provider, model, prompt); `partial` is set.
    pub planner: PlannerInfo,
}

/// Where a planning call hands out steps early (see the module doc). Once a step went out the
/// chain never falls back to another layer, a repair round or another variant: the step may
/// have run.
#[derive(Debug)]
pub struct StepSink {
    tx: mpsc::UnboundedSender<EarlyStep>,
    emitted: AtomicU32,
}

impl StepSink {
    /// A sink and the receiver of its steps.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<EarlyStep>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                emitted: AtomicU32::new(0),
            },
            rx,
        )
    }

    /// How many steps were handed out.
    pub fn emitted(&self) -> u32 {
        self.emitted.load(Ordering::Acquire)
    }

    fn emit(&self, step: EarlyStep) {
        self.emitted.fetch_add(1, Ordering::AcqRel);
        // A receiver that is gone (its run stopped executing early steps) changes nothing: the
        // step still counts as handed out.
        let _ = self.tx.send(step);
    }
}

/// Turns streamed answer text into validated early steps for a [`StepSink`].
pub(crate) struct StepFeed<'a> {
    scanner: StepScanner,
    steps: Vec<PlanStep>,
    stopped: bool,
    registry: &'a ToolRegistry,
    sink: &'a StepSink,
    planner: PlannerInfo,
}

impl<'a> StepFeed<'a> {
    pub(crate) fn new(
        registry: &'a ToolRegistry,
        sink: &'a StepSink,
        planner: PlannerInfo,
    ) -> Self {
        Self {
            scanner: StepScanner::default(),
            steps: Vec::new(),
            stopped: false,
            registry,
            sink,
            planner,
        }
    }

    /// Feeds the next piece of the answer text.
    pub(crate) fn push(&mut self, text: &str) {
        if self.stopped {
            return;
        }
        for element in self.scanner.push(text) {
            let Some(value) = element else {
                self.stopped = true;
                return;
            };
            let (tool, input, reasoning) = raw_step(&value);
            self.steps.push(PlanStep {
                step_number: self.steps.len() as u32 + 1,
                tool,
                input,
                reasoning,
            });
            if self.steps.len() > MAX_STEPS || validate_plan(&self.steps, self.registry).is_err() {
                self.steps.pop();
                self.stopped = true;
                return;
            }
            if let Some(step) = self.steps.last() {
                self.sink.emit(EarlyStep {
                    step: step.clone(),
                    planner: self.planner.clone(),
                });
            }
        }
    }

    /// The steps handed out so far.
    pub(crate) fn emitted(&self) -> &[PlanStep] {
        &self.steps
    }
}

/// `(tool, input, reasoning)` of one element of a plan's `steps` array, as the whole-plan parse
/// reads it (missing fields become empty, for the validator to report).
pub(crate) fn raw_step(step: &Value) -> (String, Value, String) {
    (
        step.get("tool")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        step.get("input").cloned().unwrap_or(Value::Null),
        step.get("reasoning")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Looking for the `{` of the answer object.
    Seek,
    /// Inside a candidate object.
    Object,
    /// Finished (the steps array closed, or the text is not a plan): nothing more comes out.
    Done,
}

/// Finds the complete elements of the first top-level `steps` array in text that arrives in
/// pieces. Each element comes out once, as soon as its closing brace arrives: `Some(value)`,
/// or `None` when its text is not JSON (the scanner is then done).
#[derive(Debug)]
pub struct StepScanner {
    text: String,
    /// Next byte of `text` to look at.
    pos: usize,
    mode: Mode,
    candidates: usize,
    /// Byte offset of the current candidate's `{`.
    start: usize,
    /// Open `{`/`[` of the candidate.
    stack: Vec<u8>,
    in_string: bool,
    escaped: bool,
    string_start: usize,
    /// The last string closed directly in the top-level object (a key once `:` follows).
    last_string: Option<(usize, usize)>,
    /// Whether the current member of the top-level object is `steps`.
    in_steps_member: bool,
    /// Stack depth inside the steps array, once it opened.
    steps_depth: Option<usize>,
    /// Start of the element being read.
    element_start: usize,
    /// Elements handed out from the current candidate.
    elements: usize,
}

impl Default for StepScanner {
    fn default() -> Self {
        Self {
            text: String::new(),
            pos: 0,
            mode: Mode::Seek,
            candidates: 0,
            start: 0,
            stack: Vec::new(),
            in_string: false,
            escaped: false,
            string_start: 0,
            last_string: None,
            in_steps_member: false,
            steps_depth: None,
            element_start: 0,
            elements: 0,
        }
    }
}

impl StepScanner {
    /// Feeds the next piece of text; returns the elements it completed.
    pub fn push(&mut self, chunk: &str) -> Vec<Option<Value>> {
        let mut out = Vec::new();
        if self.mode == Mode::Done {
            return out;
        }
        self.text.push_str(chunk);
        while self.pos < self.text.len() && self.mode != Mode::Done {
            match self.mode {
                Mode::Seek => {
                    if !self.seek() {
                        break;
                    }
                }
                Mode::Object => self.object_byte(&mut out),
                Mode::Done => {}
            }
        }
        out
    }

    /// Advances over text before an object; false when more text is needed to decide.
    fn seek(&mut self) -> bool {
        let rest = &self.text[self.pos..];
        let Some(offset) = rest.find(['{', '<']) else {
            self.pos = self.text.len();
            return true;
        };
        self.pos += offset;
        let rest = &self.text[self.pos..];
        if rest.starts_with('<') {
            const OPEN: &str = "<think>";
            const CLOSE: &str = "</think>";
            if rest.starts_with(OPEN) {
                match rest.find(CLOSE) {
                    Some(end) => self.pos += end + CLOSE.len(),
                    None => return false,
                }
            } else if OPEN.starts_with(rest) {
                return false;
            } else {
                self.pos += 1;
            }
            return true;
        }
        if self.candidates >= MAX_CANDIDATES {
            self.mode = Mode::Done;
            return true;
        }
        self.candidates += 1;
        self.start = self.pos;
        self.stack.clear();
        self.stack.push(b'{');
        self.in_string = false;
        self.escaped = false;
        self.last_string = None;
        self.in_steps_member = false;
        self.steps_depth = None;
        self.elements = 0;
        self.mode = Mode::Object;
        self.pos += 1;
        true
    }

    /// Gives up the current candidate: back to seeking after its `{`, or done when elements
    /// of it were handed out already.
    fn abandon(&mut self, out: &mut Vec<Option<Value>>) {
        if self.elements > 0 {
            out.push(None);
            self.mode = Mode::Done;
        } else {
            self.pos = self.start + 1;
            self.mode = Mode::Seek;
        }
    }

    fn object_byte(&mut self, out: &mut Vec<Option<Value>>) {
        let i = self.pos;
        let b = self.text.as_bytes()[i];
        self.pos += 1;
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => {
                    self.in_string = false;
                    if self.stack.len() == 1 {
                        self.last_string = Some((self.string_start + 1, i));
                    }
                }
                _ => {}
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.string_start = i;
            }
            b':' if self.stack.len() == 1 => {
                self.in_steps_member = self.steps_depth.is_none()
                    && self
                        .last_string
                        .is_some_and(|(s, e)| &self.text[s..e] == "steps");
            }
            b',' if self.stack.len() == 1 => self.in_steps_member = false,
            b'{' | b'[' => {
                if b == b'{' && Some(self.stack.len()) == self.steps_depth {
                    self.element_start = i;
                }
                self.stack.push(b);
                if b == b'[' && self.stack.len() == 2 && self.in_steps_member {
                    self.steps_depth = Some(2);
                }
            }
            b'}' | b']' => {
                let open = if b == b'}' { b'{' } else { b'[' };
                if self.stack.pop() != Some(open) {
                    return self.abandon(out);
                }
                let depth = self.stack.len();
                if b == b'}' && Some(depth) == self.steps_depth {
                    let element = serde_json::from_str::<Value>(&self.text[self.element_start..=i])
                        .ok()
                        .filter(Value::is_object);
                    let parsed = element.is_some();
                    out.push(element);
                    self.elements += 1;
                    if !parsed {
                        self.mode = Mode::Done;
                    }
                } else if b == b']' && Some(depth + 1) == self.steps_depth {
                    // The steps array is complete: nothing more to hand out.
                    self.mode = Mode::Done;
                } else if depth == 0 {
                    // An object without a steps array: keep looking after it.
                    self.mode = Mode::Seek;
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => {}
            b'-' | b'+' | b'.' | b'0'..=b'9' => {}
            // The letters of true, false, null and exponents.
            b't' | b'r' | b'u' | b'e' | b'f' | b'a' | b'l' | b's' | b'n' | b'E' => {}
            _ => self.abandon(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every element the scanner hands out for `text` fed in pieces of `size` bytes (on char
    /// boundaries), with the number of bytes fed when each came out.
    fn scan(text: &str, size: usize) -> Vec<(Option<Value>, usize)> {
        let mut scanner = StepScanner::default();
        let mut out = Vec::new();
        let mut fed = 0;
        let mut piece = String::new();
        for c in text.chars() {
            piece.push(c);
            if piece.len() >= size {
                fed += piece.len();
                out.extend(scanner.push(&piece).into_iter().map(|e| (e, fed)));
                piece.clear();
            }
        }
        fed += piece.len();
        out.extend(scanner.push(&piece).into_iter().map(|e| (e, fed)));
        out
    }

    fn values(text: &str, size: usize) -> Vec<Option<Value>> {
        scan(text, size).into_iter().map(|(v, _)| v).collect()
    }

    fn at_every_split(text: &str, expected: &[Option<Value>]) {
        for size in 1..=text.len() {
            assert_eq!(
                values(text, size),
                expected,
                "pieces of {size} bytes: {text}"
            );
        }
    }

    #[test]
    fn elements_come_out_when_their_brace_arrives() {
        let text = r#"{"steps": [{"tool": "calculator", "input": {"expression": "2+2"}, "reasoning": "r"}, {"tool": "todo_add", "input": {"title": "t"}}]}"#;
        let out = scan(text, 1);
        assert_eq!(out.len(), 2);
        let first_end = text.find("}, {").unwrap() + 1;
        assert_eq!(
            out[0].1, first_end,
            "the first step is out at its closing brace"
        );
        assert_eq!(
            out[0].0,
            Some(json!({"tool": "calculator", "input": {"expression": "2+2"}, "reasoning": "r"}))
        );
        assert_eq!(
            out[1].0,
            Some(json!({"tool": "todo_add", "input": {"title": "t"}}))
        );
    }

    #[test]
    fn strings_with_braces_brackets_and_escaped_quotes() {
        let text = r#"{"note": "a } ] [ { \" \\", "steps": [{"tool": "todo_add", "input": {"title": "x } \"{[y]}\" \\"}}, {"tool": "t", "input": {"e": "\\\""}}]}"#;
        at_every_split(
            text,
            &[
                Some(json!({"tool": "todo_add", "input": {"title": "x } \"{[y]}\" \\"}})),
                Some(json!({"tool": "t", "input": {"e": "\\\""}})),
            ],
        );
    }

    #[test]
    fn prose_fences_and_think_blocks_before_the_json() {
        let plan = r#"{"steps": [{"tool": "a", "input": {}}, {"tool": "b", "input": {"n": -1.5e3, "ok": true, "z": null}}]}"#;
        let expected = [
            Some(json!({"tool": "a", "input": {}})),
            Some(json!({"tool": "b", "input": {"n": -1.5e3, "ok": true, "z": null}})),
        ];
        for text in [
            format!("Here is the plan:\n```json\n{plan}\n```\nDone."),
            format!("<think>maybe {{\"steps\": [{{\"tool\": \"wrong\"}}]}}</think>\n{plan}"),
            format!("Set {{x}} first, then {plan}"),
            format!("{{\"other\": {{\"steps\": [{{\"tool\": \"nested\"}}]}}}} {plan}"),
            format!("{{\"a\": 1}}\n{plan}"),
        ] {
            at_every_split(&text, &expected);
        }
    }

    #[test]
    fn only_the_top_level_steps_array_counts() {
        let text = r#"{"meta": {"steps": [{"tool": "inner"}]}, "steps": [{"tool": "outer", "input": {"steps": [{"x": 1}]}}], "after": [{"tool": "no"}]}"#;
        at_every_split(
            text,
            &[Some(
                json!({"tool": "outer", "input": {"steps": [{"x": 1}]}}),
            )],
        );
    }

    #[test]
    fn nothing_from_text_that_is_not_a_plan() {
        for text in [
            "",
            "I cannot help with that.",
            "{\"steps\": []}",
            "{\"error\": \"no\"}",
            "{\"steps\": [1, \"two\"]}",
            "{ not json }",
            "}}}{{{",
            "{\"steps\": [{\"tool\": \"a\"",
        ] {
            assert_eq!(values(text, 1), Vec::<Option<Value>>::new(), "{text}");
        }
    }

    #[test]
    fn a_broken_element_ends_the_scan() {
        let text = r#"{"steps": [{"tool": "a"}, {"tool" "b"}, {"tool": "c"}]}"#;
        at_every_split(text, &[Some(json!({"tool": "a"})), None]);
        // Prose after an element of a candidate: the candidate is given up, the scan ends.
        let text = r#"{"steps": [{"tool": "a"}, oops {"tool": "c"}]}"#;
        at_every_split(text, &[Some(json!({"tool": "a"})), None]);
    }

    /// Steps a feed hands out for `text` fed one byte at a time.
    fn fed(text: &str) -> Vec<PlanStep> {
        let registry = crate::tools::builtin_registry();
        let (sink, mut rx) = StepSink::channel();
        let mut info = PlannerInfo::simple("llm:p", "1", crate::domain::PlanSource::Llm);
        info.partial = true;
        let mut feed = StepFeed::new(&registry, &sink, info);
        let mut buf = [0u8; 4];
        for c in text.chars() {
            feed.push(c.encode_utf8(&mut buf));
        }
        assert_eq!(feed.emitted().len() as u32, sink.emitted());
        let mut out = Vec::new();
        while let Ok(early) = rx.try_recv() {
            assert!(early.planner.partial);
            out.push(early.step);
        }
        out
    }

    #[test]
    fn the_feed_hands_out_steps_valid_on_their_own_and_stops_at_the_first_invalid_one() {
        let add = json!({"tool": "todo_add", "input": {"title": "milk"}, "reasoning": "r"});
        let uses_first = json!({"tool": "todo_complete", "input": {"id": "${steps.1.todo.id}"}});
        let uses_later = json!({"tool": "todo_complete", "input": {"id": "${steps.4.todo.id}"}});
        let unknown = json!({"tool": "weather", "input": {}});
        let text = json!({"steps": [add, uses_first, uses_later, add]}).to_string();
        let steps = fed(&text);
        let numbered: Vec<(u32, &str)> = steps
            .iter()
            .map(|s| (s.step_number, s.tool.as_str()))
            .collect();
        // Step 3 references a later step: it and everything after it wait for the whole plan.
        assert_eq!(numbered, [(1, "todo_add"), (2, "todo_complete")]);
        assert_eq!(steps[1].input, json!({"id": "${steps.1.todo.id}"}));

        let text = json!({"steps": [add, unknown, add]}).to_string();
        assert_eq!(fed(&text).len(), 1);
        let bad_input = json!({"steps": [{"tool": "calculator", "input": {"expression": "2 +"}}]});
        assert!(fed(&bad_input.to_string()).is_empty());
        assert!(fed("I cannot plan that.").is_empty());
    }

    #[test]
    fn the_scan_is_bounded_on_brace_soup() {
        let text = "{x} ".repeat(1000) + r#"{"steps": [{"tool": "a"}]}"#;
        assert!(values(&text, 7).is_empty());
    }
}
