//! Expression evaluation at run time: contexts, status functions and `hashFiles`.

use std::path::Path;
use std::sync::Arc;

use ci_config::expr::{self, Contexts, EvalContext, Expression, Function, ParseOptions, Value};
use ci_config::model::Env;
use ci_config::yaml::{self, Node};
use ci_config::Template;
use indexmap::IndexMap;

/// The status functions' answers where an expression is evaluated.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StatusFns {
    pub success: bool,
    pub failure: bool,
    pub cancelled: bool,
}

/// What an expression sees: contexts, optionally status functions and a workspace.
pub(crate) struct Scope<'a> {
    pub contexts: &'a Contexts,
    pub status: Option<StatusFns>,
    pub workspace: Option<&'a Path>,
}

impl<'a> Scope<'a> {
    pub fn new(contexts: &'a Contexts) -> Self {
        Scope {
            contexts,
            status: None,
            workspace: None,
        }
    }

    fn parse(&self, source: &str) -> Result<Expression, String> {
        let names: Vec<&str> = self.contexts.names().collect();
        let options = ParseOptions {
            contexts: &names,
            functions: FUNCTIONS,
        };
        Expression::parse(source, &options).map_err(|e| e.to_string())
    }

    /// Evaluates an expression (without `${{ }}`).
    pub fn eval(&self, source: &str) -> Result<Value, String> {
        self.parse(expr::strip_delimiters(source))?
            .evaluate(self)
            .map_err(|e| e.to_string())
    }

    /// Evaluates a condition.
    pub fn condition(&self, source: &str) -> Result<bool, String> {
        self.eval(source).map(|v| v.is_truthy())
    }

    /// Renders a template to text.
    pub fn render(&self, template: &Template) -> Result<String, String> {
        let names: Vec<&str> = self.contexts.names().collect();
        let options = ParseOptions {
            contexts: &names,
            functions: FUNCTIONS,
        };
        expr::render_template(template, &options, self).map_err(|e| e.to_string())
    }

    /// Evaluates a template keeping a single expression's type.
    pub fn value(&self, template: &Template) -> Result<Value, String> {
        match template.single_expr() {
            Some(source) => self.eval(source),
            None => self.render(template).map(Value::string),
        }
    }

    /// A YAML node as a value, evaluating `${{ }}` in its strings.
    pub fn node(&self, node: &Node) -> Result<Value, String> {
        Ok(match &node.value {
            yaml::Value::Null => Value::Null,
            yaml::Value::Bool(b) => Value::Bool(*b),
            yaml::Value::Int(i) => Value::Number(*i as f64),
            yaml::Value::Float(f) => Value::Number(*f),
            yaml::Value::String(s) if s.contains("${{") => {
                let source = ci_config::span::Source::new("");
                let template = Template::parse(s, node.span, &source)
                    .map_err(|_| format!("unclosed expression in '{s}'"))?;
                self.value(&template)?
            }
            yaml::Value::String(s) => Value::string(s.as_str()),
            yaml::Value::Seq(items) => Value::Array(Arc::new(
                items
                    .iter()
                    .map(|i| self.node(i))
                    .collect::<Result<_, _>>()?,
            )),
            yaml::Value::Map(entries) => Value::Object(Arc::new(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.scalar_text().unwrap_or_default(), self.node(v)?)))
                    .collect::<Result<_, String>>()?,
            )),
        })
    }

    /// A node as text (`with:` inputs, numbers and booleans as GitHub prints them).
    pub fn node_text(&self, node: &Node) -> Result<String, String> {
        self.node(node).map(|v| expr::render(&v))
    }

    /// Evaluates an `env:` block into `into` (later entries see earlier ones through `env`
    /// only when the caller re-evaluates; GitHub evaluates a block against the outer env).
    pub fn env(&self, env: &Env, into: &mut IndexMap<String, String>) -> Result<(), String> {
        match env {
            Env::Empty => {}
            Env::Map(map) => {
                for (k, t) in map {
                    into.insert(k.clone(), self.render(t)?);
                }
            }
            Env::Expr(t) => match self.value(t)? {
                Value::Object(map) => {
                    for (k, v) in map.iter() {
                        into.insert(k.clone(), expr::render(v));
                    }
                }
                other => {
                    return Err(format!(
                        "env: expected an object, got {}",
                        other.kind().name()
                    ))
                }
            },
            Env::Vars(vars) => crate::env::add_vars(vars, None, into, &IndexMap::new()),
        }
        Ok(())
    }
}

const FUNCTIONS: &[Function] = &[
    Function::Success,
    Function::Failure,
    Function::Always,
    Function::Cancelled,
    Function::HashFiles,
];

impl EvalContext for Scope<'_> {
    fn context(&self, name: &str) -> Option<Value> {
        self.contexts.context(name)
    }

    fn status(&self, function: Function) -> Option<bool> {
        let s = self.status?;
        Some(match function {
            Function::Success => s.success,
            Function::Failure => s.failure,
            Function::Cancelled => s.cancelled,
            Function::Always => true,
            _ => return None,
        })
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        let root = self
            .workspace
            .ok_or_else(|| "hashFiles is not available here".to_owned())?;
        expr::hash_files(&expr::Directory::new(root), patterns)
    }
}

/// An object value from string pairs.
pub(crate) fn strings(map: &IndexMap<String, String>) -> Value {
    object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::string(v.as_str())))
            .collect(),
    )
}

/// An object value.
pub(crate) fn object(map: IndexMap<String, Value>) -> Value {
    Value::Object(Arc::new(map))
}
