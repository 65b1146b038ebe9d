//! Order: the batch is split into lanes that run concurrently. Messages with the same key
//! share a lane and run one after the other in batch order; once one fails with a retryable
//! class, the later ones are not attempted and are held behind it ([`Failure::Held`]), so they
//! never overtake it. A permanent failure holds nothing back: each later message is attempted
//! and, should it fail, records its own reason. With a parked set (`order`), a lane also waits
//! behind its key's blocker from an earlier batch. Each message without a key is a lane of
//! its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::Instrument as _;

use crate::classify::ErrorClass;

use crate::parked::Change;

use super::attempt::{Attempts, Window};
use super::item::Item;
use super::order::{LaneState, View};
use super::outcome::{Cause, Failure, Fate, Outcome, Outcomes};

/// Delivers `items`, lane by lane, and returns their fates in batch order, with the changes
/// the lanes make to the parked set `view` was read from.
pub(super) async fn deliver(
    attempts: &Arc<Attempts>,
    items: Vec<Item>,
    deadline: Instant,
    view: Option<View<'_>>,
) -> (Outcomes, Vec<Change>) {
    let window = Window::until(deadline);
    let lanes: Vec<(Vec<usize>, LaneState)> = lanes(&items)
        .into_iter()
        .map(|lane| {
            let first = lane.first().and_then(|&i| items.get(i));
            let state = LaneState::new(Arc::clone(&attempts.settings), view, first);
            (lane, state)
        })
        .collect();
    let items = Arc::new(items);
    let mut tasks = tokio::task::JoinSet::new();
    for (lane, state) in lanes {
        let run = run_lane(
            Arc::clone(attempts),
            Arc::clone(&items),
            lane,
            state,
            window,
        );
        tasks.spawn(run.in_current_span());
    }
    let mut changes = Vec::new();
    let mut fates: Vec<Option<Fate>> = vec![None; items.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((done, lane_changes)) => {
                changes.extend(lane_changes);
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
    (Outcomes::new(list), changes)
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

/// Runs one lane: each message in turn, unless `state` holds it (behind a retryable failure
/// of the lane, or its key's blocker); returns the fates and the lane's parked-set changes.
async fn run_lane(
    attempts: Arc<Attempts>,
    items: Arc<Vec<Item>>,
    lane: Vec<usize>,
    mut state: LaneState,
    window: Window,
) -> (Vec<(usize, Fate)>, Vec<Change>) {
    let mut out = Vec::with_capacity(lane.len());
    for i in lane {
        // Not in the batch: nothing to deliver (lanes hold only the batch's indices).
        let Some(item) = items.get(i) else { continue };
        let fate = match state.before(item) {
            Some(held) => held,
            None => {
                let fate = attempts.attempt(item, window).await;
                state.after(i, item, &fate);
                fate
            }
        };
        out.push((i, fate));
    }
    (out, state.finish())
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
