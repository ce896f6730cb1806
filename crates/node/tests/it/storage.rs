//! Durable storage: a node restarted on the same upload root resumes its sessions, and a crash
//! mid-write never leaves data that looks complete.

use std::sync::Arc;

use bytes::Bytes;
use node::{DiskStore, NodeConfig, SessionRecord, Storage, StorageError};

use crate::{support::*, upload::tempdir};

#[tokio::test]
async fn a_restarted_node_resumes_sessions_from_disk() {
    let root = tempdir("restart");
    let d = data(30_000, 20);
    let url = "/dur/file.bin";
    let (id, received) = {
        let n = start_node_with(
            NodeConfig::default(),
            Arc::new(DiskStore::open(&root).unwrap()),
            1,
        )
        .await;
        let mut c = Client::connect(&n.addr).await;
        let id = c.create(url).await;
        let ack = c.fragment(url, &id, &d, 0, 12_000).await;
        (id, ack.received.unwrap())
        // The node is dropped here: its tasks are aborted.
    };
    let n = start_node_with(
        NodeConfig::default(),
        Arc::new(DiskStore::open(&root).unwrap()),
        2,
    )
    .await;
    let mut c = Client::connect(&n.addr).await;
    let ack = c.fragment(url, &id, &d, received as usize, 30_000).await;
    assert_eq!(
        (ack.status, ack.received),
        (200, Some(30_000)),
        "resumed on the restarted node"
    );
    assert_eq!(c.close(url, &id).await.status, 200);
    assert_eq!(std::fs::read(root.join("dur/file.bin")).unwrap(), d);
}

fn record(id: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        path: "/x.bin".into(),
        original_url: "http://h/x.bin".into(),
        query: None,
        content_name: None,
        total: Some(10),
        received: 0,
        upload_complete: false,
        notified: None,
        committed: false,
        touched_ms: 0,
    }
}

#[test]
fn bytes_a_crash_left_beyond_the_saved_state_are_discarded() {
    let root = tempdir("torn");
    let s = DiskStore::open(&root).unwrap();
    let id = "{11111111-2222-4333-8444-555555555555}";
    let mut rec = record(id);
    s.save(&rec).unwrap();
    s.append(id, 0, &[Bytes::from_static(b"abcd")]).unwrap();
    rec.received = 4;
    s.save(&rec).unwrap();
    // A crash after writing more bytes but before saving the state that counts them.
    s.append(id, 4, &[Bytes::from_static(b"GARBAGE")]).unwrap();
    let s = DiskStore::open(&root).unwrap();
    let rec = s.get(id).unwrap().unwrap();
    assert_eq!(rec.received, 4);
    // The next append continues at the saved offset; the torn bytes are gone.
    s.append(id, rec.received, &[Bytes::from_static(b"efghij")])
        .unwrap();
    assert_eq!(s.entity(id, 10).unwrap().concat(), b"abcdefghij");
    assert!(matches!(
        s.append(id, 20, &[Bytes::new()]),
        Err(StorageError::NotContiguous { .. })
    ));
    s.commit(id, 10, "/out/x.bin").unwrap();
    assert_eq!(
        std::fs::read(root.join("out/x.bin")).unwrap(),
        b"abcdefghij"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.join("out")).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file left beside the destination"
    );
}

#[test]
fn client_session_ids_never_name_paths() {
    let root = tempdir("ids");
    let s = DiskStore::open(&root).unwrap();
    for id in ["../x", "..", "a/b", "{x}/../../y", ""] {
        assert!(s.get(id).unwrap().is_none(), "{id}");
        assert!(s.append(id, 0, &[]).is_err(), "{id}");
    }
    let mut sessions = s.sessions().unwrap();
    sessions.retain(|_| true);
    assert!(sessions.is_empty());
    // A directory with no state (creation cut short) is skipped at boot.
    std::fs::create_dir_all(root.join("BITS-Sessions/{dead}")).unwrap();
    assert!(s.sessions().unwrap().is_empty());
}
