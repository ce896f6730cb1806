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
