//! A small evaluator for the CEL rules of `x-kubernetes-validations`: enough of the language for
//! the rules FerroLB's CRDs and typical operators write — `self`/`oldSelf`, field access, `has()`,
//! `size()`, `duration()` with `getSeconds()`/`getMilliseconds()`, comparisons, arithmetic,
//! `&&`, `||`, `!`, `in`, and string `startsWith`/`endsWith`/`contains`. A rule using anything
//! else is reported as [`CelError::Unsupported`] and skipped by the caller. Pure.

use serde_json::Value;

/// Why a rule could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    #[error("unsupported CEL: {0}")]
    Unsupported(String),
    #[error("no such key: {0}")]
    NoSuchKey(String),
    #[error("type error: {0}")]
    Type(String),
}

/// A CEL value.
#[derive(Debug, Clone, PartialEq)]
enum Cel {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<Value>),
    Map(serde_json::Map<String, Value>),
    /// A duration in nanoseconds.
    Duration(i128),
}

fn from_json(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Cel::Double(n.as_f64().unwrap_or(0.0)), Cel::Int),
        Value::String(s) => Cel::Str(s.clone()),
        Value::Array(a) => Cel::List(a.clone()),
        Value::Object(m) => Cel::Map(m.clone()),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Int(i64),
    Double(f64),
    Str(String),
    Op(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, CelError> {
    const OPS: &[&str] = &[
        "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".", ",", "+", "-",
        "*", "/", "%",
    ];
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let literal: String = chars[start..i].iter().collect();
            if i < chars.len() && chars[i] == 'u' {
                i += 1;
            }
            tokens.push(if literal.contains('.') {
                Token::Double(
                    literal
                        .parse()
                        .map_err(|_| CelError::Unsupported(literal.clone()))?,
                )
            } else {
                Token::Int(
                    literal
                        .parse()
                        .map_err(|_| CelError::Unsupported(literal.clone()))?,
                )
            });
        } else if c == '"' || c == '\'' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            while i < chars.len() && chars[i] != quote {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            tokens.push(Token::Str(s));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| CelError::Unsupported(format!("character {c:?}")))?;
            i += op.chars().count();
            tokens.push(Token::Op(op));
        }
    }
    Ok(tokens)
}

/// The variables a rule sees.
struct Env<'a> {
    this: &'a Value,
    old: Option<&'a Value>,
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    env: Env<'a>,
}

fn parse_duration(text: &str) -> Result<i128, CelError> {
    let bad = || CelError::Type(format!("invalid duration {text:?}"));
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    let nanos = total as i128;
    Ok(if negative { -nanos } else { nanos })
}

fn truthy(value: &Cel) -> Result<bool, CelError> {
    match value {
        Cel::Bool(b) => Ok(*b),
        other => Err(CelError::Type(format!("expected a bool, got {other:?}"))),
    }
}

fn compare(op: &str, a: &Cel, b: &Cel) -> Result<bool, CelError> {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Cel::Int(x), Cel::Int(y)) => x.cmp(y),
        (Cel::Duration(x), Cel::Duration(y)) => x.cmp(y),
        (Cel::Str(x), Cel::Str(y)) => x.cmp(y),
        (Cel::Int(_) | Cel::Double(_), Cel::Int(_) | Cel::Double(_)) => {
            let (x, y) = (number(a)?, number(b)?);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        _ if op == "==" => return Ok(a == b),
        _ if op == "!=" => return Ok(a != b),
        _ => return Err(CelError::Type(format!("cannot compare {a:?} and {b:?}"))),
    };
    Ok(match op {
        "==" => ordering == Ordering::Equal,
        "!=" => ordering != Ordering::Equal,
        "<" => ordering == Ordering::Less,
        "<=" => ordering != Ordering::Greater,
        ">" => ordering == Ordering::Greater,
        _ => ordering != Ordering::Less,
    })
}

fn number(value: &Cel) -> Result<f64, CelError> {
    match value {
        Cel::Int(i) => Ok(*i as f64),
        Cel::Double(d) => Ok(*d),
        other => Err(CelError::Type(format!("expected a number, got {other:?}"))),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), CelError> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(CelError::Unsupported(format!("expected {op:?}")))
        }
    }

    fn or(&mut self) -> Result<Cel, CelError> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Cel::Bool(truthy(&left)? || truthy(&right)?);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cel, CelError> {
        let mut left = self.relation()?;
        while self.eat("&&") {
            let right = self.relation()?;
            left = Cel::Bool(truthy(&left)? && truthy(&right)?);
        }
        Ok(left)
    }

    fn relation(&mut self) -> Result<Cel, CelError> {
        let left = self.additive()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                let right = self.additive()?;
                return Ok(Cel::Bool(compare(op, &left, &right)?));
            }
        }
        if self.peek() == Some(&Token::Ident("in".into())) {
            self.pos += 1;
            let right = self.additive()?;
            return Ok(Cel::Bool(match (&left, &right) {
                (Cel::Str(k), Cel::Map(m)) => m.contains_key(k),
                (_, Cel::List(items)) => items.iter().any(|i| from_json(i) == left),
                _ => return Err(CelError::Type("`in` needs a list or map".into())),
            }));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Cel, CelError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat("+") {
                "+"
            } else if self.eat("-") {
                "-"
            } else {
                return Ok(left);
            };
            let right = self.multiplicative()?;
            left = match (op, &left, &right) {
                ("+", Cel::Int(a), Cel::Int(b)) => Cel::Int(a.wrapping_add(*b)),
                ("-", Cel::Int(a), Cel::Int(b)) => Cel::Int(a.wrapping_sub(*b)),
                ("+", Cel::Str(a), Cel::Str(b)) => Cel::Str(format!("{a}{b}")),
                ("+", _, _) => Cel::Double(number(&left)? + number(&right)?),
                _ => Cel::Double(number(&left)? - number(&right)?),
            };
        }
    }

    fn multiplicative(&mut self) -> Result<Cel, CelError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                "*"
            } else if self.eat("/") {
                "/"
            } else if self.eat("%") {
                "%"
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = match (op, &left, &right) {
                (_, Cel::Int(_), Cel::Int(0)) if op != "*" => {
                    return Err(CelError::Type("division by zero".into()));
                }
                ("*", Cel::Int(a), Cel::Int(b)) => Cel::Int(a.wrapping_mul(*b)),
                ("/", Cel::Int(a), Cel::Int(b)) => Cel::Int(a / b),
                ("%", Cel::Int(a), Cel::Int(b)) => Cel::Int(a % b),
                ("*", _, _) => Cel::Double(number(&left)? * number(&right)?),
                ("/", _, _) => Cel::Double(number(&left)? / number(&right)?),
                _ => return Err(CelError::Type("% needs integers".into())),
            };
        }
    }

    fn unary(&mut self) -> Result<Cel, CelError> {
        if self.eat("!") {
            return Ok(Cel::Bool(!truthy(&self.unary()?)?));
        }
        if self.eat("-") {
            return match self.unary()? {
                Cel::Int(i) => Ok(Cel::Int(-i)),
                other => Ok(Cel::Double(-number(&other)?)),
            };
        }
        let mut value = self.primary()?;
        loop {
            if self.eat(".") {
                let Some(Token::Ident(name)) = self.peek().cloned() else {
                    return Err(CelError::Unsupported("member name".into()));
                };
                self.pos += 1;
                if self.eat("(") {
                    let args = self.arguments()?;
                    value = method(&name, value, args)?;
                } else {
                    value = member(&value, &name)?;
                }
            } else if self.eat("[") {
                let index = self.or()?;
                self.expect("]")?;
                value = match (&value, &index) {
                    (Cel::List(items), Cel::Int(i)) => items
                        .get(
                            usize::try_from(*i)
                                .map_err(|_| CelError::Type("negative index".into()))?,
                        )
                        .map(from_json)
                        .ok_or_else(|| CelError::NoSuchKey(i.to_string()))?,
                    (Cel::Map(_), Cel::Str(k)) => member(&value, k)?,
                    _ => return Err(CelError::Type("bad index".into())),
                };
            } else {
                return Ok(value);
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Cel>, CelError> {
        let mut args = Vec::new();
        if self.eat(")") {
            return Ok(args);
        }
        loop {
            args.push(self.or()?);
            if self.eat(")") {
                return Ok(args);
            }
            self.expect(",")?;
        }
    }

    fn primary(&mut self) -> Result<Cel, CelError> {
        let token = self
            .peek()
            .cloned()
            .ok_or_else(|| CelError::Unsupported("unexpected end".into()))?;
        self.pos += 1;
        match token {
            Token::Int(i) => Ok(Cel::Int(i)),
            Token::Double(d) => Ok(Cel::Double(d)),
            Token::Str(s) => Ok(Cel::Str(s)),
            Token::Op("(") => {
                let inner = self.or()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Ident(name) => match name.as_str() {
                "true" => Ok(Cel::Bool(true)),
                "false" => Ok(Cel::Bool(false)),
                "null" => Ok(Cel::Null),
                "self" => Ok(from_json(self.env.this)),
                "oldSelf" => self
                    .env
                    .old
                    .map(from_json)
                    .ok_or_else(|| CelError::NoSuchKey("oldSelf".into())),
                "has" => {
                    self.expect("(")?;
                    let start = self.pos;
                    let present = match self.or() {
                        Ok(_) => true,
                        Err(CelError::NoSuchKey(_)) => false,
                        Err(other) => return Err(other),
                    };
                    if !present {
                        // Skip to the closing parenthesis of has(...).
                        let mut depth = 0;
                        self.pos = start;
                        while let Some(t) = self.peek().cloned() {
                            if t == Token::Op("(") {
                                depth += 1;
                            } else if t == Token::Op(")") {
                                if depth == 0 {
                                    break;
                                }
                                depth -= 1;
                            }
                            self.pos += 1;
                        }
                    }
                    self.expect(")")?;
                    Ok(Cel::Bool(present))
                }
                "size" | "duration" | "int" | "string" => {
                    self.expect("(")?;
                    let args = self.arguments()?;
                    let arg = args
                        .into_iter()
                        .next()
                        .ok_or_else(|| CelError::Type(format!("{name} needs an argument")))?;
                    method(&name, arg, Vec::new())
                }
                other => Err(CelError::Unsupported(format!("identifier {other}"))),
            },
            Token::Op(op) => Err(CelError::Unsupported(format!("operator {op}"))),
        }
    }
}

fn member(value: &Cel, name: &str) -> Result<Cel, CelError> {
    match value {
        Cel::Map(m) => m
            .get(name)
            .map(from_json)
            .ok_or_else(|| CelError::NoSuchKey(name.to_owned())),
        other => Err(CelError::Type(format!("no field {name} on {other:?}"))),
    }
}

fn method(name: &str, target: Cel, args: Vec<Cel>) -> Result<Cel, CelError> {
    let arg_str = |i: usize| match args.get(i) {
        Some(Cel::Str(s)) => Ok(s.clone()),
        _ => Err(CelError::Type(format!("{name} needs a string argument"))),
    };
    match (name, &target) {
        ("size", Cel::Str(s)) => Ok(Cel::Int(s.chars().count() as i64)),
        ("size", Cel::List(l)) => Ok(Cel::Int(l.len() as i64)),
        ("size", Cel::Map(m)) => Ok(Cel::Int(m.len() as i64)),
        ("duration", Cel::Str(s)) => Ok(Cel::Duration(parse_duration(s)?)),
        ("getSeconds", Cel::Duration(n)) => Ok(Cel::Int((n / 1_000_000_000) as i64)),
        ("getMilliseconds", Cel::Duration(n)) => Ok(Cel::Int((n / 1_000_000) as i64)),
        ("int", Cel::Int(i)) => Ok(Cel::Int(*i)),
        ("int", Cel::Double(d)) => Ok(Cel::Int(*d as i64)),
        ("int", Cel::Str(s)) => s
            .parse()
            .map(Cel::Int)
            .map_err(|_| CelError::Type(format!("int({s:?})"))),
        ("string", Cel::Str(s)) => Ok(Cel::Str(s.clone())),
        ("string", Cel::Int(i)) => Ok(Cel::Str(i.to_string())),
        ("startsWith", Cel::Str(s)) => Ok(Cel::Bool(s.starts_with(&arg_str(0)?))),
        ("endsWith", Cel::Str(s)) => Ok(Cel::Bool(s.ends_with(&arg_str(0)?))),
        ("contains", Cel::Str(s)) => Ok(Cel::Bool(s.contains(&arg_str(0)?))),
        _ => Err(CelError::Unsupported(format!(
            "function {name} on {target:?}"
        ))),
    }
}

/// Whether a rule mentions `oldSelf` (a transition rule, checked on update only).
pub fn is_transition_rule(rule: &str) -> bool {
    tokenize(rule).is_ok_and(|tokens| tokens.contains(&Token::Ident("oldSelf".into())))
}

/// Evaluates `rule` with `self` bound to `this` (and `oldSelf` to `old`); true when it holds.
pub fn evaluate(rule: &str, this: &Value, old: Option<&Value>) -> Result<bool, CelError> {
    let mut parser = Parser {
        tokens: tokenize(rule)?,
        pos: 0,
        env: Env { this, old },
    };
    let result = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(CelError::Unsupported(format!("trailing input in {rule:?}")));
    }
    truthy(&result)
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
}
