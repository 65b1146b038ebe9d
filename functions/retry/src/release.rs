//! Release mode: an operator drops a parked key's blocker (`datasync retry --release-key`), so
//! the messages waiting behind it are attempted in order; with none waiting the key is free.

use datasync_core::deliver::Deliverer;
use datasync_core::parked::{key_name, Change};
use fdk::Response;

use crate::api::ReleaseKeyAnswer;
use crate::{answer, Refusal};

/// Handles a release-mode request for `key` (its text is the key's bytes).
pub(crate) async fn run(deliverer: &Deliverer, key: String) -> Result<Response, Refusal> {
    let Some(store) = deliverer.parked() else {
        return Err(Refusal::invalid(
            "releaseKey: this function keeps no parked keys (parked_keys_bucket is not set)",
        ));
    };
    let name = key_name(key.as_bytes());
    let before = store.read().await.map_err(Refusal::Parked)?;
    let Some(entry) = before.set.get(&name) else {
        return Ok(answer(&ReleaseKeyAnswer {
            key,
            ..ReleaseKeyAnswer::default()
        }));
    };
    let dropped = entry.head().map(str::to_owned);
    let change = Change::DropHead {
        key: name.clone(),
        only_if: dropped.clone(),
    };
    let after = store
        .commit(before.clone(), &[change])
        .await
        .map_err(Refusal::Parked)?;
    let waiting = after.set.get(&name).map_or(0, |e| e.queue.len());
    tracing::info!(
        dropped = dropped.is_some(),
        waiting,
        "parked key released by an operator"
    );
    Ok(answer(&ReleaseKeyAnswer {
        key,
        parked: true,
        dropped,
        waiting: u64::try_from(waiting).unwrap_or(u64::MAX),
    }))
}
