//! `report.html`: one self-contained file (inline CSS and SVG, no scripts, no external URLs)
//! that opens offline.

use std::fmt::Write as _;

use scenario::{summary::Summary, text::secs};

use crate::{
    escape,
    svg::{self, Bar},
    sweep::SweepSummary,
    timeline::Timeline,
};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.num{text-align:right}.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}\
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:120px}\
.card b{display:block;font-size:20px}.dup{border-color:#d62728}.chain{border-left:4px solid #d62728;padding:2px 12px;margin:10px 0;background:#fff5f5}\
code,pre{font-family:ui-monospace,monospace;font-size:12px}pre{background:#f6f8fa;padding:8px;overflow:auto}\
.timeline text.tick,.timeline text.brk{font-size:10px;fill:#555}.timeline text.lane{font-size:11px;fill:#333}\
.timeline text.hl{fill:#d62728;font-weight:bold}.timeline text.fault{font-size:10px;fill:#d62728}\
.legend span{display:inline-block;margin-right:14px;font-size:12px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}\
.chart text{font-size:11px}.chart .ctitle{font-size:13px;font-weight:bold}\
.timeline text.axis{font-size:11px;fill:#555}.timeline text.small{font-size:8px}\
.verdict{font-size:16px;padding:8px 12px;border-radius:6px;border:1px solid}\
.verdict.pass{background:#eaf7ee;border-color:#1a7f37}.verdict.fail{background:#ffebe9;border-color:#cf222e}\
.verdict.expected{color:#7a4b00;background:#fff8e1;border-color:#d4a72c}.verdict.warn{color:#953800;background:#fff1e5;border-color:#fb8f44}\
.advice li{margin:6px 0}.zoom{margin:6px 0 14px}";

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
}

/// Escapes `text`, turning its `backticked` spans into `<code>`.
fn inline_code(text: &str) -> String {
    escape(text)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

fn card(o: &mut String, label: &str, value: &str, dup: bool) {
    let _ = write!(
        o,
        r#"<div class="card{}"><b>{}</b>{}</div>"#,
        if dup { " dup" } else { "" },
        escape(value),
        escape(label)
    );
}

/// The "How often" table: rates with their intervals, then the duplicates by cause.
fn rates(o: &mut String, r: &scenario::rates::Rates) {
    let _ = write!(
        o,
        "<h2>How often</h2><p>Over {} uploads{} ({}).</p><table><tr><th>rate</th><th>value [95% interval]</th></tr>",
        r.uploads,
        if r.runs > 1 {
            format!(" in {} runs", r.runs)
        } else {
            String::new()
        },
        escape(&r.method)
    );
    for (k, v) in r.rows() {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
            escape(&k),
            escape(&v)
        );
    }
    o.push_str("</table>");
    if !r.causes.is_empty() {
        o.push_str("<h3>Duplicates by cause</h3><table><tr><th>cause</th><th>share</th><th>per million uploads [95%]</th><th>duplicates (with effect)</th><th>what happened</th></tr>");
        for c in &r.causes {
            let _ = write!(
                o,
                r#"<tr><td><code>{}</code></td><td class="num">{:.1}%</td><td class="num">{}</td><td class="num">{} ({})</td><td>{}</td></tr>"#,
                escape(&c.cause),
                c.share * 100.0,
                escape(&c.per_million.show(1)),
                c.count,
                c.effects,
                escape(&c.words)
            );
        }
        o.push_str("</table>");
    }
}

/// The HTML report of one run.
pub fn run(s: &Summary, t: &Timeline) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<h1>bitsfarm run: {} (seed {})</h1>",
        escape(&s.scenario),
        s.seed
    );
    if !s.resolved.description.is_empty() {
        let _ = write!(o, "<p>{}</p>", escape(&s.resolved.description));
    }
    let verdict = scenario::advice::verdict(s);
    let _ = write!(
        o,
        r#"<p class="verdict {}">{}</p><p>Replay: <code>{}</code></p>"#,
        verdict.class,
        inline_code(&verdict.text),
        escape(&s.replay)
    );
    let advice = scenario::advice::what_to_change(s);
    if !advice.is_empty() {
        o += r#"<h2 id="what-to-change">What to change</h2><ul class="advice">"#;
        for a in &advice {
            let _ = write!(
                o,
                "<li>{} <i>(duplicates: {})</i><br/>Measure it: <code>{}</code></li>",
                inline_code(&a.text),
                escape(&a.about),
                escape(&a.sweep)
            );
        }
        o += "</ul>";
    }
    rates(&mut o, &s.rates);
    if let Some(note) = scenario::summary::outside_note(s.outside_files) {
        let _ = write!(o, "<p>{}.</p>", escape(&note));
    }
    o += r#"<div class="cards">"#;
    card(&mut o, "files", &s.metrics.files.to_string(), false);
    card(
        &mut o,
        "acknowledged",
        &s.metrics.acknowledged.to_string(),
        false,
    );
    card(
        &mut o,
        "deliveries",
        &s.metrics.deliveries.to_string(),
        false,
    );
    card(
        &mut o,
        "duplicate deliveries",
        &s.metrics.duplicate_deliveries.to_string(),
        s.metrics.duplicate_deliveries > 0,
    );
    card(
        &mut o,
        "duplicate effects",
        &s.metrics.duplicate_effects.to_string(),
        s.metrics.duplicate_effects > 0,
    );
    card(
        &mut o,
        "lost",
        &s.metrics.lost.to_string(),
        s.metrics.lost > 0,
    );
    card(
        &mut o,
        "restarts from byte 0",
        &s.metrics.restarts.to_string(),
        false,
    );
    card(
        &mut o,
        "Host-Id fallbacks",
        &s.metrics.host_fallbacks.to_string(),
        false,
    );
    card(
        &mut o,
        "bytes re-sent",
        &scenario::text::bytes(s.metrics.bytes_resent),
        false,
    );
    card(
        &mut o,
        "virtual time",
        &scenario::text::duration(s.metrics.virtual_time_s),
        false,
    );
    o += "</div>";

    o += "<h2>Timeline</h2><p>A lane per balancer (<code>farm</code>), node, the application (<code>backend</code>) and client. Hover over a mark for what it is; red client names are the clients in trouble. Each duplicate's chain has a timeline of its own below.</p>";
    o += &svg::legend(s.resolved.farm.nodes as usize);
    o += &svg::timeline(t);
    if t.hidden_clients > 0 {
        let _ = write!(
            o,
            "<p>{} client lanes without trouble are not drawn.</p>",
            t.hidden_clients
        );
    }

    o += "<h2>Files delivered more than once</h2>";
    if s.duplicates.is_empty() {
        o += "<p>None.</p>";
    } else {
        o += "<table><tr><th>file</th><th>deliveries</th><th>effects</th><th>nodes</th><th>restarts</th><th>bytes re-sent</th></tr>";
        for (i, d) in s.duplicates.iter().enumerate() {
            let _ = write!(
                o,
                r##"<tr><td><a href="#dup{i}"><code>{}</code></a></td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"##,
                escape(&d.file),
                d.deliveries,
                d.effects,
                escape(&d.nodes.join(" → ")),
                d.restarts,
                scenario::text::bytes(d.bytes_resent)
            );
        }
        o.push_str("</table>");
        for (i, d) in s.duplicates.iter().enumerate() {
            for c in &d.chains {
                let _ = write!(
                    o,
                    r#"<div class="chain" id="dup{i}"><p><b>{}</b>, delivery {}: {}</p><ol>"#,
                    escape(&d.file),
                    c.delivery,
                    escape(
                        c.cause
                            .as_deref()
                            .unwrap_or("UNEXPLAINED: no injected fault in the chain")
                    )
                );
                for st in &c.steps {
                    let _ = write!(
                        o,
                        "<li><code>{}</code> {}</li>",
                        escape(&secs(st.t_ms)),
                        escape(&st.text)
                    );
                }
                o += "</ol>";
                if let Some(z) = t
                    .zooms
                    .iter()
                    .find(|z| z.duplicate == i && z.delivery == c.delivery)
                {
                    o += r#"<div class="zoom">"#;
                    o += &svg::timeline(&z.timeline);
                    o += "</div>";
                }
                o += "</div>";
            }
        }
    }

    // Deliveries per node, first deliveries and duplicates apart.
    let mut per_node: std::collections::BTreeMap<&str, (f64, f64)> =
        std::collections::BTreeMap::new();
    for d in &s.duplicates {
        for n in &d.nodes {
            per_node.entry(n).or_default();
        }
    }
    if !s.duplicates.is_empty() {
        let rows: Vec<Bar> = s
            .duplicates
            .iter()
            .map(|d| Bar {
                label: d.file.clone(),
                value: d.deliveries as f64,
                interval: None,
                colour: "#d62728".into(),
            })
            .take(40)
            .collect();
        o += &svg::bars("deliveries of each duplicated file", "deliveries", &rows);
    }

    o += "<h2>Expectations</h2>";
    if !s.unchecked_expectations.is_empty() {
        let _ = write!(
            o,
            "<p>Not checked: <code>{}</code>. They were written for the scenario's shipped settings, which this run changed with <code>--set</code> (<code>--expect</code> checks them).</p>",
            escape(&s.unchecked_expectations.join(", "))
        );
    }
    o += "<table><tr><th>expectation</th><th>actual</th><th>held</th></tr>";
    for e in &s.expectations {
        let actual = if e.detail.is_empty() {
            e.actual.to_string()
        } else {
            e.detail.clone()
        };
        let _ = write!(
            o,
            r#"<tr><td><code>{} {}</code></td><td>{}</td><td class="{}">{}</td></tr>"#,
            escape(&e.name),
            escape(&e.expected),
            escape(&actual),
            if e.held { "pass" } else { "fail" },
            if e.held { "yes" } else { "NO" }
        );
    }
    o +=
        "</table><h2>Invariants</h2><table><tr><th>invariant</th><th>held</th><th>detail</th></tr>";
    for i in &s.invariants {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td class="{}">{}</td><td>{}</td></tr>"#,
            escape(&i.name),
            if i.held { "pass" } else { "fail" },
            if i.held { "yes" } else { "NO" },
            escape(&i.detail)
        );
    }
    o += "</table><h2>Faults</h2>";
    if s.faults.is_empty() {
        o += "<p>None.</p>";
    } else {
        o += "<table><tr><th>rule</th><th>matching hits</th><th>fired</th></tr>";
        for f in &s.faults {
            let _ = write!(
                o,
                r#"<tr><td>#{} {}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                f.index,
                escape(&f.description),
                f.hits,
                f.fired
            );
        }
        o.push_str("</table>");
    }
    if !s.failed_jobs.is_empty() {
        o += "<h2>Failed jobs</h2><ul>";
        for f in &s.failed_jobs {
            let _ = write!(
                o,
                "<li><code>{}</code>: {}</li>",
                escape(&f.file),
                escape(&f.error)
            );
        }
        o += "</ul>";
    }
    let _ = write!(
        o,
        "<p>Events: {}, log hash <code>{}</code>.</p>",
        s.events,
        escape(&s.event_log_hash)
    );
    let _ = write!(
        o,
        "<details><summary>Scenario as run (every default filled in)</summary><pre>{}</pre></details>",
        escape(&toml::to_string(&s.resolved).unwrap_or_default())
    );
    page(&format!("bitsfarm: {} seed {}", s.scenario, s.seed), &o)
}

/// The HTML report of a sweep.
pub fn sweep(s: &SweepSummary) -> String {
    let p = &s.plan;
    let mut o = String::new();
    let _ = write!(o, "<h1>bitsfarm sweep: {}</h1>", escape(&p.scenario));
    let _ = write!(
        o,
        "<p>{} settings × {} seeds ({}..={}) = {} runs{}; {} summarised. Varied: {}.{}</p>",
        p.settings.len(),
        p.seeds,
        p.first_seed,
        p.first_seed + p.seeds - 1,
        p.items(),
        p.shard
            .map(|(k, m)| format!(", shard {k} of {m}"))
            .unwrap_or_default(),
        s.runs,
        escape(&p.varied.join(", ")),
        if p.fixed.is_empty() {
            String::new()
        } else {
            format!(" Fixed: {}.", escape(&p.fixed.join(", ")))
        }
    );
    let _ = write!(
        o,
        r#"<p class="{}">{}</p>"#,
        if s.invariants_held { "pass" } else { "fail" },
        if s.invariants_held {
            "Invariants held in every run."
        } else {
            "Invariants FAILED in some runs."
        }
    );
    o += "<h2>What to change</h2><ul>";
    for line in &s.conclusion {
        let _ = write!(o, "<li>{}</li>", inline_code(line));
    }
    o += "</ul>";
    let keys = |ks: &[String]| {
        if ks.is_empty() {
            "none".to_owned()
        } else {
            escape(&ks.join(", "))
        }
    };
    let _ = write!(
        o,
        "<p>Settings varied (what an operator controls): {}. Conditions varied (what the farm meets): {}. Rates per million uploads with 95% intervals; colour: green is safest within this sweep, red least safe.</p>",
        keys(&s.setting_keys),
        keys(&s.condition_keys)
    );
    let max_of = |f: &dyn Fn(&crate::sweep::SettingSummary) -> f64| {
        s.settings.iter().map(f).fold(0.0f64, f64::max).max(1e-9)
    };
    let max_eff = max_of(&|x| x.rates.duplicate_effects_per_million.value);
    let max_del = max_of(&|x| x.rates.duplicate_deliveries_per_million.value);
    let cell = |r: &scenario::rates::Interval, max: f64| {
        format!(
            r#"<td class="num" style="background:{}">{:.1}<br/><small>[{:.1}, {:.1}]</small></td>"#,
            svg::heat(r.value / max),
            r.value,
            r.low,
            r.high
        )
    };
    for m in &s.matrices {
        let _ = write!(
            o,
            "<h2>Safety matrix{} (safest first)</h2><table><tr><th>rank</th><th>setting</th><th>duplicate effects /M</th><th>duplicate deliveries /M</th><th>lost /M</th><th>restarts /M</th><th>re-sent bytes /upload</th><th>upload time p50 / p99</th><th>runs</th></tr>",
            if m.condition == "(as written)" {
                String::new()
            } else {
                format!(": {}", escape(&m.condition))
            }
        );
        for r in &m.rows {
            let st = &s.settings[r.setting];
            let t = &st.rates.upload_time_s;
            let _ = write!(
                o,
                "<tr><td class=\"num\">{}{}</td><td>{}</td>{}{}<td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td>{} / {}</td><td class=\"num\">{}</td></tr>",
                if r.tied { "=" } else { "" },
                r.rank,
                escape(&crate::markdown::setting_label(s, r.setting)),
                cell(&st.rates.duplicate_effects_per_million, max_eff),
                cell(&st.rates.duplicate_deliveries_per_million, max_del),
                st.rates.lost_per_million.value,
                st.rates.restarts_per_million,
                scenario::text::bytes(st.bytes_resent_per_upload.round() as u64),
                scenario::text::duration(t.p50),
                scenario::text::duration(t.p99),
                st.runs
            );
        }
        o.push_str("</table>");
        if m.rows.iter().any(|r| r.tied) {
            o += "<p><code>=</code>: tied, their intervals overlap; ordered within the tie by cost (bytes re-sent per upload, then p99 upload time).</p>";
        }
        for &i in &m.flagged {
            let _ = write!(
                o,
                "<p class=\"fail\">Left out of the ranking: {}: {}.</p>",
                escape(&crate::markdown::setting_label(s, i)),
                escape(s.settings[i].flagged.as_deref().unwrap_or_default())
            );
        }
    }
    // Chart rows are labelled by their values only; the keys are named once above the charts.
    let short = |i: usize| -> String {
        let vals: Vec<&str> = p.settings[i]
            .values
            .iter()
            .map(|(_, v)| v.as_str())
            .collect();
        if vals.is_empty() {
            "(as written)".into()
        } else {
            vals.join(" · ")
        }
    };
    let chart = |f: &dyn Fn(&crate::sweep::SettingSummary) -> scenario::rates::Interval,
                 max: f64|
     -> Vec<Bar> {
        s.ranking
            .iter()
            .map(|&i| {
                let r = f(&s.settings[i]);
                Bar {
                    label: short(i),
                    value: r.value,
                    interval: Some((r.low, r.high)),
                    colour: svg::heat(r.value / max),
                }
            })
            .collect()
    };
    let _ = write!(
        o,
        "<h2>Charts</h2><p>Rows are the ranked settings, matrix by matrix, labelled <code>{}</code>.</p>",
        escape(&p.varied.join(" · "))
    );
    o += &svg::bars(
        "duplicate effects per million uploads (95% interval)",
        "per million",
        &chart(&|st| st.rates.duplicate_effects_per_million, max_eff),
    );
    o += &svg::bars(
        "duplicate deliveries per million uploads (95% interval)",
        "per million",
        &chart(&|st| st.rates.duplicate_deliveries_per_million, max_del),
    );
    let broken: Vec<&String> = s.settings.iter().flat_map(|st| &st.broken_runs).collect();
    if !broken.is_empty() {
        o += "<h2>Runs whose invariants failed</h2><ul>";
        for b in broken {
            let _ = write!(o, "<li><code>{}</code></li>", escape(b));
        }
        o += "</ul>";
    }
    let _ = write!(
        o,
        "<p>Replay any run: <code>bitsfarm scenario {} --seed N --set KEY=VALUE ...</code></p>",
        escape(&p.scenario_arg)
    );
    page(&format!("bitsfarm sweep: {}", p.scenario), &o)
}
