//! The golden set (`data/golden.jsonl`) against the planner: every case's steps (tool and
//! input, exactly) or rejection (with its `error_contains` substrings). Each case's expected
//! result is also checked against a small model of the runtime (calculator in `f64`, an
//! in-memory todo store with `todo_list`'s pages, `${steps.N...}` references), so a golden line
//! whose `result` does not follow from its steps is caught here; the runtime's own golden test
//! is the authority on real execution. All mismatches are listed in one failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use serde_json::{Map, Value, json};

fn golden_cases() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/golden.jsonl");
    let text = std::fs::read_to_string(&path).expect("data/golden.jsonl is readable");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("golden line {}: {e}", i + 1))
        })
        .collect()
}

fn error_contains(expect: &Value) -> Vec<String> {
    expect["error_contains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn check_plan(case: &Value) -> Result<Option<Vec<Value>>, String> {
    let prompt = case["prompt"].as_str().ok_or("no prompt")?;
    let expect = &case["expect"];
    let planned = crane_rules::plan(prompt);
    if expect["reject"] == json!(true) {
        let rejection = match planned {
            Ok(steps) => {
                let tools: Vec<&str> = steps.iter().map(|s| s.tool.as_str()).collect();
                return Err(format!("expected a rejection, got steps {tools:?}"));
            }
            Err(r) => r,
        };
        for needle in error_contains(expect) {
            if !rejection.message.contains(&needle) {
                return Err(format!(
                    "rejection {:?} lacks {needle:?}",
                    rejection.message
                ));
            }
        }
        return Ok(None);
    }
    let steps = planned.map_err(|r| format!("rejected: {}", r.message))?;
    let got: Vec<Value> = steps
        .iter()
        .map(|s| json!({"tool": s.tool, "input": s.input}))
        .collect();
    if Value::Array(got.clone()) != expect["steps"] {
        return Err(format!(
            "steps\n      got      {}\n      expected {}",
            Value::Array(got),
            expect["steps"]
        ));
    }
    for s in &steps {
        if s.reasoning.trim().is_empty() {
            return Err(format!("step {} has no reasoning", s.tool));
        }
    }
    Ok(Some(got))
}

// ---- a model of the runtime, for checking expected results ---------------------------

/// `expected` is contained in `actual` (the runtime golden test's rule).
fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| subset(x, y))
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            e == a || (e - a).abs() <= 1e-9 * e.abs().max(a.abs())
        }
        _ => expected == actual,
    }
}

/// A tiny `f64` evaluator for the calculator grammar.
struct Calc<'a> {
    s: &'a [u8],
    i: usize,
}

impl Calc<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        while let Some(c @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            let r = self.term()?;
            v = if c == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }
    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(c @ (b'*' | b'/' | b'%')) = self.peek() {
            self.i += 1;
            let r = self.unary()?;
            if c != b'*' && r == 0.0 {
                return Err("division by zero".into());
            }
            v = match c {
                b'*' => v * r,
                b'/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }
    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'-') => {
                self.i += 1;
                Ok(-self.unary()?)
            }
            Some(b'+') => {
                self.i += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }
    fn power(&mut self) -> Result<f64, String> {
        let base = self.primary()?;
        if self.peek() == Some(b'^') {
            self.i += 1;
            let exponent = self.unary()?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }
    fn primary(&mut self) -> Result<f64, String> {
        let c = self.peek().ok_or("unexpected end")?;
        if c == b'(' {
            self.i += 1;
            let v = self.expr()?;
            if self.peek() != Some(b')') {
                return Err("missing )".into());
            }
            self.i += 1;
            return Ok(v);
        }
        let start = self.i;
        if c.is_ascii_digit() || c == b'.' {
            while self
                .s
                .get(self.i)
                .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
            {
                self.i += 1;
            }
            if self.s.get(self.i).is_some_and(|b| *b == b'e' || *b == b'E') {
                self.i += 1;
                if self.s.get(self.i).is_some_and(|b| *b == b'+' || *b == b'-') {
                    self.i += 1;
                }
                while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
            return text.parse().map_err(|e| format!("{text}: {e}"));
        }
        while self.s.get(self.i).is_some_and(u8::is_ascii_alphabetic) {
            self.i += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.i]).unwrap();
        match name {
            "pi" => return Ok(std::f64::consts::PI),
            "e" => return Ok(std::f64::consts::E),
            _ => {}
        }
        if self.peek() != Some(b'(') {
            return Err(format!("unknown name {name:?}"));
        }
        self.i += 1;
        let mut args = vec![self.expr()?];
        while self.peek() == Some(b',') {
            self.i += 1;
            args.push(self.expr()?);
        }
        if self.peek() != Some(b')') {
            return Err("missing )".into());
        }
        self.i += 1;
        let x = args[0];
        Ok(match (name, args.len()) {
            ("sqrt", 1) if x < 0.0 => return Err("sqrt of a negative number".into()),
            ("sqrt", 1) => x.sqrt(),
            ("abs", 1) => x.abs(),
            ("floor", 1) => x.floor(),
            ("ceil", 1) => x.ceil(),
            ("round", 1) => x.round(),
            ("round", 2) => (x * 10f64.powf(args[1])).round() / 10f64.powf(args[1]),
            ("min", _) => args.iter().copied().fold(f64::INFINITY, f64::min),
            ("max", _) => args.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            _ => return Err(format!("bad call {name}/{}", args.len())),
        })
    }
}

fn evaluate(expression: &str) -> Result<f64, String> {
    let mut c = Calc {
        s: expression.as_bytes(),
        i: 0,
    };
    let v = c.expr()?;
    if c.peek().is_some() {
        return Err(format!("trailing input in {expression:?}"));
    }
    Ok(v)
}

fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// Resolves `${steps.N.PATH}` references and `$${` escapes in a string input.
fn resolve_string(s: &str, outputs: &[Value]) -> Result<Value, String> {
    let lookup = |inner: &str| -> Result<Value, String> {
        let mut parts = inner.split('.');
        if parts.next() != Some("steps") {
            return Err(format!("bad reference {inner}"));
        }
        let n: usize = parts.next().unwrap_or("").parse().map_err(|_| "bad step")?;
        let mut v = outputs
            .get(n - 1)
            .ok_or("reference to a later step")?
            .clone();
        for seg in parts {
            v = match (seg.parse::<i64>(), &v) {
                (Ok(i), Value::Array(a)) => {
                    let len = a.len() as i64;
                    let k = if i < 0 { len + i } else { i };
                    a.get(usize::try_from(k).map_err(|_| "index out of range")?)
                        .cloned()
                        .ok_or("index out of range")?
                }
                _ => v.get(seg).cloned().ok_or(format!("no {seg}"))?,
            };
        }
        Ok(v)
    };
    if s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1 {
        return lookup(&s[2..s.len() - 1]);
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if tail.starts_with("${") {
            let end = tail.find('}').ok_or("unclosed reference")?;
            match lookup(&tail[2..end])? {
                Value::String(x) => out.push_str(&x),
                other => out.push_str(&other.to_string()),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

#[derive(Clone)]
struct Todo {
    id: String,
    title: String,
    done: bool,
}

fn todo_json(t: &Todo) -> Value {
    json!({"id": t.id, "title": t.title, "done": t.done})
}

struct Store {
    todos: Vec<Todo>,
    next: usize,
}

impl Store {
    fn add(&mut self, title: &str) -> Todo {
        self.next += 1;
        let t = Todo {
            id: format!("id-{}", self.next),
            title: title.to_owned(),
            done: false,
        };
        self.todos.push(t.clone());
        t
    }

    fn select(&self, input: &Map<String, Value>) -> Result<usize, String> {
        if let Some(id) = input.get("id").and_then(Value::as_str) {
            return self
                .todos
                .iter()
                .position(|t| t.id == id)
                .ok_or_else(|| format!("todo not found: no todo has id '{id}'"));
        }
        let title = input["title"].as_str().unwrap().trim().to_lowercase();
        let hits: Vec<usize> = (0..self.todos.len())
            .filter(|&i| self.todos[i].title.trim().to_lowercase() == title)
            .collect();
        match hits.as_slice() {
            [] => Err(format!("todo not found: no todo is titled '{title}'")),
            [one] => Ok(*one),
            _ => Err(format!("ambiguous title '{title}'")),
        }
    }
}

/// Runs `steps` on a store holding `setup`; the last step's output, or the first error.
fn execute(setup: &[String], steps: &[Value]) -> Result<Value, String> {
    let mut store = Store {
        todos: Vec::new(),
        next: 0,
    };
    for t in setup {
        store.add(t);
    }
    let mut outputs: Vec<Value> = Vec::new();
    for step in steps {
        let mut input = Map::new();
        for (k, v) in step["input"].as_object().unwrap() {
            let v = match v {
                Value::String(s) => resolve_string(s, &outputs)?,
                other => other.clone(),
            };
            input.insert(k.clone(), v);
        }
        let out = match step["tool"].as_str().unwrap() {
            "calculator" => {
                let e = input["expression"].as_str().unwrap();
                json!({"expression": e, "value": number(evaluate(e)?)})
            }
            "todo_add" => json!({"todo": todo_json(&store.add(input["title"].as_str().unwrap()))}),
            "todo_list" => {
                // One page: `limit` todos (default 100), oldest first unless newest_first;
                // `count` is all that match.
                for key in input.keys() {
                    if !["done", "limit", "order", "cursor"].contains(&key.as_str()) {
                        return Err(format!("todo_list has no input {key:?}"));
                    }
                }
                let done = input.get("done").and_then(Value::as_bool);
                let mut todos: Vec<Value> = store
                    .todos
                    .iter()
                    .filter(|t| done.is_none_or(|d| t.done == d))
                    .map(todo_json)
                    .collect();
                let count = todos.len();
                match input.get("order").and_then(Value::as_str) {
                    None | Some("oldest_first") => {}
                    Some("newest_first") => todos.reverse(),
                    Some(other) => return Err(format!("unknown order {other:?}")),
                }
                let limit = match input.get("limit") {
                    None => 100,
                    Some(l) => match l.as_u64() {
                        Some(l @ 1..=1000) => l as usize,
                        _ => return Err(format!("limit {l} is not 1..1000")),
                    },
                };
                let next_cursor = (todos.len() > limit).then_some("next");
                todos.truncate(limit);
                json!({"count": count, "todos": todos, "next_cursor": next_cursor})
            }
            "todo_complete" => {
                let i = store.select(&input)?;
                store.todos[i].done = true;
                json!({"todo": todo_json(&store.todos[i])})
            }
            "todo_delete" => {
                let i = store.select(&input)?;
                json!({"todo": todo_json(&store.todos.remove(i))})
            }
            other => return Err(format!("unknown tool {other}")),
        };
        outputs.push(out);
    }
    outputs.pop().ok_or_else(|| "no steps".to_owned())
}

fn check_result(case: &Value, steps: &[Value]) -> Result<(), String> {
    let expect = &case["expect"];
    let setup: Vec<String> = case["setup_todos"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let outcome = execute(&setup, steps);
    if expect["fail"] == json!(true) {
        let err = match outcome {
            Ok(out) => return Err(format!("model run succeeded with {out}, expected failure")),
            Err(e) => e,
        };
        for needle in error_contains(expect) {
            if !err.contains(&needle) {
                return Err(format!("model error {err:?} lacks {needle:?}"));
            }
        }
        return Ok(());
    }
    let out = outcome.map_err(|e| format!("model run failed: {e}"))?;
    let expected = expect.get("result").ok_or("no expected result")?;
    if !subset(expected, &out) {
        return Err(format!("model result {out} does not match {expected}"));
    }
    Ok(())
}

#[test]
fn golden_set_plans_as_expected() {
    let cases = golden_cases();
    assert!(cases.len() >= 90, "only {} golden cases", cases.len());
    let mut ids = HashSet::new();
    let mut failures = Vec::new();
    let mut rejections = 0;
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("<no id>");
        if !ids.insert(id.to_owned()) {
            failures.push(format!("{id}: duplicate id"));
        }
        if !case["tags"].is_array() {
            failures.push(format!("{id}: no tags"));
        }
        match check_plan(case) {
            Ok(Some(steps)) => {
                if let Err(why) = check_result(case, &steps) {
                    failures.push(format!("{id} ({:?}): {why}", case["prompt"]));
                }
            }
            Ok(None) => rejections += 1,
            Err(why) => failures.push(format!("{id} ({:?}): {why}", case["prompt"])),
        }
    }
    assert!(rejections >= 12, "only {rejections} rejection cases");
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
