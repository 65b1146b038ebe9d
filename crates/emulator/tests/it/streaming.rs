//! Streaming: control plane, PutMessages, cursors, GetMessages, consumer groups, bad input.

use std::time::{Duration, SystemTime};

use datasync_core::oci::models::{self, CursorType, GroupCursorType};
use http::Method;

use crate::util::*;

#[tokio::test]
async fn control_plane_create_get_list_delete() {
    let emu = start().await;
    let stream = emu.create_stream("orders", 3).await;
    assert!(stream.id.starts_with("ocid1.stream.oc1.local."));
    assert_eq!(stream.lifecycle_state, "ACTIVE");
    assert_eq!(stream.messages_endpoint, emu.base);
    let got: models::Stream = emu
        .client
        .get(&format!("/20180418/streams/{}", stream.id))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got, stream);
    let compartment = emu.emulator.profile().compartment.clone();
    let listed: Vec<models::Stream> = emu
        .client
        .get(&format!(
            "/20180418/streams?compartmentId={compartment}&name=orders"
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed, vec![stream.clone()]);
    let deleted = emu
        .client
        .send(
            Method::DELETE,
            &format!("/20180418/streams/{}", stream.id),
            vec![],
            datasync_core::oci::signer::BodySigning::Include,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(deleted.status, 202);
    assert_error(
        &emu.client
            .get(&format!("/20180418/streams/{}", stream.id))
            .await
            .unwrap(),
        404,
        "NotAuthorizedOrNotFound",
    );
    // Bad control-plane input.
    for (body, code) in [
        (
            r#"{"name":"x","partitions":0,"compartmentId":"c"}"#,
            "InvalidParameter",
        ),
        (
            r#"{"name":"x","partitions":1,"compartmentId":"c","retentionInHours":200}"#,
            "InvalidParameter",
        ),
        (
            r#"{"name":"bad name!","partitions":1,"compartmentId":"c"}"#,
            "InvalidParameter",
        ),
        (r#"{"name":"x","partitions":1}"#, "MissingParameter"),
        (r#"{"name":"x","partitions":"#, "CannotParseRequest"),
    ] {
        let answer = emu
            .client
            .send(
                Method::POST,
                "/20180418/streams",
                body.as_bytes().to_vec(),
                datasync_core::oci::signer::BodySigning::Include,
                Default::default(),
            )
            .await
            .unwrap();
        assert_error(&answer, 400, code);
    }
    // Emptied by the sweeper in the background.
    emu.emulator
        .trim_retention(SystemTime::now())
        .await
        .unwrap();
    assert!(emu.emulator.stream_stats().await.unwrap().is_empty());
}

#[tokio::test]
async fn put_and_read_back_with_every_cursor_type() {
    let emu = start().await;
    let s = emu.create_stream("s", 2).await.id;
    let before = SystemTime::now() - Duration::from_secs(1);
    let result = emu
        .put(
            &s,
            &[
                (Some(b"k1"), b"a"),
                (Some(b"k1"), b"b"),
                (None, b"c"),
                (None, b"d"),
            ],
        )
        .await;
    assert_eq!(result.failures, 0);
    assert_eq!(result.entries.len(), 4);
    // Same key, same partition, increasing offsets.
    assert_eq!(result.entries[0].partition, result.entries[1].partition);
    assert_eq!(
        result.entries[1].offset.unwrap(),
        result.entries[0].offset.unwrap() + 1
    );
    // Null keys spread over both partitions.
    assert_ne!(result.entries[2].partition, result.entries[3].partition);
    let p = result.entries[0].partition.clone().unwrap();

    let (all, next) = emu
        .get_messages(
            &s,
            &emu.cursor(&s, &partition_cursor(&p, CursorType::TrimHorizon, None))
                .await,
            None,
        )
        .await;
    let values: Vec<Vec<u8>> = all.iter().map(|m| unb64(&m.value)).collect();
    assert!(values.starts_with(&[b"a".to_vec(), b"b".to_vec()]));
    assert_eq!(all[0].stream, "s");
    assert_eq!(all[0].key.as_deref().map(unb64), Some(b"k1".to_vec()));
    assert!(all[0].timestamp.ends_with('Z') && all[0].timestamp.len() == 24);
    // The next cursor is set even when nothing is left.
    let (none, again) = emu.get_messages(&s, &next, None).await;
    assert!(none.is_empty());
    assert!(!again.is_empty());
    // A new message shows up on the old cursor.
    emu.put(&s, &[(Some(b"k1"), b"e")]).await;
    let (later, _) = emu.get_messages(&s, &again, None).await;
    assert_eq!(
        later.iter().map(|m| unb64(&m.value)).collect::<Vec<_>>(),
        vec![b"e".to_vec()]
    );

    let at = emu
        .get_messages(
            &s,
            &emu.cursor(&s, &partition_cursor(&p, CursorType::AtOffset, Some(1)))
                .await,
            Some(1),
        )
        .await
        .0;
    assert_eq!((at.len(), at[0].offset), (1, 1));
    let after = emu
        .get_messages(
            &s,
            &emu.cursor(&s, &partition_cursor(&p, CursorType::AfterOffset, Some(0)))
                .await,
            None,
        )
        .await
        .0;
    assert_eq!(after[0].offset, 1);
    let latest = emu
        .get_messages(
            &s,
            &emu.cursor(&s, &partition_cursor(&p, CursorType::Latest, None))
                .await,
            None,
        )
        .await
        .0;
    assert!(latest.is_empty());
    let mut at_time = partition_cursor(&p, CursorType::AtTime, None);
    at_time.time = Some(
        time::OffsetDateTime::from(before)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    let timed = emu
        .get_messages(&s, &emu.cursor(&s, &at_time).await, None)
        .await
        .0;
    assert_eq!(timed[0].offset, 0);

    let stats = emu.emulator.stream_stats().await.unwrap();
    let depth: i64 = stats[0]
        .partitions
        .iter()
        .map(|(_, first, next)| next - first)
        .sum();
    assert_eq!(depth, 5);
}

#[tokio::test]
async fn limits_and_bad_input_get_oci_errors_and_store_nothing() {
    let emu = start().await;
    let s = emu.create_stream("limits", 1).await.id;
    let big = vec![b'x'; 1024 * 1024 + 1];
    let two_halves = vec![b'y'; 600 * 1024];
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "CannotParseRequest"),
        (
            br#"{"messages":[{"value":"%%%not base64"}]}"#.to_vec(),
            400,
            "InvalidParameter",
        ),
        (
            br#"{"messages":[{"value":"YQ==","key":"*"}]}"#.to_vec(),
            400,
            "InvalidParameter",
        ),
        (br#"{"messages":[]}"#.to_vec(), 400, "InvalidParameter"),
        (br#"{"messages":"nope"}"#.to_vec(), 400, "InvalidParameter"),
        (
            format!(r#"{{"messages":[{{"value":"{}"}}]}}"#, b64(&big)).into_bytes(),
            413,
            "PayloadTooLarge",
        ),
        (
            format!(
                r#"{{"messages":[{{"value":"{0}"}},{{"value":"{0}"}}]}}"#,
                b64(&two_halves)
            )
            .into_bytes(),
            413,
            "PayloadTooLarge",
        ),
        (vec![b' '; 3 * 1024 * 1024], 413, "PayloadTooLarge"),
    ];
    for (body, status, code) in cases {
        assert_error(&emu.put_raw(&s, body).await, status, code);
    }
    // Unknown stream.
    assert_error(
        &emu.put_raw(
            "ocid1.stream.oc1.local.nope",
            br#"{"messages":[{"value":"YQ=="}]}"#.to_vec(),
        )
        .await,
        404,
        "NotAuthorizedOrNotFound",
    );
    // Cursors: bad, for another stream, bad partition, beyond the end.
    let get = |c: String| {
        let path = format!("/20180418/streams/{s}/messages?cursor={c}");
        let client = emu.client.clone();
        async move { client.get(&path).await.unwrap() }
    };
    assert_error(&get("garbage".into()).await, 400, "InvalidParameter");
    let other = emu.create_stream("other", 1).await.id;
    let foreign = emu
        .cursor(&other, &partition_cursor("0", CursorType::Latest, None))
        .await;
    assert_error(&get(foreign).await, 400, "InvalidParameter");
    let cursor_answer = |d: models::CreateCursorDetails| {
        let client = emu.client.clone();
        let path = format!("/20180418/streams/{s}/cursors");
        async move { client.json(Method::POST, &path, &d).await.unwrap() }
    };
    assert_error(
        &cursor_answer(partition_cursor("7", CursorType::Latest, None)).await,
        400,
        "InvalidParameter",
    );
    assert_error(
        &cursor_answer(partition_cursor("0", CursorType::AtOffset, Some(99))).await,
        400,
        "InvalidParameter",
    );
    assert_error(
        &cursor_answer(partition_cursor("0", CursorType::AtOffset, None)).await,
        400,
        "MissingParameter",
    );
    let ok = emu
        .cursor(&s, &partition_cursor("0", CursorType::Latest, None))
        .await;
    for limit in ["0", "10001", "x"] {
        let answer = emu
            .client
            .get(&format!(
                "/20180418/streams/{s}/messages?cursor={ok}&limit={limit}"
            ))
            .await
            .unwrap();
        assert_error(&answer, 400, "InvalidParameter");
    }
    // Nothing was stored by any rejected request.
    let stats = emu.emulator.stream_stats().await.unwrap();
    assert!(stats
        .iter()
        .all(|st| st.partitions.iter().all(|(_, _, next)| *next == 0)));
    // A full 1 MB request is accepted.
    let exactly = vec![b'z'; 1024 * 1024];
    assert_eq!(
        emu.put(&s, &[(None, &exactly)]).await.entries[0].offset,
        Some(0)
    );
}

#[tokio::test]
async fn group_cursors_commit_heartbeat_and_reset() {
    let emu = start().await;
    let s = emu.create_stream("g", 2).await.id;
    for i in 0..10u8 {
        emu.put(&s, &[(None, &[i])]).await;
    }
    let group = |instance: &str, commit_on_get: bool| models::CreateGroupCursorDetails {
        cursor_type: GroupCursorType::TrimHorizon,
        time: None,
        group_name: "workers".into(),
        instance_name: Some(instance.into()),
        timeout_in_ms: Some(30_000),
        commit_on_get: Some(commit_on_get),
    };
    let path = format!("/20180418/streams/{s}/groupCursors");
    let c1: models::Cursor = emu
        .client
        .json(Method::POST, &path, &group("a", true))
        .await
        .unwrap()
        .json()
        .unwrap();
    // One instance holds both partitions and reads everything.
    let (first, next) = emu.get_messages(&s, &c1.value, Some(4)).await;
    assert_eq!(first.len(), 4);
    let (rest, next) = emu.get_messages(&s, &next, None).await;
    assert_eq!(first.len() + rest.len(), 10);
    // commitOnGet committed the first batch when the second was fetched; commit the rest.
    let committed: models::Cursor = emu
        .client
        .send(
            Method::POST,
            &format!("/20180418/streams/{s}/commit?cursor={next}"),
            vec![],
            datasync_core::oci::signer::BodySigning::Include,
            Default::default(),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    let g: models::Group = emu
        .client
        .get(&format!("/20180418/streams/{s}/groups/workers"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(g.reservations.len(), 2);
    assert_eq!(
        g.reservations
            .iter()
            .map(|r| r.committed_offset.unwrap() + 1)
            .sum::<i64>(),
        10
    );
    assert!(g
        .reservations
        .iter()
        .all(|r| r.reserved_instance.as_deref() == Some("a")));
    let beat = emu
        .client
        .send(
            Method::POST,
            &format!("/20180418/streams/{s}/heartbeat?cursor={}", committed.value),
            vec![],
            datasync_core::oci::signer::BodySigning::Include,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(beat.status, 200);
    // A second instance joins: it gets a fair share once "a" releases its extra partition.
    let c2: models::Cursor = emu
        .client
        .json(Method::POST, &path, &group("b", true))
        .await
        .unwrap()
        .json()
        .unwrap();
    let _ = emu.get_messages(&s, &committed.value, None).await; // "a" rebalances to one partition
    let (b_msgs, _) = emu.get_messages(&s, &c2.value, None).await;
    assert!(b_msgs.is_empty(), "everything was committed already");
    let g: models::Group = emu
        .client
        .get(&format!("/20180418/streams/{s}/groups/workers"))
        .await
        .unwrap()
        .json()
        .unwrap();
    let holders: std::collections::HashSet<_> = g
        .reservations
        .iter()
        .filter_map(|r| r.reserved_instance.clone())
        .collect();
    assert_eq!(holders.len(), 2, "{g:?}");
    // Reset to the start: a new cursor reads everything again.
    let update = emu
        .client
        .json(
            Method::PUT,
            &format!("/20180418/streams/{s}/groups/workers"),
            &models::UpdateGroupDetails {
                cursor_type: Some(GroupCursorType::TrimHorizon),
                time: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(update.status, 200);
    let c3: models::Cursor = emu
        .client
        .json(Method::POST, &path, &group("c", false))
        .await
        .unwrap()
        .json()
        .unwrap();
    let (again, _) = emu.get_messages(&s, &c3.value, None).await;
    assert_eq!(again.len(), 10);
    assert_error(
        &emu.client
            .get(&format!("/20180418/streams/{s}/groups/nope"))
            .await
            .unwrap(),
        404,
        "NotAuthorizedOrNotFound",
    );
    let stats = emu.emulator.stream_stats().await.unwrap();
    assert_eq!(stats[0].groups[0].0, "workers");
}

#[tokio::test]
async fn concurrent_puts_get_distinct_increasing_offsets() {
    let emu = std::sync::Arc::new(start().await);
    let s = emu.create_stream("c", 1).await.id;
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let (emu, s) = (emu.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for j in 0..10u32 {
                let v = format!("{i}-{j}");
                offsets.push(
                    emu.put(&s, &[(None, v.as_bytes())]).await.entries[0]
                        .offset
                        .unwrap(),
                );
            }
            offsets
        }));
    }
    let mut all: Vec<i64> = Vec::new();
    for t in tasks {
        let offsets = t.await.unwrap();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        all.extend(offsets);
    }
    all.sort_unstable();
    assert_eq!(all, (0..320).collect::<Vec<i64>>());
}

#[tokio::test]
async fn reads_page_through_a_stream_bigger_than_one_answer() {
    let emu = start_with({
        let mut o = datasync_emulator::EmulatorOptions::default();
        o.get_messages_max_bytes = 64 * 1024;
        o
    })
    .await;
    let s = emu.create_stream("big", 1).await.id;
    let value = vec![b'v'; 1000];
    for _ in 0..5 {
        let batch: Vec<(Option<&[u8]>, &[u8])> =
            (0..100).map(|_| (None, value.as_slice())).collect();
        emu.put(&s, &batch).await;
    }
    let mut cursor = emu
        .cursor(&s, &partition_cursor("0", CursorType::TrimHorizon, None))
        .await;
    let mut seen = 0;
    loop {
        let (page, next) = emu.get_messages(&s, &cursor, None).await;
        if page.is_empty() {
            break;
        }
        assert!(
            page.len() <= 66,
            "answers are bounded by bytes: {}",
            page.len()
        );
        assert_eq!(page[0].offset, seen);
        seen += page.len() as i64;
        cursor = next;
    }
    assert_eq!(seen, 500);
    // Retention: nothing is old enough now; everything is 25 hours from now.
    assert_eq!(
        emu.emulator
            .trim_retention(SystemTime::now())
            .await
            .unwrap(),
        0
    );
    let later = SystemTime::now() + Duration::from_secs(25 * 3600);
    assert_eq!(emu.emulator.trim_retention(later).await.unwrap(), 500);
    // Offsets keep increasing after a trim.
    assert_eq!(
        emu.put(&s, &[(None, b"after")]).await.entries[0].offset,
        Some(500)
    );
    let (trimmed, _) = emu
        .get_messages(
            &s,
            &emu.cursor(&s, &partition_cursor("0", CursorType::TrimHorizon, None))
                .await,
            None,
        )
        .await;
    assert_eq!(trimmed[0].offset, 500);
}

/// UpdateStream may not change what OCI fixes at creation: partitions and retention are refused
/// with 400 naming the field, and the stream stays as it was; a pool move is applied.
#[tokio::test]
async fn update_stream_keeps_partitions_and_retention() {
    let emu = start().await;
    let stream = emu.create_stream("fixed", 2).await;
    let path = format!("/20180418/streams/{}", stream.id);
    let update = |body: &'static str| {
        let (client, path) = (emu.client.clone(), path.clone());
        async move {
            client
                .send(
                    Method::PUT,
                    &path,
                    body.as_bytes().to_vec(),
                    datasync_core::oci::signer::BodySigning::Include,
                    Default::default(),
                )
                .await
                .unwrap()
        }
    };
    for (body, field) in [
        (r#"{"partitions":3}"#, "partitions"),
        (r#"{"retentionInHours":72}"#, "retentionInHours"),
        (r#"{"streamPoolId":"p2","partitions":1}"#, "partitions"),
    ] {
        let answer = update(body).await;
        assert_error(&answer, 400, "InvalidParameter");
        assert!(
            String::from_utf8_lossy(&answer.body).contains(field),
            "{body}"
        );
    }
    let unchanged: models::Stream = emu.client.get(&path).await.unwrap().json().unwrap();
    assert_eq!(unchanged, stream);
    let moved: models::Stream =
        update(r#"{"streamPoolId":"ocid1.streampool.oc1.local.p2","freeformTags":{"a":"b"}}"#)
            .await
            .json()
            .unwrap();
    assert_eq!(
        (
            moved.partitions,
            moved.retention_in_hours,
            moved.stream_pool_id.as_deref()
        ),
        (
            2,
            stream.retention_in_hours,
            Some("ocid1.streampool.oc1.local.p2")
        )
    );
}
