//! `report.md`: the run or sweep report as Markdown. Deterministic: the same summary gives the
//! same bytes (no wall times, no dates), so reports diff cleanly and golden samples stay true.

use std::fmt::Write as _;

use scenario::{
    summary::{Aggregate, Summary},
    text::{bytes, duration, ordinal, secs},
};

use crate::sweep::SweepSummary;

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

/// "What to change": advice from the run's duplicates' causes and settings, each with the
/// sweep that measures it (empty when the run showed no problem to change).
pub fn what_to_change(s: &Summary) -> String {
    let advice = scenario::advice::what_to_change(s);
    if advice.is_empty() {
        return String::new();
    }
    let mut o = String::from(
        "## What to change

",
    );
    for a in &advice {
        let _ = writeln!(
            o,
            "- {} *(duplicates: {})*  \n  Measure it: `{}`",
            a.text, a.about, a.sweep
        );
    }
    o.push('\n');
    o
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
        "**{}** — replay with `{}`\n",
        scenario::advice::verdict(s).text,
        s.replay
    );
    o += &what_to_change(s);
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
        (
            "bytes re-sent",
            format!(
                "{} ({} bytes)",
                bytes(s.metrics.bytes_resent),
                s.metrics.bytes_resent
            ),
        ),
        (
            "upload time p50 / p99",
            format!(
                "{} / {}",
                duration(s.rates.upload_time_s.p50),
                duration(s.rates.upload_time_s.p99)
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
    if !s.unchecked_expectations.is_empty() {
        let _ = writeln!(
            o,
            "Not checked: {}. They were written for the scenario's shipped settings, which this run changed with `--set` (`--expect` checks them).",
            s.unchecked_expectations
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else if s.expectations.is_empty() {
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

/// A sweep for the terminal: a compact aligned table per condition (cargo-nextest and
/// hyperfine style) and what to change; the whole Markdown report goes to the file.
pub fn sweep_text(s: &SweepSummary) -> String {
    let p = &s.plan;
    let mut o = format!(
        "sweep {}: {} settings × {} seeds = {} runs{}\n",
        p.scenario,
        p.settings.len(),
        p.seeds,
        s.runs,
        p.shard
            .map(|(k, m)| format!(" (shard {k} of {m})"))
            .unwrap_or_default()
    );
    for m in &s.matrices {
        if m.condition != "(as written)" {
            let _ = writeln!(o, "\n{}", m.condition);
        } else {
            o.push('\n');
        }
        let header = [
            "rank",
            "setting",
            "dup effects /M [95%]",
            "dup deliveries /M [95%]",
            "re-sent/upload",
            "p99 upload",
        ]
        .map(str::to_owned);
        let rows: Vec<[String; 6]> = m
            .rows
            .iter()
            .map(|r| {
                let st = &s.settings[r.setting];
                [
                    format!("{}{}", if r.tied { "=" } else { "" }, r.rank),
                    setting_label(s, r.setting).replace('`', ""),
                    st.rates.duplicate_effects_per_million.show(1),
                    st.rates.duplicate_deliveries_per_million.show(1),
                    bytes(st.bytes_resent_per_upload.round() as u64),
                    duration(st.rates.upload_time_s.p99),
                ]
            })
            .collect();
        let mut width = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        for r in std::iter::once(&header).chain(&rows) {
            let mut line = String::from(" ");
            for (i, (c, w)) in r.iter().zip(width).enumerate() {
                if i == 1 {
                    let _ = write!(line, " {c:<w$}");
                } else {
                    let _ = write!(line, " {c:>w$}");
                }
            }
            o += line.trim_end();
            o.push('\n');
        }
        for &i in &m.flagged {
            let _ = writeln!(
                o,
                "  left out: {}: {}",
                setting_label(s, i).replace('`', ""),
                s.settings[i].flagged.as_deref().unwrap_or_default()
            );
        }
    }
    o += "\nwhat to change\n";
    for line in &s.conclusion {
        let _ = writeln!(o, "  - {}", line.replace('`', ""));
    }
    let _ = writeln!(
        o,
        "\ninvariants: {}",
        if s.invariants_held {
            "held in every run"
        } else {
            "FAILED in some runs (their settings are left out; see the report)"
        }
    );
    o
}

/// The Markdown report of a sweep: what to change first, then a safety matrix per
/// condition, the causes, the runs left out.
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
    let keys = |ks: &[String]| {
        if ks.is_empty() {
            "none".to_owned()
        } else {
            ks.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        o,
        "Settings varied (what an operator controls): {}. Conditions varied (what the farm meets): {}.",
        keys(&s.setting_keys),
        keys(&s.condition_keys)
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
        "\nInvariants (no lost file, no corrupted delivery, every duplicate explained, every scripted fault fired): {}.\n",
        if s.invariants_held {
            "held in every run"
        } else {
            "**FAILED in some runs**: those settings are left out of the ranking (see below)"
        }
    );
    o += "## What to change\n\n";
    for line in &s.conclusion {
        let _ = writeln!(o, "- {line}");
    }
    o += "\nRates are per million uploads with 95% intervals. A duplicate *delivery* reaches the application twice; a duplicate *effect* is one the application applied twice (transaction-id dedupe turns deliveries into non-effects).\n";
    for m in &s.matrices {
        if m.condition == "(as written)" {
            o += "\n## Safety matrix (safest first)\n\n";
        } else {
            let _ = writeln!(o, "\n## Safety matrix: {} (safest first)\n", m.condition);
        }
        o += "| rank | setting | duplicate effects /M | duplicate deliveries /M | lost /M | restarts /M | re-sent bytes /upload | upload time p50 / p99 | runs |\n";
        o += "|---:|---|---:|---:|---:|---:|---:|---|---:|\n";
        for r in &m.rows {
            let st = &s.settings[r.setting];
            let t = &st.rates.upload_time_s;
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} | {} | {:.1} | {} | {} / {} | {} |",
                if r.tied { "=" } else { "" },
                r.rank,
                setting_label(s, r.setting),
                st.rates.duplicate_effects_per_million.show(1),
                st.rates.duplicate_deliveries_per_million.show(1),
                st.rates.lost_per_million.show(1),
                st.rates.restarts_per_million,
                scenario::text::bytes(st.bytes_resent_per_upload.round() as u64),
                scenario::text::duration(t.p50),
                scenario::text::duration(t.p99),
                st.runs
            );
        }
        if m.rows.iter().any(|r| r.tied) {
            o += "\n`=`: tied, their intervals overlap; ordered within the tie by cost (bytes re-sent per upload, then p99 upload time).\n";
        }
        for &i in &m.flagged {
            let _ = writeln!(
                o,
                "\nLeft out of the ranking: **{}**: {}.",
                setting_label(s, i),
                s.settings[i].flagged.as_deref().unwrap_or_default()
            );
        }
    }
    if s.settings.iter().any(|st| !st.rates.causes.is_empty()) {
        o += "\n## Duplicates by cause\n\n| setting | causes (share, per million) |\n|---|---|\n";
        for st in &s.settings {
            if st.rates.causes.is_empty() {
                continue;
            }
            let causes: Vec<String> = st
                .rates
                .causes
                .iter()
                .map(|c| {
                    format!(
                        "`{}` {:.0}% ({:.1})",
                        c.cause,
                        c.share * 100.0,
                        c.per_million.value
                    )
                })
                .collect();
            let _ = writeln!(o, "| {} | {} |", st.label, causes.join(", "));
        }
    }
    let broken: Vec<&String> = s.settings.iter().flat_map(|st| &st.broken_runs).collect();
    if !broken.is_empty() {
        o += "\n## Runs whose invariants failed\n\n";
        for b in broken {
            let _ = writeln!(o, "- `{b}`");
        }
    }
    o += "\n## Method\n\nEach setting runs the scenario with the given overrides over the same seeds. Rates pool all runs of a setting; the 95% interval is the wider of the pooled Wilson interval and a bootstrap over the runs (the files of one run are not independent). Within each condition, settings are ranked by duplicate effects, then duplicate deliveries; settings whose intervals of both overlap share a rank. A setting with a failed invariant in any run is left out of the ranking. The conclusion compares each value of a setting with its worst value over the settings that agree on every other varied key. Upload times are percentiles of an HDR histogram. Replay any run with `bitsfarm scenario ";
    let _ = writeln!(o, "{} --seed N --set KEY=VALUE ...`.", p.scenario_arg);
    o
}

/// A setting named by its setting keys' values (its conditions head its matrix).
pub fn setting_label(s: &SweepSummary, i: usize) -> String {
    let vals: Vec<String> = s.plan.settings[i]
        .values
        .iter()
        .filter(|(k, _)| s.setting_keys.contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if vals.is_empty() {
        "(as written)".into()
    } else {
        vals.join(", ")
    }
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
