//! `report.md`: the run or sweep report as Markdown. Deterministic: the same summary gives the
//! same bytes (no wall times, no dates), so reports diff cleanly and golden samples stay true.

use std::fmt::Write as _;

use scenario::{
    summary::{Aggregate, Summary},
    text::{ordinal, secs},
};

use crate::sweep::{Rate, SweepSummary};

/// A time as `1d 0h 0m 1s`, `12.3 s`.
pub fn short_time(ms: u64) -> String {
    let s = ms / 1000;
    if s < 120 {
        return secs(ms);
    }
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    if d > 0 {
        let _ = write!(out, "{d}d ");
    }
    if d > 0 || h > 0 {
        let _ = write!(out, "{h}h ");
    }
    let _ = write!(out, "{m}m {sec}s");
    out
}

/// The Markdown report of one run.
pub fn run(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# bitsfarm run: {}, seed {}\n", s.scenario, s.seed);
    if !s.resolved.description.is_empty() {
        let _ = writeln!(o, "{}\n", s.resolved.description);
    }
    let _ = writeln!(
        o,
        "**Result: {}** — replay with `{}`\n",
        if s.ok { "PASS" } else { "FAIL" },
        s.replay
    );
    o += &rates(&s.rates);
    o += "## Totals\n\n";
    if let Some(note) = scenario::summary::outside_note(s.outside_files) {
        o += &format!("{note}.\n\n");
    }
    o += "| metric | value |\n|---|---:|\n";
    for (k, v) in [
        ("files (uploads)", s.metrics.files.to_string()),
        (
            "acknowledged to their client",
            s.metrics.acknowledged.to_string(),
        ),
        ("failed jobs", s.metrics.failed.to_string()),
        (
            "deliveries to the application",
            s.metrics.deliveries.to_string(),
        ),
        (
            "duplicate deliveries",
            s.metrics.duplicate_deliveries.to_string(),
        ),
        (
            "files delivered more than once",
            s.metrics.files_duplicated.to_string(),
        ),
        ("effects", s.metrics.effects.to_string()),
        ("duplicate effects", s.metrics.duplicate_effects.to_string()),
        (
            "lost (acknowledged, never delivered)",
            s.metrics.lost.to_string(),
        ),
        ("corrupted deliveries", s.metrics.corrupted.to_string()),
        ("restarts from byte 0", s.metrics.restarts.to_string()),
        ("Host-Id fallbacks", s.metrics.host_fallbacks.to_string()),
        ("bytes re-sent", s.metrics.bytes_resent.to_string()),
        (
            "upload time p50 / p99",
            format!(
                "< {} s / < {} s",
                s.durations.quantile(0.5),
                s.durations.quantile(0.99)
            ),
        ),
        (
            "virtual time",
            format!(
                "{} ({})",
                secs((s.metrics.virtual_time_s * 1000.0).round() as u64),
                short_time((s.metrics.virtual_time_s * 1000.0) as u64)
            ),
        ),
        (
            "events (log hash)",
            format!("{} (`{}`)", s.events, s.event_log_hash),
        ),
    ] {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    o += "\n## Expectations\n\n";
    if s.expectations.is_empty() {
        o += "(none)\n";
    } else {
        o += "| expectation | actual | held |\n|---|---|---|\n";
        for e in &s.expectations {
            let actual = if e.detail.is_empty() {
                e.actual.to_string()
            } else {
                e.detail.clone()
            };
            let _ = writeln!(
                o,
                "| `{} {}` | {} | {} |",
                e.name,
                e.expected,
                actual,
                if e.held { "yes" } else { "**NO**" }
            );
        }
    }
    o += "\n## Invariants\n\n| invariant | held | detail |\n|---|---|---|\n";
    for i in &s.invariants {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            i.name,
            if i.held { "yes" } else { "**NO**" },
            i.detail
        );
    }
    o += "\n## Faults\n\n";
    if s.faults.is_empty() {
        o += "(none)\n";
    } else {
        o += "| rule | matching hits | fired |\n|---|---:|---:|\n";
        for f in &s.faults {
            let _ = writeln!(
                o,
                "| #{} {}{} | {} | {} |",
                f.index,
                f.description,
                if f.optional { " (optional)" } else { "" },
                f.hits,
                f.fired
            );
        }
    }
    o += "\n## Files delivered more than once\n\n";
    if s.duplicates.is_empty() {
        o += "None.\n";
    } else {
        o += "| file | deliveries | effects | nodes | restarts | bytes re-sent |\n|---|---:|---:|---|---:|---:|\n";
        for d in &s.duplicates {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} | {} |",
                d.file,
                d.deliveries,
                d.effects,
                d.nodes.join(" → "),
                d.restarts,
                d.bytes_resent
            );
        }
        if s.metrics.files_duplicated > s.duplicates.len() as u64 {
            let _ = writeln!(
                o,
                "\n({} more duplicated files are counted but not detailed.)",
                s.metrics.files_duplicated - s.duplicates.len() as u64
            );
        }
        for d in &s.duplicates {
            for c in &d.chains {
                let _ = writeln!(
                    o,
                    "\n### `{}`: the {} delivery\n",
                    d.file,
                    ordinal(c.delivery)
                );
                let _ = writeln!(
                    o,
                    "Cause: {}\n",
                    c.cause
                        .as_deref()
                        .unwrap_or("**unexplained**: no injected fault in the chain")
                );
                for (i, st) in c.steps.iter().enumerate() {
                    let _ = writeln!(o, "{}. {}", i + 1, st.text);
                }
            }
        }
    }
    if !s.failed_jobs.is_empty() {
        o += "\n## Failed jobs\n\n";
        for f in &s.failed_jobs {
            let _ = writeln!(o, "- `{}`: {}", f.file, f.error);
        }
    }
    o += "\n## Scenario as run (every default filled in)\n\n```toml\n";
    o += &toml::to_string(&s.resolved).unwrap_or_default();
    o += "```\n";
    o
}

/// The "How often" section: the rates with their intervals and the duplicates by cause.
pub fn rates(r: &scenario::rates::Rates) -> String {
    let mut o = format!(
        "## How often\n\nOver {} uploads{} ({}).\n\n| rate | value [95% interval] |\n|---|---:|\n",
        r.uploads,
        if r.runs > 1 {
            format!(" in {} runs", r.runs)
        } else {
            String::new()
        },
        r.method
    );
    for (k, v) in r.rows() {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    if !r.causes.is_empty() {
        o += "\n### Duplicates by cause\n\n| cause | share | per million uploads [95%] | duplicates (with effect) | what happened |\n|---|---:|---:|---:|---|\n";
        for c in &r.causes {
            let _ = writeln!(
                o,
                "| `{}` | {:.1}% | {} | {} ({}) | {} |",
                c.cause,
                c.share * 100.0,
                c.per_million.show(1),
                c.count,
                c.effects,
                c.words
            );
        }
    }
    o.push('\n');
    o
}

/// The Markdown report of several runs of one scenario (`--runs`).
pub fn aggregate(a: &Aggregate) -> String {
    format!(
        "# bitsfarm runs: {}\n\n{}```text\n{}```\n",
        a.scenario,
        rates(&a.rates),
        a.to_text()
    )
}

fn rate(r: &Rate) -> String {
    if r.low == r.high {
        format!("{:.1}", r.per_1000)
    } else {
        format!("{:.1} [{:.1}, {:.1}]", r.per_1000, r.low, r.high)
    }
}

/// The Markdown report of a sweep.
pub fn sweep(s: &SweepSummary) -> String {
    let p = &s.plan;
    let mut o = String::new();
    let _ = writeln!(o, "# bitsfarm sweep: {}\n", p.scenario);
    let _ = writeln!(
        o,
        "{} settings × {} seeds ({}..={}) = {} runs{}; {} of them summarised here.\n",
        p.settings.len(),
        p.seeds,
        p.first_seed,
        p.first_seed + p.seeds - 1,
        p.items(),
        p.shard
            .map(|(k, m)| format!(", shard {k} of {m} ({} runs)", s.runs_planned))
            .unwrap_or_default(),
        s.runs
    );
    let _ = writeln!(
        o,
        "Varied: {}.",
        p.varied
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !p.fixed.is_empty() {
        let _ = writeln!(
            o,
            "Fixed: {}.",
            p.fixed
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        o,
        "\nInvariants (no lost file, no corrupted delivery, every duplicate explained): {}.\n",
        if s.invariants_held {
            "held in every run"
        } else {
            "**FAILED in some runs** (see below)"
        }
    );
    o += "## Safety matrix (safest first)\n\n";
    o += "Rates are per 1,000 uploads with 95% intervals. A duplicate *delivery* reaches the application twice; a duplicate *effect* is one the application applied twice (transaction-id dedupe turns deliveries into non-effects).\n\n";
    o += "| rank | setting | duplicate effects /1000 | duplicate deliveries /1000 | lost | restarts /1000 | re-sent bytes /upload | upload time p50 / p90 / p99 | runs |\n";
    o += "|---:|---|---:|---:|---:|---:|---:|---|---:|\n";
    for (rank, &i) in s.ranking.iter().enumerate() {
        let st = &s.settings[i];
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {:.0} | < {} s / < {} s / < {} s | {} |",
            rank + 1,
            st.label,
            rate(&st.duplicate_effects_rate),
            rate(&st.duplicate_deliveries_rate),
            st.lost,
            rate(&st.restarts_rate),
            st.bytes_resent_per_upload,
            st.completion_s.p50,
            st.completion_s.p90,
            st.completion_s.p99,
            st.runs
        );
    }
    if let (Some(&best), Some(&worst)) = (s.ranking.first(), s.ranking.last()) {
        let _ = writeln!(
            o,
            "\nSafest: **{}**. Least safe: **{}**.",
            s.settings[best].label, s.settings[worst].label
        );
    }
    let broken: Vec<&String> = s.settings.iter().flat_map(|st| &st.broken_runs).collect();
    if !broken.is_empty() {
        o += "\n## Runs whose invariants failed\n\n";
        for b in broken {
            let _ = writeln!(o, "- `{b}`");
        }
    }
    o += "\n## Method\n\nEach setting runs the scenario with the given overrides over the same seeds. Rates pool all runs of a setting; the interval is the normal approximation over per-run rates (runs are independent, the files of one run are not). Upload times are the upper bounds of power-of-two histogram buckets. Replay any run with `bitsfarm scenario ";
    let _ = writeln!(o, "{} --seed N --set KEY=VALUE ...`.", p.scenario_arg);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_well() {
        assert_eq!(short_time(12_300), "12.3 s");
        assert_eq!(short_time(86_401_000), "1d 0h 0m 1s");
        assert_eq!(short_time(3_600_000), "1h 0m 0s");
    }
}
