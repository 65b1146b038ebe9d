//! Payload compaction (`Payload::from_json`): the compact text is the source's text with the
//! whitespace between tokens removed, so it parses to the same value, and keeps the key order
//! (repeated keys included), every number's text and every string's escapes byte for byte.

use datasync_core::message::Payload;
use proptest::prelude::*;

/// A JSON value as text pieces: numbers, strings and keys carry their exact source text.
#[derive(Debug, Clone)]
enum Json {
    Literal(&'static str),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A string token as a source may write it: plain characters (spaces, non-ASCII, JSON
/// punctuation inside), the short escapes and `\u` escapes (no surrogates).
fn string_token() -> impl Strategy<Value = String> {
    prop::string::string_regex(
        r#""([a-zA-Z0-9 ,:{}\[\]é€😀]|\\["\\/bfnrt]|\\u00[0-7][0-9a-fA-F]|\\u20[aA][cC]){0,12}""#,
    )
    .unwrap()
}

fn number_token() -> impl Strategy<Value = String> {
    prop::string::string_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?")
        .unwrap()
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["null", "true", "false"]).prop_map(Json::Literal),
        number_token().prop_map(Json::Number),
        string_token().prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        string_token(),
                        prop::sample::select(vec![r#""a""#.to_owned(), r#""b""#.to_owned()])
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(Json::Object),
        ]
    })
}

/// Writes `value` with `ws` (cycled) between every two tokens; empty `ws` writes it compact.
fn render(value: &Json, ws: &[String], next: &mut usize, out: &mut String) {
    let space = |out: &mut String, next: &mut usize| {
        if !ws.is_empty() {
            out.push_str(&ws[*next % ws.len()]);
            *next += 1;
        }
    };
    match value {
        Json::Literal(text) => out.push_str(text),
        Json::Number(text) | Json::String(text) => out.push_str(text),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                space(out, next);
                if i > 0 {
                    out.push(',');
                    space(out, next);
                }
                render(item, ws, next, out);
            }
            space(out, next);
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                space(out, next);
                if i > 0 {
                    out.push(',');
                    space(out, next);
                }
                out.push_str(key);
                space(out, next);
                out.push(':');
                space(out, next);
                render(item, ws, next, out);
            }
            space(out, next);
            out.push('}');
        }
    }
}

fn text(value: &Json, ws: &[String]) -> String {
    let mut out = String::new();
    let mut next = 0;
    if !ws.is_empty() {
        out.push_str(&ws[0]);
    }
    render(value, ws, &mut next, &mut out);
    if !ws.is_empty() {
        out.push_str(&ws[ws.len() - 1]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn compact_text_is_the_source_without_whitespace_between_tokens(
        value in json(),
        ws in prop::collection::vec(prop::string::string_regex("[ \t\r\n]{0,3}").unwrap(), 1..8),
    ) {
        let source = text(&value, &ws);
        let expected = text(&value, &[]);
        let payload = Payload::from_json(&source).unwrap();
        // Same key order, same number text, same string escapes: byte for byte.
        prop_assert_eq!(payload.get(), expected.as_str(), "from {:?}", source);
        // The same value (where serde_json reads it: a number beyond f64 it refuses, and
        // compaction keeps such a number's text, checked above).
        if let Ok(source_value) = serde_json::from_str::<serde_json::Value>(&source) {
            let parsed: serde_json::Value = serde_json::from_str(payload.get()).unwrap();
            prop_assert_eq!(parsed, source_value);
        }
        // Compacting compact text changes nothing.
        let again = Payload::from_json(payload.get()).unwrap();
        prop_assert_eq!(again.get(), payload.get());
    }
}
