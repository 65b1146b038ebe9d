//! Order: the batch is split into lanes that run concurrently. Messages with the same key
//! share a lane and run one after the other in batch order; once one fails, the later ones
//! are not attempted and are held behind it ([`Failure::Held`]), so they never overtake it.
//! Each message without a key is a lane of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::Instrument as _;

use crate::classify::ErrorClass;

use super::attempt::{Attempts, Window};
use super::item::Item;
use super::outcome::{Cause, Failure, Fate, Outcome, Outcomes};

/// Delivers `items`, lane by lane, and returns their fates in batch order.
pub(super) async fn deliver(
    attempts: &Arc<Attempts>,
    items: Vec<Item>,
    deadline: Instant,
) -> Outcomes {
    let window = Window::until(deadline);
    let lanes = lanes(&items);
    let items = Arc::new(items);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        let run = run_lane(Arc::clone(attempts), Arc::clone(&items), lane, window);
        tasks.spawn(run.in_current_span());
    }
    let mut fates: Vec<Option<Fate>> = vec![None; items.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => {
                for (i, fate) in done {
                    if let Some(slot) = fates.get_mut(i) {
                        *slot = Some(fate);
                    }
                }
            }
            // A panicking lane loses its items' fates; they are reported below.
            Err(e) => tracing::error!(error = %e, "a delivery task failed"),
        }
    }
    // Every task has ended and dropped its share of the items.
    let items = Arc::try_unwrap(items).unwrap_or_else(|shared| shared.as_ref().clone());
    let list = items
        .into_iter()
        .zip(fates)
        .map(|(item, fate)| Outcome {
            item,
            fate: fate.unwrap_or_else(lost),
        })
        .collect();
    Outcomes::new(list)
}

/// The fate of a message whose lane failed: dead-lettered as it is, to be replayed.
fn lost() -> Fate {
    Fate::Failed(Failure::permanent(
        ErrorClass::Invalid,
        Cause::Unexpected {
            detail: "internal error: the delivery task failed".into(),
        },
    ))
}

/// The lanes of a batch, as indices into it: one per key (in batch order), one per keyless
/// message.
fn lanes(items: &[Item]) -> Vec<Vec<usize>> {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<&Bytes, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        match &item.key {
            Some(key) => match by_key.get(key) {
                Some(&lane) => lanes[lane].push(i),
                None => {
                    by_key.insert(key, lanes.len());
                    lanes.push(vec![i]);
                }
            },
            None => lanes.push(vec![i]),
        }
    }
    lanes
}

/// Runs one lane: each message in turn, until one fails; the rest are held behind that one.
async fn run_lane(
    attempts: Arc<Attempts>,
    items: Arc<Vec<Item>>,
    lane: Vec<usize>,
    window: Window,
) -> Vec<(usize, Fate)> {
    let mut out = Vec::with_capacity(lane.len());
    let mut blocker: Option<usize> = None;
    for i in lane {
        let fate = match (blocker, items.get(i)) {
            (Some(b), _) => Fate::Failed(Failure::held(b)),
            (None, Some(item)) => attempts.attempt(item, window).await,
            // Not in the batch: nothing to deliver (lanes hold only the batch's indices).
            (None, None) => continue,
        };
        if blocker.is_none() && matches!(fate, Fate::Failed(_)) {
            blocker = Some(i);
        }
        out.push((i, fate));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn keyed(key: Option<&'static str>) -> Item {
        Item::decode(
            "s",
            "0",
            0,
            key.map(|k| Bytes::from_static(k.as_bytes())),
            Bytes::from_static(b"{}"),
        )
    }

    #[test]
    fn same_key_messages_share_a_lane_in_batch_order() {
        let items = [
            keyed(Some("a")),
            keyed(None),
            keyed(Some("b")),
            keyed(Some("a")),
            keyed(None),
            keyed(Some("a")),
        ];
        assert_eq!(
            lanes(&items),
            vec![vec![0, 3, 5], vec![1], vec![2], vec![4]]
        );
    }
}
