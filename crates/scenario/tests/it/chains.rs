//! The causal chains of every shipped scenario, in words, pinned as snapshots: a change to the
//! farm, the tracker or the chain renderer that changes what a user reads shows as a diff to
//! review (`cargo insta review`, or `INSTA_UPDATE=always` then `git diff`).

use scenario::{catalog::SHIPPED, summary::Summary};

use crate::{run, shipped};

/// Every duplicate's chains, one block per extra delivery.
fn chains_text(s: &Summary) -> String {
    let mut out = format!(
        "{}: seed {}, {} file(s) duplicated, {} duplicate deliveries\n",
        s.scenario, s.seed, s.metrics.files_duplicated, s.metrics.duplicate_deliveries
    );
    for d in &s.duplicates {
        out.push_str(&format!(
            "\n{} ({}): {} deliveries by {}\n",
            d.file,
            d.job,
            d.deliveries,
            d.nodes.join(", ")
        ));
        for c in &d.chains {
            out.push_str(&format!(
                "  delivery {}: cause {}\n",
                c.delivery,
                c.cause.as_deref().unwrap_or("(none: unexplained)")
            ));
            for step in &c.steps {
                out.push_str(&format!("    {:>12} ms  {}\n", step.t_ms, step.text));
            }
            out.push_str(&format!("  in one sentence: {}\n", c.sentence));
        }
    }
    out
}

#[test]
fn the_chains_of_every_shipped_scenario_read_as_pinned() {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for (name, _) in SHIPPED {
            let s = shipped(name);
            // A simulated week's chains are checked by cause in `rates.rs`.
            if s.workload.is_some() {
                continue;
            }
            let summary = run(&s, s.seed);
            insta::assert_snapshot!(format!("chains-{name}"), chains_text(&summary));
        }
    });
}
