//! The invariants every run is checked against, whatever the scenario expects.

use super::tally::Tally;
use crate::{
    farm::RunResult,
    spec::Scenario,
    summary::{FaultSummary, Invariant, InvariantResult, Summary},
};

/// The fault rules with their counters.
pub(super) fn fault_summaries(run: &RunResult) -> Vec<FaultSummary> {
    run.rules
        .iter()
        .map(|r| FaultSummary {
            index: r.index,
            description: r.description.clone(),
            hits: r.hits,
            fired: r.fired,
            optional: r.optional,
        })
        .collect()
}

/// Every invariant's result, in [`Invariant::ALL`] order; `unexplained` counts the duplicates
/// whose chain starts at no injected fault.
pub(super) fn check(
    scenario: &Scenario,
    run: &RunResult,
    s: &Summary,
    tally: &Tally,
) -> Vec<InvariantResult> {
    let unexplained = tally.unexplained;
    let unfired: Vec<String> = run
        .rules
        .iter()
        .filter(|r| r.fired == 0 && !r.optional)
        .map(|r| format!("#{} {}", r.index, r.description))
        .collect();
    let mut out = Vec::with_capacity(Invariant::ALL.len());
    let mut inv = |i: Invariant, held: bool, detail: String| {
        out.push(InvariantResult {
            name: i.name().into(),
            held,
            detail,
        })
    };
    inv(
        Invariant::Completed,
        run.completed,
        match (&run.harness_failure, run.completed) {
            (Some(why), _) => why.clone(),
            (None, true) => "every job ended".into(),
            (None, false) => format!(
                "jobs still running at the {}-day deadline",
                scenario.deadline_days
            ),
        },
    );
    inv(
        Invariant::NoPanics,
        run.panics.is_empty(),
        match run.panics.messages.first() {
            None => "nothing panicked".into(),
            Some(first) => format!("{} panic(s); first: {first}", run.panics.count),
        },
    );
    inv(
        Invariant::NoLostFiles,
        s.metrics.lost == 0,
        format!(
            "{} file(s) acknowledged to their client but never delivered",
            s.metrics.lost
        ),
    );
    inv(
        Invariant::Integrity,
        s.metrics.corrupted == 0,
        format!(
            "{} delivery(ies) whose bytes differ from the client's",
            s.metrics.corrupted
        ),
    );
    inv(
        Invariant::DedupeOneEffectPerTransaction,
        tally.txid_over.0 == 0,
        match &tally.txid_over.1 {
            Some((file, effects)) if tally.txid_over.0 > 1 => format!(
                "{file} had {effects} effects ({} files had more than one)",
                tally.txid_over.0
            ),
            Some((file, effects)) => format!("{file} had {effects} effects"),
            None => "at most one effect per transaction id".into(),
        },
    );
    inv(
        Invariant::AllFaultsFired,
        unfired.is_empty(),
        if unfired.is_empty() {
            "every rule fired".into()
        } else {
            format!("never fired: {}", unfired.join("; "))
        },
    );
    inv(
        Invariant::DuplicatesExplained,
        unexplained == 0,
        format!("{unexplained} duplicate(s) without an injected fault in their chain"),
    );

    out
}
