//! Recursive-descent parser with GitHub's precedence: `.`/`[]` > `!` > `<` `<=` `>` `>=` >
//! `==` `!=` > `&&` > `||`; chains of `&&` and `||` become one node each.

use super::ast::{CmpOp, Expr, ExprKind, Function, Literal};
use super::error::{ErrorKind, ExprError};
use super::lexer::{tokenize, Tok, Token};
use super::value::eq_ignore_case;

/// The deepest tree GitHub accepts.
pub const MAX_DEPTH: usize = 50;

/// What an expression may refer to.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions<'a> {
    /// Context names the expression may use (case-insensitive). Any other name is a parsing
    /// error, as on GitHub.
    pub contexts: &'a [&'a str],
    /// Functions allowed besides the built-ins (status functions, `hashFiles`).
    pub functions: &'a [Function],
}

/// Parses `expr` (without `${{ }}`). An empty or blank expression is `None`.
pub fn parse(expr: &str, options: &ParseOptions<'_>) -> Result<Option<Expr>, ExprError> {
    let tokens = tokenize(expr)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        expr,
        tokens,
        pos: 0,
        options,
        nesting: 0,
    };
    let tree = p.or()?;
    if let Some(extra) = p.tokens.get(p.pos) {
        return Err(p.unexpected(extra));
    }
    if tree.depth() > MAX_DEPTH {
        return Err(depth_error(expr));
    }
    Ok(Some(tree))
}

fn depth_error(expr: &str) -> ExprError {
    ExprError::unlocated(
        ErrorKind::Parsing,
        format!("Exceeded max expression depth {MAX_DEPTH}"),
        expr,
    )
}

struct Parser<'a> {
    expr: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    options: &'a ParseOptions<'a>,
    /// Recursion guard, far above any tree of depth 50, so no input can exhaust the stack.
    nesting: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn advance(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn text(&self, t: &Token) -> &str {
        &self.expr[t.start..t.end]
    }

    fn unexpected(&self, t: &Token) -> ExprError {
        ExprError::at(
            ErrorKind::Parsing,
            format!("Unexpected symbol: '{}'", self.text(t)),
            self.expr,
            t.start,
        )
    }

    /// The input ended where more was needed: GitHub names the last token.
    fn unexpected_end(&self) -> ExprError {
        let last = self
            .tokens
            .last()
            .expect("parse only runs on non-empty token lists");
        ExprError::at(
            ErrorKind::Parsing,
            format!("Unexpected end of expression: '{}'", self.text(last)),
            self.expr,
            last.start,
        )
    }

    fn next_or_end(&mut self) -> Result<Token, ExprError> {
        self.advance().ok_or_else(|| self.unexpected_end())
    }

    fn expect(&mut self, want: &Tok) -> Result<Token, ExprError> {
        let t = self.next_or_end()?;
        if &t.tok == want {
            Ok(t)
        } else {
            Err(self.unexpected(&t))
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > 8 * MAX_DEPTH {
            return Err(depth_error(self.expr));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        self.chain(Tok::Or, Self::and, ExprKind::Or)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        self.chain(Tok::And, Self::equality, ExprKind::And)
    }

    fn chain(
        &mut self,
        op: Tok,
        operand: fn(&mut Self) -> Result<Expr, ExprError>,
        node: fn(Vec<Expr>) -> ExprKind,
    ) -> Result<Expr, ExprError> {
        let first = operand(self)?;
        if self.peek() != Some(&op) {
            return Ok(first);
        }
        let start = first.start;
        let mut items = vec![first];
        while self.peek() == Some(&op) {
            self.advance();
            items.push(operand(self)?);
        }
        let end = items.last().map_or(start, |e| e.end);
        Ok(Expr {
            kind: node(items),
            start,
            end,
        })
    }

    fn equality(&mut self) -> Result<Expr, ExprError> {
        self.binary(Self::relational, |t| match t {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            _ => None,
        })
    }

    fn relational(&mut self) -> Result<Expr, ExprError> {
        self.binary(Self::unary, |t| match t {
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        })
    }

    fn binary(
        &mut self,
        operand: fn(&mut Self) -> Result<Expr, ExprError>,
        op_of: fn(&Tok) -> Option<CmpOp>,
    ) -> Result<Expr, ExprError> {
        let mut left = operand(self)?;
        while let Some(op) = self.peek().and_then(op_of) {
            self.advance();
            let right = operand(self)?;
            let (start, end) = (left.start, right.end);
            left = Expr {
                kind: ExprKind::Compare(op, Box::new(left), Box::new(right)),
                start,
                end,
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        self.enter()?;
        let result = if self.peek() == Some(&Tok::Not) {
            let not = self.advance().expect("peeked");
            let operand = self.unary()?;
            let end = operand.end;
            Ok(Expr {
                kind: ExprKind::Not(Box::new(operand)),
                start: not.start,
                end,
            })
        } else {
            self.postfix()
        };
        self.nesting -= 1;
        result
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut target = self.primary()?;
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.advance();
                    let t = self.next_or_end()?;
                    let kind = match t.tok {
                        Tok::Property(name) => ExprKind::Property(Box::new(target), name),
                        Tok::Wildcard => ExprKind::Wildcard(Box::new(target)),
                        _ => return Err(self.unexpected(&t)),
                    };
                    target = Expr {
                        kind,
                        start: 0,
                        end: t.end,
                    };
                }
                Some(Tok::LBracket) => {
                    self.advance();
                    let kind = if self.peek() == Some(&Tok::Wildcard) {
                        self.advance();
                        ExprKind::Wildcard(Box::new(target))
                    } else {
                        self.enter()?;
                        let index = self.or()?;
                        self.nesting -= 1;
                        ExprKind::Index(Box::new(target), Box::new(index))
                    };
                    let close = self.expect(&Tok::RBracket)?;
                    target = Expr {
                        kind,
                        start: 0,
                        end: close.end,
                    };
                }
                _ => return Ok(target),
            }
            // Postfix nodes start where their innermost target starts.
            target.start = first_start(&target);
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let t = self.next_or_end()?;
        let literal = |l| ExprKind::Literal(l);
        let kind = match &t.tok {
            Tok::Number(n) => literal(Literal::Number(*n)),
            Tok::String(s) => literal(Literal::String(s.clone())),
            Tok::True => literal(Literal::Bool(true)),
            Tok::False => literal(Literal::Bool(false)),
            Tok::Null => literal(Literal::Null),
            Tok::NamedValue(name) => {
                if !self
                    .options
                    .contexts
                    .iter()
                    .any(|c| eq_ignore_case(c, name))
                {
                    return Err(ExprError::at(
                        ErrorKind::Parsing,
                        format!("Unrecognized named-value: '{name}'"),
                        self.expr,
                        t.start,
                    ));
                }
                ExprKind::Context(name.clone())
            }
            Tok::Function(name) => return self.call(&t, name.clone()),
            Tok::LParen => {
                self.enter()?;
                let inner = self.or()?;
                self.nesting -= 1;
                let close = self.expect(&Tok::RParen)?;
                return Ok(Expr {
                    kind: inner.kind,
                    start: t.start,
                    end: close.end,
                });
            }
            _ => return Err(self.unexpected(&t)),
        };
        Ok(Expr {
            kind,
            start: t.start,
            end: t.end,
        })
    }

    fn call(&mut self, name_token: &Token, name: String) -> Result<Expr, ExprError> {
        let function = Function::from_name(&name)
            .filter(|f| Function::BUILT_IN.contains(f) || self.options.functions.contains(f))
            .ok_or_else(|| {
                ExprError::at(
                    ErrorKind::Parsing,
                    format!("Unrecognized function: '{name}'"),
                    self.expr,
                    name_token.start,
                )
            })?;
        self.expect(&Tok::LParen)?;
        self.enter()?;
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.advance();
        } else {
            loop {
                args.push(self.or()?);
                let t = self.next_or_end()?;
                match t.tok {
                    Tok::Comma => continue,
                    Tok::RParen => break,
                    _ => return Err(self.unexpected(&t)),
                }
            }
        }
        self.nesting -= 1;
        let end = self.tokens[self.pos - 1].end;
        let (min, max) = function.arity();
        let arity_error = if args.len() < min {
            Some("Too few parameters supplied")
        } else if args.len() > max {
            Some("Too many parameters supplied")
        } else if function == Function::Case && args.len() % 2 == 0 {
            Some("Even number of parameters supplied, requires an odd number of parameters")
        } else {
            None
        };
        if let Some(message) = arity_error {
            return Err(ExprError::at(
                ErrorKind::Parsing,
                format!("{message}: '{name}'"),
                self.expr,
                name_token.start,
            ));
        }
        Ok(Expr {
            kind: ExprKind::Call(function, args),
            start: name_token.start,
            end,
        })
    }
}

fn first_start(e: &Expr) -> usize {
    match &e.kind {
        ExprKind::Property(t, _) | ExprKind::Wildcard(t) | ExprKind::Index(t, _) => first_start(t),
        _ => e.start,
    }
}
