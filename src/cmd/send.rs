//! `datasync send`: posts sync requests from a file or stdin to a running stack.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::value::RawValue;
use serde_json::Value;

use super::status::{unreachable, Role, StackArgs};

/// Sends sync requests to `POST /stream/sync` of a running stack with the source key.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
FILE (or - for stdin) holds one sync request (a JSON object), a JSON array of them, or JSON lines
(one request per line). Several requests are sent in batches of --batch (one POST per batch,
all-or-nothing). Each answer {\"id\",\"partition\",\"offset\"} is printed as a JSON line on stdout;
a refusal prints the status and {\"code\",\"message\"} on stderr, and the exit status is non-zero
if any message was not accepted.

Examples:
  datasync send order.json
  datasync send --data-dir /tmp/ds --authorization 'Bearer abc' orders.jsonl
  echo '{\"streamKey\":\"k1\",\"streamMessage\":{...}}' | datasync send -")]
pub struct Args {
    /// The file of sync requests, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
    #[command(flatten)]
    pub stack: StackArgs,
    /// The caller's `Authorization` value for the target (kept in Vault under the message's
    /// vaultSecretName), e.g. "Bearer abc".
    #[arg(
        long,
        value_name = "VALUE",
        env = "DATASYNC_TARGET_AUTHORIZATION",
        hide_env_values = true
    )]
    pub authorization: Option<String>,
    /// Requests per POST when there are several (1 to 100; 1 sends each alone).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch: u16,
}

/// What the input held, each request as its JSON text: sent as written, so payloads keep their
/// key order and their numbers exactly (a parsed `Value` would sort the keys and round big
/// numbers before the gateway ever saw them).
#[derive(Debug)]
pub enum Input {
    /// One request: sent alone, answered with one object.
    One(Box<RawValue>),
    /// Several: sent in batches.
    Many(Vec<Box<RawValue>>),
}

/// Parses a JSON object, a JSON array or JSON lines.
///
/// # Errors
/// When the text is none of them; names the line of JSON lines that does not parse.
pub fn parse_input(text: &str) -> anyhow::Result<Input> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        anyhow::bail!("the input is empty: give one sync request, a JSON array, or JSON lines");
    }
    match serde_json::from_str::<Box<RawValue>>(trimmed) {
        Ok(v) if v.get().starts_with('[') => {
            let items: Vec<Box<RawValue>> =
                serde_json::from_str(v.get()).context("the input is not a JSON array")?;
            if items.is_empty() {
                anyhow::bail!("the input is an empty array: nothing to send")
            }
            return Ok(Input::Many(items));
        }
        Ok(v) => return Ok(Input::One(v)),
        Err(_) => {}
    }
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Box<RawValue> = serde_json::from_str(line).with_context(|| {
            format!(
                "line {}: not JSON (the input must be one JSON object, a JSON array, or one \
                 JSON object per line)",
                n + 1
            )
        })?;
        items.push(v);
    }
    Ok(if items.len() == 1 {
        Input::One(items.remove(0))
    } else {
        Input::Many(items)
    })
}

/// Sends and prints.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = if args.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading {}", args.input.display()))?
    };
    let input = parse_input(&text)?;
    let found = args.stack.find(Role::Source)?;
    let url = format!("{}/stream/sync", found.gateway);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let post = |body: String| {
            let mut req = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(k) = &found.key {
                req = req.header("x-api-key", k);
            }
            if let Some(a) = &args.authorization {
                req = req.header("authorization", a);
            }
            async {
                let answer = req
                    .send()
                    .await
                    .map_err(|e| unreachable(&found.gateway, &e))?;
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                anyhow::Ok((status, text))
            }
        };
        let mut failed = 0usize;
        let mut sent = 0usize;
        match input {
            Input::One(v) => {
                let (status, text) = post(v.get().to_owned()).await?;
                sent += 1;
                if status.is_success() {
                    println!("{}", text.trim());
                } else {
                    failed += 1;
                    eprintln!("refused ({status}): {}", text.trim());
                }
            }
            Input::Many(items) => {
                for (b, chunk) in items.chunks(usize::from(args.batch)).enumerate() {
                    let first = b * usize::from(args.batch);
                    let body = if chunk.len() == 1 {
                        chunk[0].get().to_owned()
                    } else {
                        let items: Vec<&str> = chunk.iter().map(|v| v.get()).collect();
                        format!("[{}]", items.join(","))
                    };
                    let (status, text) = post(body).await?;
                    sent += chunk.len();
                    let answer: Value =
                        serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
                    match (&answer, status.is_success()) {
                        (Value::Array(answers), true) => {
                            for a in answers {
                                println!("{a}");
                            }
                        }
                        (a, true) => println!("{a}"),
                        (a, false) => {
                            failed += chunk.len();
                            eprintln!(
                                "items {}..{} refused ({status}): {a}",
                                first,
                                first + chunk.len() - 1
                            );
                        }
                    }
                }
            }
        }
        if failed > 0 {
            eprintln!("{failed} of {sent} messages were not accepted");
            anyhow::Ok(ExitCode::FAILURE)
        } else {
            eprintln!("{sent} message(s) accepted");
            anyhow::Ok(ExitCode::SUCCESS)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn object_array_and_lines() {
        assert!(matches!(parse_input(r#"{"a":1}"#).unwrap(), Input::One(_)));
        assert!(matches!(
            parse_input(r#"[{"a":1},{"a":2}]"#).unwrap(),
            Input::Many(v) if v.len() == 2
        ));
        assert!(matches!(
            parse_input("{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n").unwrap(),
            Input::Many(v) if v.len() == 3
        ));
        assert!(parse_input("").is_err());
        assert!(parse_input("[]").is_err());
        let e = parse_input("{\"a\":1}\n{nope\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn requests_are_kept_as_written() {
        let one = r#"{"z":1,"id":123456789012345678901234567890,"e":1E2}"#;
        let Input::One(v) = parse_input(&format!("  {one}\n")).unwrap() else {
            panic!("one request");
        };
        assert_eq!(v.get(), one);
        let Input::Many(v) = parse_input(&format!("[{one}, {one}]")).unwrap() else {
            panic!("two requests");
        };
        assert_eq!(v[1].get(), one);
    }
}
