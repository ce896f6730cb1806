//! Durable storage: a node restarted on the same upload root resumes its sessions, and a crash
//! mid-write never leaves data that looks complete.

use std::sync::Arc;

use bytes::Bytes;
use node::{DiskStore, NodeConfig, Placement, SessionRecord, Storage, StorageError};

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
        phase: node::Phase::Receiving,
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
    assert_eq!(entity(&s, id, 10), b"abcdefghij");
    assert!(matches!(
        s.append(id, 20, &[Bytes::new()]),
        Err(StorageError::NotContiguous { .. })
    ));
    assert_eq!(
        s.commit(id, 10, "/out/x.bin", false).unwrap(),
        Placement::Placed
    );
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

/// A session's first `len` entity bytes, read back through the store's stream.
fn entity(s: &DiskStore, id: &str, len: u64) -> Vec<u8> {
    s.entity(id, len)
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .concat()
}

/// A session holding `bytes`, saved as complete.
fn session_with(s: &DiskStore, id: &str, bytes: &[u8]) {
    let mut rec = record(id);
    s.save(&rec).unwrap();
    s.append(id, 0, &[Bytes::copy_from_slice(bytes)]).unwrap();
    rec.received = bytes.len() as u64;
    rec.total = Some(rec.received);
    s.save(&rec).unwrap();
}

#[test]
fn a_node_that_died_after_placing_a_file_finds_it_its_own() {
    // Audit D7: the file is placed, the node dies before recording it; after a restart the
    // same session's commit is "already placed", another session's is "exists".
    let root = tempdir("placed");
    let s = DiskStore::open(&root).unwrap();
    let (a, b) = (
        "{AAAAAAAA-0000-4000-8000-000000000001}",
        "{BBBBBBBB-0000-4000-8000-000000000002}",
    );
    session_with(&s, a, b"first upload");
    session_with(&s, b, b"second upload");
    assert_eq!(
        s.commit(a, 12, "/c/v.bin", false).unwrap(),
        Placement::Placed
    );
    let s = DiskStore::open(&root).unwrap();
    assert_eq!(
        s.commit(a, 12, "/c/v.bin", false).unwrap(),
        Placement::AlreadyPlaced
    );
    assert_eq!(
        s.commit(b, 13, "/c/v.bin", false).unwrap(),
        Placement::Exists
    );
    assert_eq!(
        std::fs::read(root.join("c/v.bin")).unwrap(),
        b"first upload"
    );
    // With overwrites on the second replaces the first, whole.
    assert_eq!(
        s.commit(b, 13, "/c/v.bin", true).unwrap(),
        Placement::Placed
    );
    assert_eq!(
        std::fs::read(root.join("c/v.bin")).unwrap(),
        b"second upload"
    );
}

#[test]
fn concurrent_commits_to_one_path_never_mix_their_bytes() {
    // Audit D3: the existence check and the placement are one step.
    let root = tempdir("race");
    let s = DiskStore::open(&root).unwrap();
    let big = |b: u8| vec![b; 4 << 20];
    for round in 0..20 {
        let path = format!("/race/r{round}.bin");
        let ids = [
            format!("{{{round:08X}-0000-4000-8000-00000000000A}}"),
            format!("{{{round:08X}-0000-4000-8000-00000000000B}}"),
        ];
        for (i, id) in ids.iter().enumerate() {
            session_with(&s, id, &big(b'a' + i as u8));
        }
        let barrier = std::sync::Barrier::new(2);
        let results: Vec<Placement> = std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .iter()
                .map(|id| {
                    let (s, barrier, path) = (&s, &barrier, &path);
                    scope.spawn(move || {
                        barrier.wait();
                        s.commit(id, 4 << 20, path, false).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let placed = results.iter().filter(|r| **r == Placement::Placed).count();
        let exists = results.iter().filter(|r| **r == Placement::Exists).count();
        assert_eq!((placed, exists), (1, 1), "round {round}: {results:?}");
        let winner = results
            .iter()
            .position(|r| *r == Placement::Placed)
            .unwrap();
        let file = std::fs::read(root.join(&path[1..])).unwrap();
        assert!(
            file == big(b'a' + winner as u8),
            "round {round}: a torn file"
        );
    }
}

#[test]
fn nothing_is_followed_through_a_symbolic_link_under_the_root() {
    // Audit D5: a link planted in the root, as a directory or at a destination name.
    let root = tempdir("links");
    let outside = tempdir("links-outside");
    std::fs::write(outside.join("victim.txt"), b"keep").unwrap();
    let s = DiskStore::open(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim.txt"), root.join("planted.bin")).unwrap();
    let id = "{CCCCCCCC-0000-4000-8000-000000000003}";
    session_with(&s, id, b"attacker bytes");
    assert!(matches!(
        s.commit(id, 14, "/linkdir/victim.txt", true),
        Err(StorageError::Unsafe(_))
    ));
    assert!(matches!(
        s.destination_exists("/linkdir/x.bin"),
        Err(StorageError::Unsafe(_))
    ));
    // A link at the destination name counts as an existing file (overwrites off) ...
    assert!(s.destination_exists("/planted.bin").unwrap());
    assert_eq!(
        s.commit(id, 14, "/planted.bin", false).unwrap(),
        Placement::Exists
    );
    // ... and with overwrites on the link itself is replaced, never written through.
    assert_eq!(
        s.commit(id, 14, "/planted.bin", true).unwrap(),
        Placement::Placed
    );
    assert_eq!(std::fs::read(outside.join("victim.txt")).unwrap(), b"keep");
    assert!(
        !std::fs::symlink_metadata(root.join("planted.bin"))
            .unwrap()
            .is_symlink()
    );
    // A session directory replaced by a link is refused, not followed.
    let id2 = "{DDDDDDDD-0000-4000-8000-000000000004}";
    std::os::unix::fs::symlink(&outside, root.join("BITS-Sessions").join(id2)).unwrap();
    assert!(matches!(
        s.append(id2, 0, &[Bytes::from_static(b"x")]),
        Err(StorageError::Unsafe(_))
    ));
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing was written outside the root"
    );
}

#[test]
fn litter_of_cut_short_creations_is_swept() {
    // Audit D16: a directory without state is removed at boot; sessions with state stay.
    let root = tempdir("litter");
    let s = DiskStore::open(&root).unwrap();
    let live = "{EEEEEEEE-0000-4000-8000-000000000005}";
    session_with(&s, live, b"keep me");
    let dead = root.join("BITS-Sessions/{FFFFFFFF-0000-4000-8000-000000000006}");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("state.json.tmp"), b"").unwrap();
    std::fs::write(root.join("BITS-Sessions/ledger.jsonl"), b"").unwrap();
    assert_eq!(s.sweep_litter().unwrap(), 1);
    assert!(!dead.exists());
    assert!(s.get(live).unwrap().is_some());
    assert!(
        root.join("BITS-Sessions/ledger.jsonl").exists(),
        "not a session: kept"
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

fn digest_of(data: &[u8]) -> protocol::txid::Digested {
    protocol::txid::digest([data])
}

#[test]
fn the_disk_store_hashes_what_it_writes_and_forgets_what_it_cannot_vouch_for() {
    let root = tempdir("kept-digest");
    let s = DiskStore::open(&root).unwrap();
    let id = "{11111111-2222-4333-8444-666666666666}";
    s.save(&record(id)).unwrap();
    s.append(id, 0, &[Bytes::from_static(b"abcd")]).unwrap();
    s.append(
        id,
        4,
        &[Bytes::from_static(b"ef"), Bytes::from_static(b"ghij")],
    )
    .unwrap();
    assert_eq!(s.kept_digest(id), Some(digest_of(b"abcdefghij")));
    assert_eq!(
        s.entity_digest(id, 10).unwrap(),
        Some(digest_of(b"abcdefghij"))
    );
    // Only the whole entity is vouched for.
    assert_eq!(s.entity_digest(id, 4).unwrap(), None);
    // A torn write's bytes dropped by the next append: the digest does not cover what is on
    // disk from there, so it is forgotten, and readers read the file.
    s.append(id, 8, &[Bytes::from_static(b"XY")]).unwrap();
    assert_eq!(s.kept_digest(id), None);
    // The file changed behind the store's back: no digest either.
    let t = "{11111111-2222-4333-8444-777777777777}";
    s.save(&record(t)).unwrap();
    s.append(t, 0, &[Bytes::from_static(b"abc")]).unwrap();
    assert!(s.kept_digest(t).is_some());
    std::fs::OpenOptions::new()
        .append(true)
        .open(s.entity_path(t))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"d"))
        .unwrap();
    assert_eq!(s.kept_digest(t), None);
    // A store opened anew (a restarted node) has no digest for what an earlier one wrote.
    let again = DiskStore::open(&root).unwrap();
    assert_eq!(again.kept_digest(id), None);
    s.remove(id).unwrap();
    assert_eq!(s.kept_digest(id), None);
}
