//! The run report of a fixed small run: structure, numbers from the run, a chain per duplicate,
//! well-formed self-contained HTML.

use std::io::Write as _;

use crate::{html_check, tempdir};

fn run_into(dir: &std::path::Path, name: &str, seed: u64) -> (scenario::summary::Summary, u64) {
    let text = scenario::catalog::get(name).unwrap();
    let sc = scenario::load_str(text, name, name).unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("events.jsonl")).unwrap());
    let sink: scenario::log::Sink = Box::new(move |rec| {
        serde_json::to_writer(&mut w, rec).unwrap();
        w.write_all(b"\n").unwrap();
    });
    let r = scenario::farm::run(&sc, seed, Some(sink));
    let summary = scenario::check::summarize(
        &sc,
        seed,
        &r,
        format!("bitsfarm scenario {name} --seed {seed}"),
    );
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(&summary).unwrap(),
    )
    .unwrap();
    (summary, r.ledger_deliveries)
}

#[test]
fn a_run_report_tells_the_run() {
    let dir = tempdir("run");
    let (summary, ledger_deliveries) = run_into(&dir, "transaction-id-dedup", 3);
    let back = report::write_run_reports(&dir).unwrap();
    assert_eq!(back, summary, "the report is made from the saved summary");
    assert_eq!(
        summary.metrics.deliveries, ledger_deliveries,
        "the application's ledger and the report agree"
    );
    assert!(summary.metrics.duplicate_deliveries >= 1);

    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for section in [
        "## Totals",
        "## Expectations",
        "## Invariants",
        "## Faults",
        "## Files delivered more than once",
        "## Scenario as run",
    ] {
        assert!(md.contains(section), "missing {section}");
    }
    assert!(md.contains(&format!(
        "| deliveries to the application | {} |",
        summary.metrics.deliveries
    )));
    assert!(md.contains(&format!(
        "| duplicate effects | {} |",
        summary.metrics.duplicate_effects
    )));
    assert!(md.contains(&summary.replay));
    // The resolved scenario is valid TOML that loads back to the same scenario.
    let toml_block = md
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    assert_eq!(
        scenario::load_str(toml_block, "r", "r").unwrap(),
        summary.resolved
    );

    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    html_check::check(&html).unwrap();
    html_check::self_contained(&html).unwrap();
    for d in &summary.duplicates {
        assert!(
            md.contains(&format!("| `{}` | {} |", d.file, d.deliveries)),
            "{} missing from the table",
            d.file
        );
        assert_eq!(
            d.chains.len() as u64,
            d.deliveries - 1,
            "a chain per extra delivery"
        );
        for c in &d.chains {
            assert!(c.cause.is_some(), "every duplicate has an injected cause");
            assert!(md.contains(&format!("Cause: {}", c.cause.as_ref().unwrap())));
            assert!(c.steps.len() >= 3);
            for st in &c.steps {
                assert!(
                    html.contains(&report::escape(&st.text)),
                    "chain step missing from the HTML: {}",
                    st.text
                );
            }
        }
    }
    assert_eq!(
        html.matches(r#"<div class="chain""#).count() as u64,
        summary.metrics.duplicate_deliveries
    );
    assert!(html.contains(r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline""#));
    for lane in ["farm", "node-1", "node-3", "backend", "c00"] {
        assert!(html.contains(&format!(">{lane}</text>")), "no {lane} lane");
    }
}

#[test]
fn regenerating_gives_the_same_reports() {
    let dir = tempdir("regen");
    run_into(&dir, "crash-after-forward", 1);
    report::write_run_reports(&dir).unwrap();
    let (md, html) = (
        std::fs::read(dir.join("report.md")).unwrap(),
        std::fs::read(dir.join("report.html")).unwrap(),
    );
    std::fs::remove_file(dir.join("report.md")).unwrap();
    report::write_run_reports(&dir).unwrap();
    assert_eq!(std::fs::read(dir.join("report.md")).unwrap(), md);
    assert_eq!(std::fs::read(dir.join("report.html")).unwrap(), html);
}

#[test]
fn a_damaged_event_log_is_a_located_error() {
    let dir = tempdir("damaged");
    run_into(&dir, "happy-path", 1);
    let mut events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    events.push_str("{\"v\":1,\"seq\":\n");
    std::fs::write(dir.join("events.jsonl"), &events).unwrap();
    let err = report::write_run_reports(&dir).unwrap_err().to_string();
    let line = events.lines().count();
    assert!(err.contains(&format!("events.jsonl:{line}:")), "{err}");
    assert!(report::files::kind(&tempdir("empty")).is_err());
}
