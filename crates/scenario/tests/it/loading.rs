//! Bad scenario files give located errors, never panics.

use proptest::prelude::*;

fn mutate(text: &str, at: usize, insert: &str, cut: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + cut).min(chars.len());
    chars.splice(at..end, insert.chars());
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_shipped_scenarios_load_or_fail_cleanly(
        which in 0usize..scenario::catalog::SHIPPED.len(),
        at in any::<usize>(),
        insert in prop_oneof![
            Just(String::new()), Just("=".to_owned()), Just("\n[farm]\n".to_owned()),
            Just("nodes = -1\n".to_owned()), Just("\"".to_owned()), Just("[[fault]]\n".to_owned()),
            "[ -~\n]{0,12}",
        ],
        cut in 0usize..20,
    ) {
        let (name, text) = scenario::catalog::SHIPPED[which];
        let text = mutate(text, at, &insert, cut);
        match scenario::load_str(&text, "m.toml", name) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.file.as_str(), "m.toml");
                prop_assert!(!e.message.is_empty());
                if let Some(l) = e.line {
                    prop_assert!(l >= 1 && l <= text.lines().count().max(1) + 1, "line {} of {}", l, text.lines().count());
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\n]{0,300}") {
        let _ = scenario::load_str(&text, "x.toml", "x");
    }
}

#[test]
fn bad_workloads_and_failure_processes_name_the_key_and_what_is_wrong() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[workload]\nduration_days = 90\n",
            "workload.duration_days",
            "at most deadline_days",
        ),
        (
            "[workload]\nuploads_per_hour = 10000000\nduration_days = 30\n",
            "workload.uploads_per_hour",
            "at most 1,000,000",
        ),
        (
            "[workload]\ndaily_profile = [1, 2]\n",
            "workload.daily_profile",
            "needs 24 weights",
        ),
        (
            "[workload]\nfile_size = { dist = \"lognormal\", median = 1000 }\n",
            "workload.file_size",
            "needs median and p99",
        ),
        (
            "[workload]\nfile_size = { dist = \"uniform\", min = 10, max = 5 }\n",
            "workload.file_size",
            "max must be at least min",
        ),
        ("[[failure]]\nmtbf_h = 3\n", "failure[0]", "needs kind"),
        (
            "[[failure]]\nkind = \"node-crash\"\n",
            "failure[0]",
            "node-crash needs mtbf_h",
        ),
        (
            "[[failure]]\nkind = \"app-error\"\nprobability = 0.1\nmtbf_h = 4\n",
            "failure[0].mtbf_h",
            "does not go with kind = \"app-error\"",
        ),
        (
            "[[failure]]\nkind = \"partition\"\nmtbf_h = 10\nduration_s = 1e12\n",
            "failure[0].duration_s",
            "seconds, at most the deadline",
        ),
        (
            "[[failure]]\nkind = \"node-crash\"\nmtbf_h = 10\nnode = \"node-9\"\n",
            "failure[0].node",
            "no such node",
        ),
        (
            "[[failure]]\nkind = \"connection-reset\"\nper_request = 1.5\n",
            "failure[0].per_request",
            "must be in (0, 1]",
        ),
    ];
    for (text, key, says) in cases {
        let e = scenario::load_str(text, "t.toml", "t").expect_err(text);
        assert_eq!(e.key.as_deref(), Some(*key), "{text}: {e}");
        assert!(e.message.contains(says), "{text}: {e}");
        assert!(e.line.is_some(), "{text}: {e}");
    }
    // An unknown kind is a TOML error at its line.
    let e = scenario::load_str("\n[[failure]]\nkind = \"meteor\"\n", "t.toml", "t").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
}
