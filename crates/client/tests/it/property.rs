//! Property: whatever the fragment size and wherever the server side cuts the connection,
//! the bytes the application receives equal the client's file.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use backend::BackendConfig;
use client::{JobConfig, JobState};
use probe::{FaultPoint, Verdict};
use proptest::prelude::*;

use crate::{farm::Farm, support::*};

async fn upload_with_cuts(
    len: usize,
    fragment_size: u64,
    cuts: Vec<usize>,
    cut_after_forward: bool,
) {
    let mut farm = Farm::start(TestProbe::quiet(), BackendConfig::default()).await;
    let slot: Arc<Mutex<Option<Proxy>>> = Arc::default();
    let (s, hits) = (slot.clone(), Arc::new(AtomicUsize::new(0)));
    let forwards = Arc::new(AtomicUsize::new(0));
    let node_probe = TestProbe::new(move |ctx| {
        let cut = match ctx.point {
            FaultPoint::FragmentStored => cuts.contains(&hits.fetch_add(1, Ordering::SeqCst)),
            FaultPoint::AfterForward => {
                cut_after_forward && forwards.fetch_add(1, Ordering::SeqCst) == 0
            }
            _ => false,
        };
        if cut {
            s.lock().unwrap().as_ref().unwrap().cut_all();
        }
        Verdict::Continue
    });
    let node = farm.node("node-1", false, node_probe, |_| {}).await;
    let proxy = Proxy::start(&node.addr).await;
    *slot.lock().unwrap() = Some(proxy.clone());
    let payload = data(len, len as u8);
    let cfg = JobConfig {
        fragment_size,
        min_fragment_size: fragment_size.min(4096),
        ..job_config(&proxy.addr, "/p.bin")
    };
    let (report, _) = run_job(cfg, payload.clone()).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    let deliveries = farm.ledger.deliveries();
    assert!(!deliveries.is_empty());
    for d in &deliveries {
        assert_eq!(
            (d.len, d.hash),
            (len as u64, protocol::txid::hash(&payload)),
            "delivered bytes differ"
        );
    }
    // A cut after forwarding on a live session replays the cached Ack: still one delivery.
    assert_eq!(deliveries.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(16),
        ..ProptestConfig::default()
    })]

    #[test]
    fn delivered_bytes_equal_the_clients_file(
        len in 1usize..40_000,
        fragment_size in 1u64..12_000,
        cuts in prop::collection::vec(0usize..30, 0..4),
        cut_after_forward in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(upload_with_cuts(len, fragment_size.max(1), cuts, cut_after_forward));
    }
}
