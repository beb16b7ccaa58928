//! Rule text to [`Expr`]: a tokenizer and a recursive-descent parser for the subset of CEL
//! kubesim evaluates. Anything outside it is refused here, when the rule is compiled (at CRD
//! creation), never skipped at evaluation. Pure.

use super::CelError;

/// A compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    /// `self`.
    This,
    /// `oldSelf` (a transition rule).
    Old,
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    Arith(Arith, Box<Expr>, Box<Expr>),
    /// `target.field`.
    Select(Box<Expr>, String),
    /// `target[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `has(target.field)`: the selection, false when a key on its way is missing.
    Has(Box<Expr>),
    /// `f(target)` or `target.f(args...)`.
    Call(Function, Box<Expr>, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// The functions kubesim knows, global (`size(x)`) or as methods (`x.size()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Function {
    Size,
    Duration,
    Int,
    String,
    GetSeconds,
    GetMilliseconds,
    StartsWith,
    EndsWith,
    Contains,
}

impl Function {
    /// A global function and how many arguments it takes.
    fn global(name: &str) -> Result<(Function, usize), CelError> {
        Ok(match name {
            "size" => (Function::Size, 1),
            "duration" => (Function::Duration, 1),
            "int" => (Function::Int, 1),
            "string" => (Function::String, 1),
            other => return Err(CelError::Unsupported(format!("function {other}"))),
        })
    }

    /// A method and how many arguments it takes (the target not counted).
    fn method(name: &str) -> Result<(Function, usize), CelError> {
        Ok(match name {
            "size" => (Function::Size, 0),
            "getSeconds" => (Function::GetSeconds, 0),
            "getMilliseconds" => (Function::GetMilliseconds, 0),
            "startsWith" => (Function::StartsWith, 1),
            "endsWith" => (Function::EndsWith, 1),
            "contains" => (Function::Contains, 1),
            other => return Err(CelError::Unsupported(format!("function {other}"))),
        })
    }
}

fn check_arity(name: &str, args: &[Expr], want: usize) -> Result<(), CelError> {
    if args.len() == want {
        Ok(())
    } else {
        Err(CelError::Syntax(format!(
            "{name} takes {want} argument(s), not {}",
            args.len()
        )))
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

const OPS: &[&str] = &[
    "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".", ",", "+", "-", "*",
    "/", "%",
];

fn tokenize(text: &str) -> Result<Vec<Token>, CelError> {
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
            tokens.push(number(&literal)?);
        } else if c == '"' || c == '\'' {
            let (s, next) = string_literal(&chars, i)?;
            tokens.push(Token::Str(s));
            i = next;
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

fn number(literal: &str) -> Result<Token, CelError> {
    let bad = || CelError::Syntax(format!("number {literal}"));
    if literal.contains('.') {
        literal.parse().map(Token::Double).map_err(|_| bad())
    } else {
        literal.parse().map(Token::Int).map_err(|_| bad())
    }
}

/// The string literal opening at `chars[start]`; returns it and the index after its quote.
fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), CelError> {
    let quote = chars[start];
    let mut i = start + 1;
    let mut s = String::new();
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && i + 1 < chars.len() {
            i += 1;
        }
        s.push(chars[i]);
        i += 1;
    }
    if i >= chars.len() {
        return Err(CelError::Syntax("unterminated string".into()));
    }
    Ok((s, i + 1))
}

/// Parses a whole rule.
pub(super) fn parse(rule: &str) -> Result<Expr, CelError> {
    let mut parser = Parser {
        tokens: tokenize(rule)?,
        pos: 0,
    };
    let expr = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(CelError::Syntax(format!(
            "unexpected {:?}",
            parser.tokens[parser.pos]
        )));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn boxed(a: Expr, b: Expr) -> (Box<Expr>, Box<Expr>) {
    (Box::new(a), Box::new(b))
}

impl Parser {
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
            Err(CelError::Syntax(format!("expected {op:?}")))
        }
    }

    fn or(&mut self) -> Result<Expr, CelError> {
        let mut left = self.and()?;
        while self.eat("||") {
            let (a, b) = boxed(left, self.and()?);
            left = Expr::Or(a, b);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, CelError> {
        let mut left = self.relation()?;
        while self.eat("&&") {
            let (a, b) = boxed(left, self.relation()?);
            left = Expr::And(a, b);
        }
        Ok(left)
    }

    fn relation(&mut self) -> Result<Expr, CelError> {
        let left = self.additive()?;
        for (op, cmp) in [
            ("==", Cmp::Eq),
            ("!=", Cmp::Ne),
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ] {
            if self.eat(op) {
                let (a, b) = boxed(left, self.additive()?);
                return Ok(Expr::Compare(cmp, a, b));
            }
        }
        if self.peek() == Some(&Token::Ident("in".into())) {
            self.pos += 1;
            let (a, b) = boxed(left, self.additive()?);
            return Ok(Expr::In(a, b));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, CelError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat("+") {
                Arith::Add
            } else if self.eat("-") {
                Arith::Sub
            } else {
                return Ok(left);
            };
            let (a, b) = boxed(left, self.multiplicative()?);
            left = Expr::Arith(op, a, b);
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, CelError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                Arith::Mul
            } else if self.eat("/") {
                Arith::Div
            } else if self.eat("%") {
                Arith::Rem
            } else {
                return Ok(left);
            };
            let (a, b) = boxed(left, self.unary()?);
            left = Expr::Arith(op, a, b);
        }
    }

    fn unary(&mut self) -> Result<Expr, CelError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        let mut value = self.primary()?;
        loop {
            if self.eat(".") {
                let Some(Token::Ident(name)) = self.peek().cloned() else {
                    return Err(CelError::Syntax("a member name after '.'".into()));
                };
                self.pos += 1;
                value = if self.eat("(") {
                    let (function, arity) = Function::method(&name)?;
                    let args = self.arguments()?;
                    check_arity(&name, &args, arity)?;
                    Expr::Call(function, Box::new(value), args)
                } else {
                    Expr::Select(Box::new(value), name)
                };
            } else if self.eat("[") {
                let index = self.or()?;
                self.expect("]")?;
                let (a, b) = boxed(value, index);
                value = Expr::Index(a, b);
            } else {
                return Ok(value);
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, CelError> {
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

    fn primary(&mut self) -> Result<Expr, CelError> {
        let token = self
            .peek()
            .cloned()
            .ok_or_else(|| CelError::Syntax("unexpected end".into()))?;
        self.pos += 1;
        match token {
            Token::Int(i) => Ok(Expr::Int(i)),
            Token::Double(d) => Ok(Expr::Double(d)),
            Token::Str(s) => Ok(Expr::Str(s)),
            Token::Op("(") => {
                let inner = self.or()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Ident(name) => self.identifier(&name),
            Token::Op(op) => Err(CelError::Syntax(format!("unexpected {op:?}"))),
        }
    }

    fn identifier(&mut self, name: &str) -> Result<Expr, CelError> {
        match name {
            "true" => Ok(Expr::Bool(true)),
            "false" => Ok(Expr::Bool(false)),
            "null" => Ok(Expr::Null),
            "self" => Ok(Expr::This),
            "oldSelf" => Ok(Expr::Old),
            "has" => {
                self.expect("(")?;
                let target = self.or()?;
                self.expect(")")?;
                match target {
                    Expr::Select(..) => Ok(Expr::Has(Box::new(target))),
                    _ => Err(CelError::Syntax(
                        "has() needs a field selection (has(self.field))".into(),
                    )),
                }
            }
            _ if self.eat("(") => {
                let (function, arity) = Function::global(name)?;
                let mut args = self.arguments()?;
                check_arity(name, &args, arity)?;
                Ok(Expr::Call(function, Box::new(args.remove(0)), Vec::new()))
            }
            other => Err(CelError::Unsupported(format!("identifier {other}"))),
        }
    }
}
