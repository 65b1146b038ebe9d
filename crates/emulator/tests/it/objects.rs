//! Object Storage: namespace, buckets, objects with ETags, listing, preconditions.

use datasync_core::oci::models;
use datasync_core::oci::signer::BodySigning;
use http::{HeaderMap, HeaderValue, Method};

use crate::util::*;
use datasync_emulator::EmulatorOptions;

#[tokio::test]
async fn buckets_and_objects() {
    let emu = start().await;
    let ns: String = emu.client.get("/n/").await.unwrap().json().unwrap();
    assert_eq!(ns, "local");
    let compartment = emu.emulator.profile().compartment.clone();
    let bucket: models::Bucket = emu
        .client
        .json(
            Method::POST,
            &format!("/n/{ns}/b/"),
            &models::CreateBucketDetails {
                name: "dead".into(),
                compartment_id: compartment.clone(),
            },
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(bucket.name, "dead");
    let again = emu
        .client
        .json(
            Method::POST,
            &format!("/n/{ns}/b/"),
            &models::CreateBucketDetails {
                name: "dead".into(),
                compartment_id: compartment,
            },
        )
        .await
        .unwrap();
    assert_error(&again, 409, "BucketAlreadyExists");
    let got: models::Bucket = emu
        .client
        .get(&format!("/n/{ns}/b/dead"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got, bucket);

    let put = |name: &str, body: &[u8], headers: HeaderMap| {
        let path = format!("/n/{ns}/b/dead/o/{name}");
        let client = emu.client.clone();
        let body = body.to_vec();
        async move {
            client
                .send(Method::PUT, &path, body, BodySigning::Exclude, headers)
                .await
                .unwrap()
        }
    };
    let first = put("2024/a%20b.json", b"{\"a\":1}", HeaderMap::new()).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").unwrap().to_owned();
    assert!(first.header("opc-content-md5").is_some());
    put("2024/c.json", b"c", HeaderMap::new()).await;
    put("other.json", b"o", HeaderMap::new()).await;
    let mut none_match = HeaderMap::new();
    none_match.insert("if-none-match", HeaderValue::from_static("*"));
    assert_error(
        &put("other.json", b"o2", none_match).await,
        412,
        "IfNoneMatchFailed",
    );

    let object = emu
        .client
        .get(&format!("/n/{ns}/b/dead/o/2024/a%20b.json"))
        .await
        .unwrap();
    assert_eq!(object.status, 200);
    assert_eq!(&object.body[..], b"{\"a\":1}");
    assert_eq!(object.header("etag"), Some(etag.as_str()));
    let head = emu
        .client
        .send(
            Method::HEAD,
            &format!("/n/{ns}/b/dead/o/2024%2Fa%20b.json"),
            vec![],
            BodySigning::Include,
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("7"));

    // The first object under 2024/, with `fields` as asked.
    let list_first = |fields: &'static str| {
        let path = format!("/n/{ns}/b/dead/o?prefix=2024/&limit=1{fields}");
        let client = &emu.client;
        async move {
            client
                .get(&path)
                .await
                .unwrap()
                .json::<models::ListObjects>()
                .unwrap()
        }
    };
    let list = list_first("").await;
    assert_eq!(list.objects.len(), 1);
    assert_eq!(list.objects[0].name, "2024/a b.json");
    assert_eq!(list.next_start_with.as_deref(), Some("2024/c.json"));
    // Only the name unless `fields` asks for more, as OCI answers.
    assert_eq!(
        (list.objects[0].size, list.objects[0].etag.as_deref()),
        (None, None)
    );
    let sized = list_first("&fields=size").await;
    assert!(sized.objects[0].size.is_some());
    assert_eq!(
        (
            sized.objects[0].etag.as_deref(),
            sized.objects[0].time_created.as_deref()
        ),
        (None, None)
    );
    let full = list_first("&fields=name,size,etag,timeCreated").await;
    assert!(full.objects[0].etag.is_some() && full.objects[0].time_created.is_some());
    let page2: models::ListObjects = emu
        .client
        .get(&format!("/n/{ns}/b/dead/o?prefix=2024/&start=2024/c.json"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(page2.objects.len(), 1);
    assert_eq!(page2.next_start_with, None);

    let deleted = emu
        .client
        .send(
            Method::DELETE,
            &format!("/n/{ns}/b/dead/o/other.json"),
            vec![],
            BodySigning::Include,
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(deleted.status, 204);
    assert_error(
        &emu.client
            .get(&format!("/n/{ns}/b/dead/o/other.json"))
            .await
            .unwrap(),
        404,
        "ObjectNotFound",
    );
    assert_error(
        &emu.client.get(&format!("/n/{ns}/b/nope")).await.unwrap(),
        404,
        "BucketNotFound",
    );
    assert_error(
        &emu.client.get("/n/othernamespace/b/dead").await.unwrap(),
        404,
        "NotAuthorizedOrNotFound",
    );
}

/// A data directory from an earlier version, whose objects table kept each object's data in the
/// middle of its row (so listing read every object whole), opens with its objects intact and
/// the data moved to the end of the rows.
#[tokio::test]
async fn objects_stored_by_an_earlier_version_survive_the_data_moving_to_the_row_end() {
    let mut emu = start().await;
    let compartment = emu.emulator.profile().compartment.clone();
    emu.client
        .json(
            Method::POST,
            "/n/local/b/",
            &models::CreateBucketDetails {
                name: "archive".into(),
                compartment_id: compartment,
            },
        )
        .await
        .unwrap();
    let put = emu
        .client
        .send(
            Method::PUT,
            "/n/local/b/archive/o/batch-1.json",
            b"kept".to_vec(),
            BodySigning::Exclude,
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 200);
    let etag = put.header("etag").unwrap().to_owned();
    emu.emulator.close();
    let dir = std::mem::replace(&mut emu.dir, tempfile::tempdir().unwrap());
    drop(emu);

    let db = dir.path().join(datasync_emulator::DATABASE_FILE);
    let columns = |conn: &rusqlite::Connection| -> Vec<String> {
        conn.prepare("SELECT name FROM pragma_table_info('objects') ORDER BY cid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        // The earlier layout.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE objects_before(
                 bucket TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, etag TEXT NOT NULL,
                 md5 TEXT NOT NULL, content_type TEXT, created TEXT NOT NULL, meta TEXT,
                 PRIMARY KEY(bucket, name));
             INSERT INTO objects_before(bucket, name, data, etag, md5, content_type, created, meta)
                 SELECT bucket, name, data, etag, md5, content_type, created, meta FROM objects;
             DROP TABLE objects;
             ALTER TABLE objects_before RENAME TO objects;
             COMMIT;",
        )
        .unwrap();
        assert_eq!(columns(&conn)[2], "data");
    }

    let emu = start_in(dir, EmulatorOptions::default()).await;
    let got = emu
        .client
        .get("/n/local/b/archive/o/batch-1.json")
        .await
        .unwrap();
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"kept"[..]));
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    let list: models::ListObjects = emu
        .client
        .get("/n/local/b/archive/o?fields=name,size,etag,timeCreated")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list.objects.len(), 1);
    assert_eq!(
        (list.objects[0].size, list.objects[0].etag.as_deref()),
        (Some(4), Some(etag.as_str()))
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(
        columns(&conn),
        [
            "bucket",
            "name",
            "etag",
            "md5",
            "content_type",
            "created",
            "meta",
            "data"
        ]
    );
}
