//! `datasync retry --release-key KEY`: asks the retry function to drop a parked key's blocker
//! (`{"releaseKey"}`), so the messages waiting behind it are attempted in order.

use std::process::ExitCode;
use std::time::Duration;

use retry::api::{ReleaseKeyAnswer, ReleaseKeyRequest};

use super::retry::{post, refusal};
use super::status::Found;

/// Sends the release and prints what it did.
pub fn run(found: &Found, key: &str) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = serde_json::to_string(&ReleaseKeyRequest {
        release_key: key.to_owned(),
    })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let answer = runtime.block_on(post(&http, found, &body))?;
    if !answer.status.is_success() {
        eprintln!("{}", refusal(&answer));
        return Ok(ExitCode::FAILURE);
    }
    let released: ReleaseKeyAnswer = serde_json::from_str(&answer.text)?;
    println!("{}", describe(&released));
    Ok(ExitCode::SUCCESS)
}

/// The line printed for a release.
fn describe(a: &ReleaseKeyAnswer) -> String {
    match (&a.dropped, a.waiting) {
        (None, _) if !a.parked => format!("key {:?} is not parked: nothing to release", a.key),
        (Some(id), 0) => format!("key {:?} released (blocker {id} dropped, nothing waiting)", a.key),
        (Some(id), n) => format!(
            "key {:?}: blocker {id} dropped; {n} message(s) waiting behind it go in order on the next retry",
            a.key
        ),
        (None, n) => format!("key {:?}: {n} message(s) still waiting", a.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_reads_as_a_sentence() {
        let mut a = ReleaseKeyAnswer {
            key: "order-42".into(),
            ..ReleaseKeyAnswer::default()
        };
        assert_eq!(
            describe(&a),
            "key \"order-42\" is not parked: nothing to release"
        );
        a.parked = true;
        a.dropped = Some("m1".into());
        assert_eq!(
            describe(&a),
            "key \"order-42\" released (blocker m1 dropped, nothing waiting)"
        );
        a.waiting = 2;
        assert!(describe(&a).contains("2 message(s) waiting"));
    }
}
