//! The fuzz, load and soak suites. CI runs short versions; `just fuzz` and `just soak` run
//! the long ones (the sizes come from the environment: `FUZZ_SEEDS`, `FUZZ_REQUESTS`,
//! `SOAK_CLIENTS`, `SOAK_FILES`).

use proptest::prelude::*;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: env("FUZZ_SEEDS", 8) as u32,
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    })]

    /// The node over in-memory streams, on a paused clock: 500 generated requests per seed,
    /// each answered as it must be, no panic, and an ordinary upload still works after.
    #[test]
    fn the_node_answers_every_generated_request(seed in any::<u64>()) {
        let stats = fuzz::in_memory(seed, 500).map_err(TestCaseError::fail)?;
        prop_assert_eq!(stats.requests, 500);
        prop_assert!(stats.acks > 100, "{:?}", stats);
    }

    /// The transaction-id digest of any bytes, split anywhere, equals the one-shot reading.
    #[test]
    fn a_digest_of_any_bytes_in_any_pieces_is_the_whole(
        data in prop::collection::vec(any::<u8>(), 0..600),
        with_header in any::<bool>(),
        cut in 1usize..200,
    ) {
        let mut bytes = if with_header {
            protocol::txid::header("tx-1", &data)
        } else {
            Vec::new()
        };
        bytes.extend_from_slice(&data);
        let got = protocol::txid::digest(bytes.chunks(cut));
        prop_assert_eq!(got.hash, protocol::txid::hash(&bytes));
        prop_assert_eq!(got.len, bytes.len() as u64);
        prop_assert_eq!(&got.parsed, &protocol::txid::parse(&bytes));
        prop_assert_eq!(got.payload_matches, with_header);
    }
}

#[test]
fn a_loopback_campaign_finds_no_bad_answer_and_no_panic() {
    let requests = env("FUZZ_REQUESTS", 3000);
    let stats = fuzz::loopback(env("FUZZ_SEED", 1), requests, 4).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("loopback campaign: {stats:?}");
    assert!(stats.requests >= requests);
    // The generator reaches the node's paths: sessions, acks, refusals.
    assert!(stats.sessions_created > 10, "{stats:?}");
    assert!(stats.statuses.contains_key(&200) && stats.statuses.contains_key(&400));
}

#[test]
fn a_soak_through_a_cutting_proxy_delivers_every_file_with_one_effect() {
    let cfg = fuzz::SoakConfig {
        clients: env("SOAK_CLIENTS", 16),
        files_per_client: env("SOAK_FILES", 3),
        file_size_max: 256 << 10,
        cut_probability: 0.05,
        seed: env("SOAK_SEED", 7),
    };
    let stats = fuzz::soak(&cfg).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("soak: {stats:?}");
    assert_eq!(stats.jobs, cfg.clients * cfg.files_per_client);
    assert!(stats.cuts > 0, "the proxy cut nothing: {stats:?}");
}
