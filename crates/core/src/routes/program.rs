//! [`Program`]: one route's jq program, compiled once by jaq, and its bounded evaluation.
//!
//! A route program is written by an operator, so a typo must not hang or crash a function:
//! every evaluation runs under [`Limits`]. jaq has no fuel of its own, but it asks its
//! evaluation data for the program's look-up table before every term it evaluates; our data
//! type ([`Metered`]) counts those look-ups as steps and, every few steps, checks the time
//! cap and how much native stack the evaluation has used. Past a limit it unwinds out of jaq
//! with [`std::panic::resume_unwind`] (which runs no panic hook, so nothing is printed),
//! caught where the evaluation started. Output is bounded too: at most the outputs the caller
//! asks for are pulled from jaq's lazy iterator (so `repeat(.)` alone is refused as "more
//! than one output", not run forever) and each output's JSON text is capped.

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data::HasLut, Ctx, DataT, Lut, Vars};
use jaq_json::Val;

use super::natives;

/// The bounds of one evaluation of a route program. A four-field transform takes a few dozen
/// steps; `map(select(...))` about 10 a element.
///
/// The step limit also bounds how deep a value (or a chain of closures) a program can build:
/// dropping one recurses once per level, about 40 bytes of stack a step in the worst case
/// found (`def f(x): f([x]); f(.)`), so 20,000 steps stay well inside a 2 MiB thread stack
/// (a tokio worker's) where 60,000 overflow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most jq terms one evaluation may evaluate (jaq's look-ups of a term).
    pub steps: u64,
    /// The longest one evaluation may run (checked every [`CHECK_EVERY`] steps).
    pub time: Duration,
    /// The most native stack one evaluation may use, in bytes (deep recursion).
    pub stack_bytes: usize,
    /// The longest JSON text one output may have, in bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            steps: 20_000,
            time: Duration::from_millis(50),
            stack_bytes: 256 * 1024,
            output_bytes: crate::message::MAX_MESSAGE_BYTES,
        }
    }
}

/// How often (in steps) the time cap and the stack are checked.
pub const CHECK_EVERY: u64 = 256;

/// Why an evaluation failed: jaq's own error, or a bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The program raised an error (jaq's message, e.g. `cannot index number with "a"`).
    #[error("{0}")]
    Jq(String),
    /// More than [`Limits::steps`] terms evaluated.
    #[error("exceeded the step limit of {0} (an endless loop such as `repeat` or `until` in a collection?)")]
    Steps(u64),
    /// Ran longer than [`Limits::time`].
    #[error("exceeded the time limit of {0:?}")]
    Time(Duration),
    /// Recursed deeper than [`Limits::stack_bytes`] allow.
    #[error("recursion too deep (more than {0} bytes of stack)")]
    Depth(usize),
    /// An output's JSON text is longer than [`Limits::output_bytes`].
    #[error("output larger than {0} bytes")]
    OutputSize(usize),
    /// The program yielded more outputs than the use allows.
    #[error("yields more than one output")]
    TooMany,
    /// jaq panicked (a bug in jaq, or an allocation size it could not compute).
    #[error("the jq interpreter failed: {0}")]
    Panicked(String),
}

/// Natives a route may not call: the process environment (a route could send the function's
/// configuration to a target), ending the process, and writing to stderr.
const DENIED_NATIVES: &[&str] = &["env", "halt", "debug_empty", "stderr_empty"];
/// The standard library's definitions built on [`DENIED_NATIVES`], left out with them.
const DENIED_DEFS: &[&str] = &["stderr", "debug", "halt", "halt_error"];

/// Which outputs of a program are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// The first (jq's `first(f)`): later outputs are never computed.
    First,
    /// Exactly one: a second output is [`EvalError::TooMany`] (and stops the program there).
    One,
}

/// One compiled jq program.
pub struct Program {
    filter: jaq_core::Filter<Metered>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Program")
    }
}

impl Program {
    /// Parses and compiles `code` with jq's standard library (less [`DENIED_NATIVES`]).
    ///
    /// # Errors
    /// jaq's lex, parse or compile errors, each with its position in `code`.
    pub fn compile(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|def| !DENIED_DEFS.contains(&def.name));
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, _, _)| !DENIED_NATIVES.contains(name) && !natives::is_replaced(name))
            .chain(natives::replacements());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errs| describe_load_errors(code, errs))?;
        let filter = jaq_core::Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| describe_compile_errors(code, errs))?;
        Ok(Self { filter })
    }

    /// Runs the program on `input` and returns its outputs as `take` says (an endless
    /// generator is never run to its end).
    ///
    /// # Errors
    /// The first error the program raises, or the bound it broke.
    pub fn run(&self, input: Val, take: Take, limits: &Limits) -> Result<Option<Val>, EvalError> {
        let meter = Meter::new(limits);
        let data = MeteredData {
            lut: &self.filter.lut,
            meter: &meter,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let ctx = Ctx::<Metered>::new(data, Vars::new([]));
            let mut outs = self.filter.id.run((ctx, input)).map(jaq_core::unwrap_valr);
            let first = match outs.next() {
                None => return Ok(None),
                Some(out) => out.map_err(|e| EvalError::Jq(jaq_message(&e)))?,
            };
            if take == Take::One {
                if let Some(second) = outs.next() {
                    second.map_err(|e| EvalError::Jq(jaq_message(&e)))?;
                    return Err(EvalError::TooMany);
                }
            }
            Ok(Some(first))
        }));
        match outcome {
            Ok(result) => result,
            Err(payload) => Err(match payload.downcast::<EvalError>() {
                Ok(bound) => *bound,
                Err(other) => EvalError::Panicked(panic_text(other.as_ref())),
            }),
        }
    }
}

/// jaq's error as jq prints it: an `error("text")` shows its text, other values their JSON.
fn jaq_message(e: &jaq_core::Error<Val>) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    // `Display` of an error raised with a string value prints the string quoted; the quotes
    // add nothing to a log line.
    if text.starts_with('"') && text.ends_with('"') && text.len() >= 2 {
        chars.next();
        chars.next_back();
        return chars.as_str().to_owned();
    }
    text
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// The byte offset of `part` in `code` (jaq's errors are slices of the program; 0 for one
/// that is not, such as a name in the standard library).
fn offset(code: &str, part: &str) -> usize {
    let (start, at) = (code.as_ptr() as usize, part.as_ptr() as usize);
    if at >= start && at + part.len() <= start + code.len() {
        at - start
    } else {
        0
    }
}

fn describe_load_errors(code: &str, errs: jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let mut lines = Vec::new();
    for (_file, err) in errs {
        match err {
            Error::Io(es) => lines.extend(es.into_iter().map(|(path, e)| format!("{path}: {e}"))),
            Error::Lex(es) => lines.extend(es.into_iter().map(|(expect, found)| {
                format!(
                    "expected {} at offset {}",
                    expect.as_str(),
                    offset(code, found)
                )
            })),
            Error::Parse(es) => lines.extend(es.into_iter().map(|(expect, found)| {
                let found = if found.is_empty() {
                    "end of program".to_owned()
                } else {
                    format!("{found:?}")
                };
                format!("expected {}, found {found}", expect.as_str())
            })),
        }
    }
    lines.join("; ")
}

fn describe_compile_errors(code: &str, errs: jaq_core::compile::Errors<&str, ()>) -> String {
    let mut lines = Vec::new();
    for (_file, es) in errs {
        for (name, undefined) in es {
            let what = match undefined {
                jaq_core::compile::Undefined::Filter(arity) => format!("filter {name}/{arity}"),
                other => format!("{} {name}", other.as_str()),
            };
            let denied = DENIED_NATIVES.contains(&name) || DENIED_DEFS.contains(&name);
            let why = if denied {
                " (not available to routes)"
            } else {
                ""
            };
            lines.push(format!(
                "undefined {what} at offset {}{why}",
                offset(code, name)
            ));
        }
    }
    lines.join("; ")
}

/// The data kind of a route evaluation: jaq's JSON values, with a metered look-up table.
pub struct Metered;

impl DataT for Metered {
    type V<'a> = Val;
    type Data<'a> = MeteredData<'a>;
}

/// The evaluation's data: the program and the meter every term look-up ticks.
#[derive(Clone)]
pub struct MeteredData<'a> {
    lut: &'a Lut<Metered>,
    meter: &'a Meter,
}

impl<'a> MeteredData<'a> {
    /// The evaluation's meter (for natives that loop on their own).
    pub(super) fn meter(&self) -> &'a Meter {
        self.meter
    }
}

impl<'a> HasLut<'a, Metered> for MeteredData<'a> {
    fn lut(&self) -> &'a Lut<Metered> {
        self.meter.tick();
        self.lut
    }
}

/// Counts steps and watches the clock and the stack of one evaluation.
pub struct Meter {
    steps: Cell<u64>,
    limits: Limits,
    started: Instant,
    stack_base: usize,
}

impl Meter {
    fn new(limits: &Limits) -> Self {
        Self {
            steps: Cell::new(0),
            limits: *limits,
            started: Instant::now(),
            stack_base: stack_position(),
        }
    }

    /// Counts one step; unwinds out of jaq past a limit.
    pub(super) fn tick(&self) {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.limits.steps {
            resume_unwind(Box::new(EvalError::Steps(self.limits.steps)));
        }
        // The stack is checked on every step: one deep recursion can use it all in fewer
        // steps than CHECK_EVERY when each level is large.
        let used = self.stack_base.abs_diff(stack_position());
        if used > self.limits.stack_bytes {
            resume_unwind(Box::new(EvalError::Depth(self.limits.stack_bytes)));
        }
        if steps % CHECK_EVERY == 0 && self.started.elapsed() > self.limits.time {
            resume_unwind(Box::new(EvalError::Time(self.limits.time)));
        }
    }
}

/// An address in the current stack frame: the distance between two of these is the stack
/// used between them (without `unsafe`: the address is only compared, never dereferenced).
#[inline(never)]
fn stack_position() -> usize {
    let probe = 0u8;
    std::hint::black_box(std::ptr::addr_of!(probe)) as usize
}
