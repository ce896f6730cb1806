//! Sweep aggregation: shards merge into exactly the unsharded sweep.

use report::sweep::{Plan, RunLine, Setting, merge, summarize};

use crate::tempdir;

fn plan(shard: Option<(u64, u64)>) -> Plan {
    Plan {
        v: report::sweep::FORMAT_VERSION,
        scenario: "crash-no-hostid".into(),
        scenario_arg: "crash-no-hostid".into(),
        fixed: vec![],
        varied: vec!["backend.dedupe".into(), "clients.transaction_id".into()],
        settings: vec![
            Setting {
                index: 0,
                values: vec![
                    ("backend.dedupe".into(), "false".into()),
                    ("clients.transaction_id".into(), "false".into()),
                ],
            },
            Setting {
                index: 1,
                values: vec![
                    ("backend.dedupe".into(), "true".into()),
                    ("clients.transaction_id".into(), "true".into()),
                ],
            },
        ],
        first_seed: 1,
        seeds: 6,
        shard,
    }
}

fn lines(p: &Plan) -> Vec<RunLine> {
    let base = scenario::catalog::get("crash-no-hostid").unwrap();
    (0..p.items())
        .filter(|&i| p.in_shard(i))
        .map(|i| {
            let (setting, seed) = p.item(i);
            let sets: Vec<scenario::overrides::Override> = p.settings[setting]
                .values
                .iter()
                .map(|(k, v)| scenario::overrides::Override {
                    key: k.clone(),
                    value: scenario::overrides::parse_value(v),
                })
                .collect();
            let sc = scenario::overrides::apply(base, "s", "crash-no-hostid", &sets).unwrap();
            let r = scenario::farm::run(&sc, seed, None);
            RunLine::of(
                i,
                setting,
                &scenario::check::summarize(&sc, seed, &r, p.replay(setting, seed)),
            )
        })
        .collect()
}

#[test]
fn shards_merge_into_the_unsharded_sweep() {
    let whole = summarize(&plan(None), &lines(&plan(None)));
    let shards: Vec<_> = (1..=3)
        .map(|k| {
            let p = plan(Some((k, 3)));
            let dir = tempdir(&format!("shard-{k}"));
            let s = report::write_sweep(&dir, &p, &lines(&p)).unwrap();
            assert_eq!(s.runs, s.runs_planned);
            dir
        })
        .collect();
    let dirs: Vec<std::path::PathBuf> = shards.iter().map(|d| d.to_path_buf()).collect();
    let out = tempdir("merged");
    let merged = report::files::merge_sweeps(&dirs, &out).unwrap();
    assert_eq!(merged, whole, "shard + merge = one unsharded sweep");
    assert_eq!(merged.runs, 12);
    // Dedupe leaves deliveries alone and removes duplicate effects.
    let (plain, dedupe) = (&merged.settings[0], &merged.settings[1]);
    assert!(plain.duplicate_deliveries > 0 && dedupe.duplicate_deliveries > 0);
    assert!(plain.duplicate_effects > 0);
    assert_eq!(dedupe.duplicate_effects, 0);
    assert_eq!(merged.ranking[0], 1, "dedupe ranks safest");
    // The merged directory's reports are written and match the summary.
    // 60 uploads each: 0 and 6 duplicate effects are within each other's 95% intervals, so
    // the two tie, the cheaper (dedupe: fewer bytes re-sent) first.
    let rows = &merged.matrices[0].rows;
    assert_eq!(
        rows.iter()
            .map(|r| (r.setting, r.rank, r.tied))
            .collect::<Vec<_>>(),
        vec![(1, 1, true), (0, 1, true)]
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| =1 | backend.dedupe=true, clients.transaction_id=true |"),
        "{md}"
    );
    assert!(
        md.contains("`backend.dedupe` never changes alone here"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    crate::html_check::check(&html).unwrap();
    crate::html_check::self_contained(&html).unwrap();
}

#[test]
fn merging_refuses_mixed_sweeps_and_double_runs() {
    let p1 = plan(Some((1, 2)));
    let l1 = lines(&p1);
    let mut other = plan(Some((2, 2)));
    other.seeds = 7;
    assert!(matches!(
        merge(vec![
            ("a".into(), p1.clone(), l1.clone()),
            ("b".into(), other, vec![])
        ]),
        Err(report::sweep::MergeError::DifferentPlan(_))
    ));
    assert!(matches!(
        merge(vec![
            ("a".into(), p1.clone(), l1.clone()),
            ("a again".into(), p1, l1)
        ]),
        Err(report::sweep::MergeError::Duplicate { .. })
    ));
}
