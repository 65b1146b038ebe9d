//! [`Route`]: a [`RouteDef`] with its programs compiled, and what it makes of a message's
//! data: whether to deliver it ([`Route::filter`]), its stream key ([`Route::key`]) and the
//! call to make ([`Route::resolve`] → [`ResolvedCall`]).

use std::fmt::Write as _;

use jaq_json::Val;
use serde_json::Value;

use super::def::{fixed_operation, RouteDef};
use super::error::{Field, RouteError};
use super::program::{EvalError, Limits, Program, Take};
use crate::message::{HeaderPair, MAX_STREAM_KEY};

/// A message's data, parsed once for all of a route's programs.
#[derive(Debug, Clone)]
pub struct Input {
    val: Val,
    /// The JSON text as sent: the payload when the route has no transform.
    text: String,
}

impl Input {
    /// Reads `text` (the `data` member as sent).
    ///
    /// # Errors
    /// The JSON reader's message (as `RouteError::Data` once a route is known).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let val = jaq_json::read::parse_single(text.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Self {
            val,
            text: text.to_owned(),
        })
    }

    /// Converts a parsed value.
    pub fn from_value(value: &Value) -> Self {
        let text = value.to_string();
        // serde_json's own output is JSON jaq reads; a failure here would be a bug in one of
        // them, and `null` is then the honest stand-in.
        let val = jaq_json::read::parse_single(text.as_bytes()).unwrap_or(Val::Null);
        Self { val, text }
    }

    /// The data's JSON text as sent.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The operation of a route: fixed, or computed from the data.
#[derive(Debug)]
enum Operation {
    Fixed(&'static str),
    Program(Program),
}

/// A route with its programs compiled.
#[derive(Debug)]
pub struct Route {
    def: RouteDef,
    target: url::Url,
    operation: Operation,
    headers: Vec<HeaderPair>,
    filter: Option<Program>,
    transform: Option<Program>,
    key: Option<Program>,
    path: Option<Program>,
    limits: Limits,
}

/// The target call a route makes of one message's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCall {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub operation: String,
    /// The target URL with the path program's output appended.
    pub url: String,
    /// The route's static headers.
    pub headers: Vec<HeaderPair>,
    /// The Vault secret holding the target's token.
    pub vault_secret: Option<String>,
    /// The header the token goes in; `None` means `Authorization`.
    pub vault_secret_header: Option<String>,
    /// The payload's JSON text (the transform's output, or the data as sent); `None` for
    /// `DELETE`.
    pub payload: Option<String>,
}

impl Route {
    /// Checks `def` and compiles its programs.
    ///
    /// # Errors
    /// The first rule broken or program that does not compile, naming the route.
    pub fn compile(def: RouteDef, limits: Limits) -> Result<Self, RouteError> {
        let target = def.check()?;
        let compile =
            |field: Field, code: &Option<String>| -> Result<Option<Program>, RouteError> {
                code.as_deref()
                    .map(|code| {
                        Program::compile(code).map_err(|message| RouteError::Compile {
                            route: def.name.clone(),
                            field,
                            message,
                        })
                    })
                    .transpose()
            };
        let operation = match def.operation.as_deref() {
            None => Operation::Fixed("POST"),
            Some(word) => match fixed_operation(word) {
                Some(op) => Operation::Fixed(op),
                None => Operation::Program(
                    compile(Field::Operation, &def.operation)?
                        .ok_or_else(|| RouteError::Syntax("operation without a program".into()))?,
                ),
            },
        };
        let headers = def
            .headers
            .iter()
            .map(|(key, value)| HeaderPair {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        Ok(Self {
            filter: compile(Field::Filter, &def.filter)?,
            transform: compile(Field::Transform, &def.transform)?,
            key: compile(Field::Key, &def.key)?,
            path: compile(Field::Path, &def.path)?,
            target,
            operation,
            headers,
            limits,
            def,
        })
    }

    /// The route's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The definition it was compiled from.
    pub fn def(&self) -> &RouteDef {
        &self.def
    }

    /// The target URL as defined (without a path program's output).
    pub fn target(&self) -> &url::Url {
        &self.target
    }

    /// Whether a message with this data is delivered: the filter's first output is neither
    /// `false` nor `null` (no filter: always).
    ///
    /// # Errors
    /// The filter failed or broke a bound.
    pub fn filter(&self, data: &Value) -> Result<bool, RouteError> {
        self.filter_input(&Input::from_value(data))
    }

    /// [`filter`](Self::filter) on data already parsed.
    ///
    /// # Errors
    /// As [`filter`](Self::filter).
    pub fn filter_input(&self, data: &Input) -> Result<bool, RouteError> {
        let Some(program) = &self.filter else {
            return Ok(true);
        };
        // `first(f)`: later outputs are never computed, so `repeat(true)` is fine here.
        let first = self.run(program, Field::Filter, data, Take::First)?;
        Ok(first.as_ref().is_some_and(truthy))
    }

    /// The stream key the `key` program gives (`None` without one, or when it yields `null`
    /// or nothing).
    ///
    /// # Errors
    /// The program failed, or yielded something other than a string or number, or a key
    /// longer than the stream allows.
    pub fn key(&self, data: &Value) -> Result<Option<String>, RouteError> {
        self.key_input(&Input::from_value(data))
    }

    /// [`key`](Self::key) on data already parsed.
    ///
    /// # Errors
    /// As [`key`](Self::key).
    pub fn key_input(&self, data: &Input) -> Result<Option<String>, RouteError> {
        let Some(program) = &self.key else {
            return Ok(None);
        };
        let key = match self.single(program, Field::Key, data)? {
            None | Some(Val::Null) => return Ok(None),
            Some(v) => self.scalar_text(Field::Key, &v)?,
        };
        if key.len() > MAX_STREAM_KEY {
            return Err(self.output(
                Field::Key,
                format!("yields a key longer than {MAX_STREAM_KEY} bytes"),
            ));
        }
        Ok(Some(key))
    }

    /// The call to make for this data: operation, URL (with the path), headers, secret and
    /// payload.
    ///
    /// # Errors
    /// A program failed or broke a bound, or its output does not fit its field.
    pub fn resolve(&self, data: &Value) -> Result<ResolvedCall, RouteError> {
        self.resolve_input(&Input::from_value(data))
    }

    /// [`resolve`](Self::resolve) on data already parsed.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    pub fn resolve_input(&self, data: &Input) -> Result<ResolvedCall, RouteError> {
        let operation = match &self.operation {
            Operation::Fixed(op) => (*op).to_owned(),
            Operation::Program(program) => {
                let word = match self.single(program, Field::Operation, data)? {
                    Some(Val::TStr(s)) => String::from_utf8_lossy(&s).into_owned(),
                    _ => String::new(),
                };
                fixed_operation(&word)
                    .ok_or_else(|| {
                        self.output(
                            Field::Operation,
                            "must yield one of \"POST\", \"PUT\", \"PATCH\", \"DELETE\"".into(),
                        )
                    })?
                    .to_owned()
            }
        };
        let url = self.url(data)?;
        let payload = if operation == "DELETE" {
            None
        } else {
            Some(self.payload(data)?)
        };
        Ok(ResolvedCall {
            operation,
            url,
            headers: self.headers.clone(),
            vault_secret: self.def.vault_secret.clone(),
            vault_secret_header: self.def.vault_secret_header.clone(),
            payload,
        })
    }

    /// The transform's single output as JSON text, or the data as sent.
    fn payload(&self, data: &Input) -> Result<String, RouteError> {
        let Some(program) = &self.transform else {
            return Ok(data.text.clone());
        };
        match self.single(program, Field::Transform, data)? {
            Some(v) => self.json_text(Field::Transform, &v),
            None => Err(self.output(Field::Transform, "yields no output".into())),
        }
    }

    /// The target URL, with the path program's output appended as percent-encoded segments.
    fn url(&self, data: &Input) -> Result<String, RouteError> {
        let Some(program) = &self.path else {
            return Ok(self.target.to_string());
        };
        let path = match self.single(program, Field::Path, data)? {
            Some(v @ (Val::TStr(_) | Val::Num(_))) => self.scalar_text(Field::Path, &v)?,
            _ => return Err(self.output(Field::Path, "must yield one string".into())),
        };
        let segments = path_segments(&path).map_err(|rule| self.output(Field::Path, rule))?;
        let mut url = self.target.clone();
        if !segments.is_empty() {
            let mut parts = url
                .path_segments_mut()
                .map_err(|()| self.output(Field::Path, "target URL cannot take a path".into()))?;
            parts.pop_if_empty();
            parts.extend(segments);
        }
        Ok(url.to_string())
    }

    /// The single output of `program` (`None` when it yields nothing).
    fn single(
        &self,
        program: &Program,
        field: Field,
        data: &Input,
    ) -> Result<Option<Val>, RouteError> {
        self.run(program, field, data, Take::One)
    }

    fn run(
        &self,
        program: &Program,
        field: Field,
        data: &Input,
        take: Take,
    ) -> Result<Option<Val>, RouteError> {
        program
            .run(data.val.clone(), take, &self.limits)
            .map_err(|source| RouteError::Eval {
                route: self.def.name.clone(),
                field,
                source,
            })
    }

    /// A string's text, or a number's JSON text.
    fn scalar_text(&self, field: Field, v: &Val) -> Result<String, RouteError> {
        match v {
            Val::TStr(s) => Ok(String::from_utf8_lossy(s).into_owned()),
            Val::Num(_) => self.json_text(field, v),
            _ => Err(self.output(field, "must yield a string or a number".into())),
        }
    }

    /// `v` as compact JSON text, refused past the output limit (formatting stops there).
    fn json_text(&self, field: Field, v: &Val) -> Result<String, RouteError> {
        let mut out = Capped {
            text: String::new(),
            cap: self.limits.output_bytes,
        };
        write!(out, "{v}").map_err(|_| RouteError::Eval {
            route: self.def.name.clone(),
            field,
            source: EvalError::OutputSize(self.limits.output_bytes),
        })?;
        Ok(out.text)
    }

    fn output(&self, field: Field, rule: String) -> RouteError {
        RouteError::Output {
            route: self.def.name.clone(),
            field,
            rule,
        }
    }
}

fn truthy(v: &Val) -> bool {
    !matches!(v, Val::Null | Val::Bool(false))
}

/// A path program's output as URL path segments: one leading `/` is optional and one
/// trailing `/` is kept; empty, `.` and `..` segments, `?`, `#`, `\` and control characters
/// are refused (each would make the URL point somewhere other than under the target).
fn path_segments(path: &str) -> Result<Vec<&str>, String> {
    if path
        .chars()
        .any(|c| c.is_control() || matches!(c, '?' | '#' | '\\'))
    {
        return Err("must not contain ?, #, \\ or control characters".into());
    }
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (i, s) in segments.iter().enumerate() {
        if matches!(*s, "." | "..") {
            return Err("must not contain . or .. segments".into());
        }
        if s.is_empty() && i != last {
            return Err("must not contain empty segments (//)".into());
        }
    }
    Ok(segments)
}

/// A `fmt::Write` that fails once its text would pass `cap` bytes.
struct Capped {
    text: String,
    cap: usize,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() > self.cap {
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}
