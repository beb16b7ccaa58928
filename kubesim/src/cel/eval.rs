//! Evaluating a compiled rule against `self` (and `oldSelf`). `&&` and `||` follow CEL's
//! commutative rules: a side that decides the result wins over an error on the other side, so
//! `!has(self.x) || self.x > 0` holds when `x` is absent. Pure.

use serde_json::Value;

use super::CelError;
use super::parse::{Arith, Cmp, Expr, Function};

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

/// The variables a rule sees.
pub(super) struct Env<'a> {
    pub(super) this: &'a Value,
    pub(super) old: Option<&'a Value>,
}

/// Evaluates a rule to a bool.
pub(super) fn holds(expr: &Expr, env: &Env<'_>) -> Result<bool, CelError> {
    truthy(&eval(expr, env)?)
}

fn eval(expr: &Expr, env: &Env<'_>) -> Result<Cel, CelError> {
    Ok(match expr {
        Expr::Null => Cel::Null,
        Expr::Bool(b) => Cel::Bool(*b),
        Expr::Int(i) => Cel::Int(*i),
        Expr::Double(d) => Cel::Double(*d),
        Expr::Str(s) => Cel::Str(s.clone()),
        Expr::This => from_json(env.this),
        Expr::Old => env
            .old
            .map(from_json)
            .ok_or_else(|| CelError::NoSuchKey("oldSelf".into()))?,
        Expr::Not(e) => Cel::Bool(!holds(e, env)?),
        Expr::Neg(e) => match eval(e, env)? {
            Cel::Int(i) => Cel::Int(i.wrapping_neg()),
            other => Cel::Double(-number(&other)?),
        },
        Expr::And(a, b) => Cel::Bool(and(a, b, env)?),
        Expr::Or(a, b) => Cel::Bool(or(a, b, env)?),
        Expr::Compare(cmp, a, b) => Cel::Bool(compare(*cmp, &eval(a, env)?, &eval(b, env)?)?),
        Expr::In(a, b) => Cel::Bool(contains(&eval(a, env)?, &eval(b, env)?)?),
        Expr::Arith(op, a, b) => arith(*op, &eval(a, env)?, &eval(b, env)?)?,
        Expr::Select(target, field) => member(&eval(target, env)?, field)?,
        Expr::Index(target, index) => index_of(&eval(target, env)?, &eval(index, env)?)?,
        Expr::Has(selection) => match eval(selection, env) {
            Ok(_) => Cel::Bool(true),
            Err(CelError::NoSuchKey(_)) => Cel::Bool(false),
            Err(other) => return Err(other),
        },
        Expr::Call(function, target, args) => {
            let args = args
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<Vec<_>, _>>()?;
            call(*function, eval(target, env)?, &args)?
        }
    })
}

/// `a && b`: false wins over an error on either side.
fn and(a: &Expr, b: &Expr, env: &Env<'_>) -> Result<bool, CelError> {
    let left = holds(a, env);
    if left == Ok(false) {
        return Ok(false);
    }
    match (left, holds(b, env)) {
        (_, Ok(false)) => Ok(false),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Ok(true),
    }
}

/// `a || b`: true wins over an error on either side.
fn or(a: &Expr, b: &Expr, env: &Env<'_>) -> Result<bool, CelError> {
    let left = holds(a, env);
    if left == Ok(true) {
        return Ok(true);
    }
    match (left, holds(b, env)) {
        (_, Ok(true)) => Ok(true),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Ok(false),
    }
}

fn truthy(value: &Cel) -> Result<bool, CelError> {
    match value {
        Cel::Bool(b) => Ok(*b),
        other => Err(CelError::Type(format!("expected a bool, got {other:?}"))),
    }
}

fn number(value: &Cel) -> Result<f64, CelError> {
    match value {
        Cel::Int(i) => Ok(*i as f64),
        Cel::Double(d) => Ok(*d),
        other => Err(CelError::Type(format!("expected a number, got {other:?}"))),
    }
}

fn compare(cmp: Cmp, a: &Cel, b: &Cel) -> Result<bool, CelError> {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Cel::Int(x), Cel::Int(y)) => x.cmp(y),
        (Cel::Duration(x), Cel::Duration(y)) => x.cmp(y),
        (Cel::Str(x), Cel::Str(y)) => x.cmp(y),
        (Cel::Int(_) | Cel::Double(_), Cel::Int(_) | Cel::Double(_)) => {
            let (x, y) = (number(a)?, number(b)?);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        _ if cmp == Cmp::Eq => return Ok(a == b),
        _ if cmp == Cmp::Ne => return Ok(a != b),
        _ => return Err(CelError::Type(format!("cannot compare {a:?} and {b:?}"))),
    };
    Ok(match cmp {
        Cmp::Eq => ordering == Ordering::Equal,
        Cmp::Ne => ordering != Ordering::Equal,
        Cmp::Lt => ordering == Ordering::Less,
        Cmp::Le => ordering != Ordering::Greater,
        Cmp::Gt => ordering == Ordering::Greater,
        Cmp::Ge => ordering != Ordering::Less,
    })
}

fn contains(item: &Cel, collection: &Cel) -> Result<bool, CelError> {
    match (item, collection) {
        (Cel::Str(k), Cel::Map(m)) => Ok(m.contains_key(k)),
        (_, Cel::List(items)) => Ok(items.iter().any(|i| from_json(i) == *item)),
        _ => Err(CelError::Type("`in` needs a list or map".into())),
    }
}

fn arith(op: Arith, a: &Cel, b: &Cel) -> Result<Cel, CelError> {
    Ok(match (op, a, b) {
        (Arith::Div | Arith::Rem, Cel::Int(_), Cel::Int(0)) => {
            return Err(CelError::Type("division by zero".into()));
        }
        (Arith::Add, Cel::Int(x), Cel::Int(y)) => Cel::Int(x.wrapping_add(*y)),
        (Arith::Sub, Cel::Int(x), Cel::Int(y)) => Cel::Int(x.wrapping_sub(*y)),
        (Arith::Mul, Cel::Int(x), Cel::Int(y)) => Cel::Int(x.wrapping_mul(*y)),
        (Arith::Div, Cel::Int(x), Cel::Int(y)) => Cel::Int(x.wrapping_div(*y)),
        (Arith::Rem, Cel::Int(x), Cel::Int(y)) => Cel::Int(x.wrapping_rem(*y)),
        (Arith::Add, Cel::Str(x), Cel::Str(y)) => Cel::Str(format!("{x}{y}")),
        (Arith::Add, _, _) => Cel::Double(number(a)? + number(b)?),
        (Arith::Sub, _, _) => Cel::Double(number(a)? - number(b)?),
        (Arith::Mul, _, _) => Cel::Double(number(a)? * number(b)?),
        (Arith::Div, _, _) => Cel::Double(number(a)? / number(b)?),
        (Arith::Rem, _, _) => return Err(CelError::Type("% needs integers".into())),
    })
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

fn index_of(value: &Cel, index: &Cel) -> Result<Cel, CelError> {
    match (value, index) {
        (Cel::List(items), Cel::Int(i)) => {
            let i = usize::try_from(*i).map_err(|_| CelError::Type("negative index".into()))?;
            items
                .get(i)
                .map(from_json)
                .ok_or_else(|| CelError::NoSuchKey(i.to_string()))
        }
        (Cel::Map(_), Cel::Str(k)) => member(value, k),
        _ => Err(CelError::Type("bad index".into())),
    }
}

fn call(function: Function, target: Cel, args: &[Cel]) -> Result<Cel, CelError> {
    let arg_str = || match args.first() {
        Some(Cel::Str(s)) => Ok(s.as_str()),
        _ => Err(CelError::Type(format!(
            "{function:?} needs a string argument"
        ))),
    };
    Ok(match (function, &target) {
        (Function::Size, Cel::Str(s)) => Cel::Int(s.chars().count() as i64),
        (Function::Size, Cel::List(l)) => Cel::Int(l.len() as i64),
        (Function::Size, Cel::Map(m)) => Cel::Int(m.len() as i64),
        (Function::Duration, Cel::Str(s)) => Cel::Duration(parse_duration(s)?),
        (Function::GetSeconds, Cel::Duration(n)) => Cel::Int((n / 1_000_000_000) as i64),
        (Function::GetMilliseconds, Cel::Duration(n)) => Cel::Int((n / 1_000_000) as i64),
        (Function::Int, Cel::Int(i)) => Cel::Int(*i),
        (Function::Int, Cel::Double(d)) => Cel::Int(*d as i64),
        (Function::Int, Cel::Str(s)) => s
            .parse()
            .map(Cel::Int)
            .map_err(|_| CelError::Type(format!("int({s:?})")))?,
        (Function::String, Cel::Str(s)) => Cel::Str(s.clone()),
        (Function::String, Cel::Int(i)) => Cel::Str(i.to_string()),
        (Function::StartsWith, Cel::Str(s)) => Cel::Bool(s.starts_with(arg_str()?)),
        (Function::EndsWith, Cel::Str(s)) => Cel::Bool(s.ends_with(arg_str()?)),
        (Function::Contains, Cel::Str(s)) => Cel::Bool(s.contains(arg_str()?)),
        _ => {
            return Err(CelError::Type(format!(
                "no such overload: {function:?} on {target:?}"
            )));
        }
    })
}

/// A Go duration ("1m30s", "500ms", "-2h") in nanoseconds.
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
