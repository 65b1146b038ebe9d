//! Natives that replace jaq's own where those would loop in Rust without evaluating a term,
//! out of the step meter's sight: `range/3` (behind `range/1` and `range/2`), whose
//! `[range(1e15)]` would otherwise run for days in one step.

use jaq_core::native::{v, Fun};
use jaq_core::{Cv, DataT, Exn, Native, ValXs};
use jaq_json::Val;

use super::program::Metered;

/// The replacements, by name and arity.
pub(super) fn replacements() -> impl Iterator<Item = Fun<Metered>> {
    [("range", v(3), Native::<Metered>::new(metered_range))].into_iter()
}

/// Whether jaq's native `name` is replaced here.
pub(super) fn is_replaced(name: &str) -> bool {
    name == "range"
}

/// `range($from; $to; $by)`: `$from`, `$from + $by`, ... while below `$to` (above it for a
/// negative `$by`; until equal to it for a zero `$by`), one step counted per output.
fn metered_range<'a>(mut cv: Cv<'a, Metered>) -> ValXs<'a, <Metered as DataT>::V<'a>> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let meter = cv.0.data().meter();
    let by = cv.0.pop_var();
    let to = cv.0.pop_var();
    let mut next = Some(cv.0.pop_var());
    let direction = by.partial_cmp(&Val::from(0usize)).unwrap_or(Equal);
    Box::new(std::iter::from_fn(move || {
        let x = next.take()?;
        let more = match direction {
            Greater => x < to,
            Less => x > to,
            Equal => x != to,
        };
        if !more {
            return None;
        }
        meter.tick();
        match x.clone() + by.clone() {
            Ok(after) => next = Some(after),
            Err(e) => return Some(Err(Exn::from(e))),
        }
        Some(Ok(x))
    }))
}
