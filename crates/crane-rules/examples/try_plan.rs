//! Temporary: prints plans for prompts read line by line from stdin.
#![allow(clippy::unwrap_used)]
use std::io::BufRead;
fn main() {
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let line = line.replace("\\n", "\n");
        let t = std::time::Instant::now();
        let r = crane_rules::plan(&line);
        let el = t.elapsed();
        let short: String = line.chars().take(80).collect();
        match r {
            Ok(steps) => {
                println!("{short:?}  [{}us]", el.as_micros());
                for s in steps.iter().take(6) {
                    println!("    {} {}   // {}", s.tool, s.input, s.reasoning);
                }
                if steps.len() > 6 {
                    println!("    ... {} steps", steps.len());
                }
            }
            Err(e) => println!(
                "{short:?}  [{}us]\n    REJECT {:?}",
                el.as_micros(),
                e.message.chars().take(200).collect::<String>()
            ),
        }
    }
}
