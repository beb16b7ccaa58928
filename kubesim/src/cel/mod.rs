//! A small evaluator for the CEL rules of `x-kubernetes-validations`: enough of the language for
//! the rules FerroLB's CRDs and typical operators write — `self`/`oldSelf`, field access, `has()`,
//! `size()`, `duration()` with `getSeconds()`/`getMilliseconds()`, comparisons, arithmetic,
//! `&&`, `||`, `!`, `in`, and string `startsWith`/`endsWith`/`contains`.
//!
//! As the API server compiles a CRD's rules when the CRD is written and rejects one that does
//! not compile, kubesim [`compile`]s them then too, and refuses a rule outside this subset with
//! [`CelError::Unsupported`]: a rule kubesim cannot evaluate is never passed silently. An
//! evaluation error (a missing key, a type mismatch) fails the write, as it does on a real
//! server. Pure.
//!
//! - `parse`: rule text to an expression tree; refuses what kubesim does not know.
//! - `eval`: the tree against `self`/`oldSelf`.

mod eval;
mod parse;

use serde_json::Value;

use parse::Expr;

/// Why a rule could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    /// Valid CEL, perhaps, but outside what kubesim evaluates (a macro such as `all`, a
    /// function it does not know, the `?:` operator).
    #[error("unsupported CEL (kubesim cannot evaluate it): {0}")]
    Unsupported(String),
    /// Not a well-formed rule.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A field or index the rule reads is absent.
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// An operation on a value of the wrong type.
    #[error("type error: {0}")]
    Type(String),
}

impl CelError {
    /// A stable name of the failure kind.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsupported(_) => "Unsupported",
            Self::Syntax(_) => "Syntax",
            Self::NoSuchKey(_) => "NoSuchKey",
            Self::Type(_) => "Type",
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    expr: Expr,
    /// Reads `oldSelf`: checked on update only, where an old value exists.
    is_transition: bool,
}

/// Compiles `rule`; refuses anything kubesim cannot evaluate.
pub fn compile(rule: &str) -> Result<Program, CelError> {
    let expr = parse::parse(rule)?;
    let is_transition = mentions_old(&expr);
    Ok(Program {
        expr,
        is_transition,
    })
}

impl Program {
    /// Whether the rule reads `oldSelf` (a transition rule).
    pub fn is_transition(&self) -> bool {
        self.is_transition
    }

    /// Evaluates the rule with `self` bound to `this` (and `oldSelf` to `old`); true when it
    /// holds.
    pub fn evaluate(&self, this: &Value, old: Option<&Value>) -> Result<bool, CelError> {
        eval::holds(&self.expr, &eval::Env { this, old })
    }
}

/// Compiles and evaluates `rule` once.
pub fn evaluate(rule: &str, this: &Value, old: Option<&Value>) -> Result<bool, CelError> {
    compile(rule)?.evaluate(this, old)
}

/// Whether a rule mentions `oldSelf` (false for a rule that does not compile).
pub fn is_transition_rule(rule: &str) -> bool {
    compile(rule).is_ok_and(|p| p.is_transition())
}

fn mentions_old(expr: &Expr) -> bool {
    match expr {
        Expr::Old => true,
        Expr::Null | Expr::Bool(_) | Expr::Int(_) | Expr::Double(_) | Expr::Str(_) | Expr::This => {
            false
        }
        Expr::Not(e) | Expr::Neg(e) | Expr::Has(e) | Expr::Select(e, _) => mentions_old(e),
        Expr::And(a, b)
        | Expr::Or(a, b)
        | Expr::Compare(_, a, b)
        | Expr::In(a, b)
        | Expr::Arith(_, a, b)
        | Expr::Index(a, b) => mentions_old(a) || mentions_old(b),
        Expr::Call(_, target, args) => mentions_old(target) || args.iter().any(mentions_old),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ferrolb_crd_rules_evaluate() {
        let range = "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535";
        assert_eq!(evaluate(range, &json!("5s"), None), Ok(true));
        assert_eq!(evaluate(range, &json!("500ms"), None), Ok(false));
        assert_eq!(evaluate(range, &json!("19h"), None), Ok(false));
        let whole = "duration(self).getMilliseconds() % 1000 == 0";
        assert_eq!(evaluate(whole, &json!("1m30s"), None), Ok(true));
        assert_eq!(evaluate(whole, &json!("1.5s"), None), Ok(false));
        assert_eq!(
            evaluate("self == oldSelf", &json!(true), Some(&json!(false))),
            Ok(false)
        );
        assert!(is_transition_rule("self == oldSelf"));
        assert!(!is_transition_rule("self == 1"));
    }

    #[test]
    fn common_rule_shapes_evaluate() {
        let obj = json!({"a": 3, "name": "web-1", "list": [1, 2], "m": {"k": "v"}});
        assert_eq!(
            evaluate("has(self.a) && !has(self.b)", &obj, None),
            Ok(true)
        );
        assert_eq!(
            evaluate("self.a * 2 + 1 == 7 || false", &obj, None),
            Ok(true)
        );
        assert_eq!(
            evaluate(
                "size(self.list) == 2 && self.name.startsWith('web')",
                &obj,
                None
            ),
            Ok(true)
        );
        assert_eq!(
            evaluate("'k' in self.m && 2 in self.list", &obj, None),
            Ok(true)
        );
        assert!(matches!(
            evaluate("self.all(x, x > 0)", &obj, None),
            Err(CelError::Unsupported(_))
        ));
    }

    #[test]
    fn rules_outside_the_subset_are_refused_at_compile_time_naming_what() {
        for (rule, what) in [
            ("self.all(x, x > 0)", "function all"),
            ("self.exists(x, x == 1)", "function exists"),
            ("matches(self, '^a')", "function matches"),
            ("self.a ? 1 : 2", "character '?'"),
            ("other.field == 1", "identifier other"),
        ] {
            match compile(rule) {
                Err(CelError::Unsupported(said)) => assert_eq!(said, what, "{rule}"),
                other => panic!("{rule}: {other:?}"),
            }
        }
        for rule in ["self ==", "size(self, 1) == 2", "has(self)", "'open"] {
            assert!(
                matches!(compile(rule), Err(CelError::Syntax(_))),
                "{rule}: {:?}",
                compile(rule)
            );
        }
    }

    #[test]
    fn a_deciding_side_of_and_or_wins_over_an_error_on_the_other() {
        let absent = json!({});
        let guarded = "!has(self.x) || self.x > 0";
        assert_eq!(evaluate(guarded, &absent, None), Ok(true));
        assert_eq!(evaluate("self.x > 0 || true", &absent, None), Ok(true));
        assert_eq!(evaluate("self.x > 0 && false", &absent, None), Ok(false));
        assert_eq!(
            evaluate("self.x > 0 || false", &absent, None),
            Err(CelError::NoSuchKey("x".into()))
        );
    }

    #[test]
    fn evaluation_errors_are_reported_not_passed() {
        assert_eq!(
            evaluate("self.port > 0", &json!({}), None),
            Err(CelError::NoSuchKey("port".into()))
        );
        assert!(matches!(
            evaluate("duration(self).getSeconds() > 1", &json!("soon"), None),
            Err(CelError::Type(_))
        ));
        assert!(matches!(
            evaluate("size(self) > 1", &json!(true), None),
            Err(CelError::Type(_))
        ));
    }
}
