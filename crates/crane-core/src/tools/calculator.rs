//! The `calculator` tool: exact decimal arithmetic through crane-calc's own parser.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Number;

use super::{ToolContext, ToolError, TypedTool};

/// Longest expression accepted (characters).
pub const MAX_EXPRESSION_CHARS: usize = 4096;

/// Input of `calculator`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalculatorInput {
    /// Arithmetic expression: numbers, + - * / % ^, parentheses, sqrt abs round floor ceil min
    /// max, pi, e. Example: "(41*7)+13".
    pub expression: String,
}

/// Output of `calculator`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CalculatorOutput {
    /// The expression evaluated.
    pub expression: String,
    /// The result as a JSON number (exact for integers that fit in 64 bits; decimals in their
    /// shortest exact-looking form, e.g. 0.3).
    #[schemars(with = "f64")]
    pub value: Number,
}

/// The calculator tool.
pub struct Calculator;

/// Evaluates an expression into the JSON number the tool returns.
pub fn evaluate_json(expression: &str) -> Result<Number, ToolError> {
    let n = crane_calc::evaluate(expression).map_err(|e| ToolError::invalid(e.to_string()))?;
    if let Some(i) = n.as_i64() {
        return Ok(Number::from(i));
    }
    // Exact decimals print in canonical form ("0.3"); parsing that text gives the closest f64,
    // which serialises back to the same short text.
    let f = if n.is_exact() {
        n.to_string().parse::<f64>().unwrap_or_else(|_| n.as_f64())
    } else {
        n.as_f64()
    };
    Number::from_f64(f).ok_or_else(|| ToolError::invalid("result too large"))
}

/// Failures of a well-formed expression's arithmetic, as opposed to syntax errors.
fn is_arithmetic(e: &crane_calc::CalcError) -> bool {
    use crane_calc::CalcError as E;
    matches!(
        e,
        E::DivisionByZero { .. }
            | E::SqrtOfNegative { .. }
            | E::NotReal { .. }
            | E::TooLarge { .. }
    )
}

impl TypedTool for Calculator {
    const NAME: &'static str = "calculator";
    const READ_ONLY: bool = true;
    const DESCRIPTION: &'static str = "Evaluate an arithmetic expression exactly (decimal arithmetic): + - * / % ^, parentheses, sqrt abs round floor ceil min max, pi, e.";
    type Input = CalculatorInput;
    type Output = CalculatorOutput;

    fn check(&self, input: &CalculatorInput) -> Result<(), String> {
        if input.expression.chars().count() > MAX_EXPRESSION_CHARS {
            return Err(format!(
                "expression too long (limit {MAX_EXPRESSION_CHARS} characters)"
            ));
        }
        match crane_calc::evaluate(&input.expression) {
            Ok(_) => Ok(()),
            // Arithmetic failures (division by zero, overflow) are results of a well-formed
            // plan: they fail the run at execution, where the user sees them.
            Err(e) if is_arithmetic(&e) => Ok(()),
            Err(e) => Err(format!("invalid expression '{}': {e}", input.expression)),
        }
    }

    async fn run(
        &self,
        _ctx: &ToolContext,
        input: CalculatorInput,
    ) -> Result<CalculatorOutput, ToolError> {
        let value = evaluate_json(&input.expression)?;
        Ok(CalculatorOutput {
            expression: input.expression,
            value,
        })
    }
}
