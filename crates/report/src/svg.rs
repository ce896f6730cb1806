//! Inline SVG: the run timeline and bar charts. No scripts, no external references; tooltips
//! are SVG `<title>` elements.

use std::fmt::Write as _;

use crate::{
    escape,
    timeline::{MarkKind, SpanKind, Timeline},
};

const LABEL: f64 = 96.0;
const TOP: f64 = 34.0;

/// Colour of node `i` (balancer marks, delivery bars).
pub fn node_colour(i: usize) -> &'static str {
    const P: [&str; 8] = [
        "#4e79a7", "#59a14f", "#9c755f", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#bab0ac",
    ];
    P[i % P.len()]
}

fn mark_style(kind: MarkKind) -> (&'static str, &'static str) {
    match kind {
        MarkKind::Routed(i) => (node_colour(i), "dot"),
        MarkKind::Session => ("#8da0cb", "tick"),
        MarkKind::Forward => ("#1f77b4", "dot"),
        MarkKind::NotFound => ("#9467bd", "x"),
        MarkKind::Replay => ("#17becf", "dot"),
        MarkKind::Delivery(false) => ("#2ca02c", "dot"),
        MarkKind::Delivery(true) => ("#d62728", "big"),
        MarkKind::Done => ("#2ca02c", "tick"),
        MarkKind::Failed => ("#d62728", "x"),
        MarkKind::Restart => ("#9467bd", "tri"),
        MarkKind::Fallback => ("#ff7f0e", "diamond"),
        MarkKind::Fault => ("#d62728", "dot"),
    }
}

/// The timeline as an SVG element.
pub fn timeline(t: &Timeline) -> String {
    let infra = t
        .lanes
        .iter()
        .filter(|l| l.name == "farm" || l.name == "backend" || l.name.starts_with("node-"))
        .count();
    let client_h = if t.lanes.len() - infra > 60 {
        9.0
    } else {
        16.0
    };
    let heights: Vec<f64> = t
        .lanes
        .iter()
        .enumerate()
        .map(|(i, _)| if i < infra { 22.0 } else { client_h })
        .collect();
    let height = TOP + heights.iter().sum::<f64>() + 8.0;
    let width = LABEL + t.axis.width + 48.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="timeline">"#
    );
    // Axis: busy stretches shaded, ticks spread over them, breaks marked.
    for (i, &(t0, _, x0, x1)) in t.axis.segments.iter().enumerate() {
        let (a, b) = (LABEL + x0, LABEL + x1);
        let _ = write!(
            s,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f7f7f7"/>"##,
            TOP - 4.0,
            (b - a).max(1.0),
            height - TOP
        );
        if i > 0 {
            let prev = t.axis.segments[i - 1];
            let mid = LABEL + (prev.3 + x0) / 2.0;
            let _ = write!(
                s,
                r#"<text x="{mid:.1}" y="24" class="brk" text-anchor="middle">⋯<title>{} idle</title></text>"#,
                escape(&crate::markdown::short_time(t0 - prev.1))
            );
        }
    }
    for (k, (x, tt)) in t.axis.ticks(110.0).iter().enumerate() {
        let x = LABEL + x;
        let y = if k % 2 == 0 { 12.0 } else { 24.0 };
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#ccc"/><text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{}</text>"##,
            y + 2.0,
            TOP - 4.0,
            escape(&crate::markdown::short_time(*tt))
        );
    }
    let mut y = TOP;
    for (lane, h) in t.lanes.iter().zip(&heights) {
        let mid = y + h / 2.0;
        let cls = if lane.highlight { "lane hl" } else { "lane" };
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="{cls}" text-anchor="end">{}</text>"#,
            LABEL - 6.0,
            mid + 4.0,
            escape(&lane.name)
        );
        let _ = write!(
            s,
            r##"<line x1="{LABEL}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#e5e5e5"/>"##,
            LABEL + t.axis.width,
            y + h,
            y + h
        );
        for sp in &lane.spans {
            let (a, b) = (LABEL + t.axis.x(sp.from_ms), LABEL + t.axis.x(sp.to_ms));
            let (fill, top, ht) = match sp.kind {
                SpanKind::Active => ("#dbe9f6", mid - 1.5, 3.0),
                SpanKind::TransientError => ("#fdb863", mid - 3.0, 6.0),
                SpanKind::Down => ("#bdbdbd", y + 2.0, h - 4.0),
                SpanKind::Partition => ("#fee08b", y + 2.0, h - 4.0),
            };
            let _ = write!(
                s,
                r#"<rect x="{a:.1}" y="{top:.1}" width="{:.1}" height="{ht:.1}" fill="{fill}"><title>{}</title></rect>"#,
                (b - a).max(1.0),
                escape(&sp.title)
            );
        }
        for m in &lane.marks {
            let x = LABEL + t.axis.x(m.t_ms);
            let (colour, shape) = mark_style(m.kind);
            let title = if m.count > 1 {
                format!("{} (+{} more here)", m.title, m.count - 1)
            } else {
                m.title.clone()
            };
            let r = if client_h < 10.0
                && !matches!(
                    m.kind,
                    MarkKind::Delivery(_)
                        | MarkKind::Routed(_)
                        | MarkKind::Session
                        | MarkKind::Forward
                ) {
                2.5
            } else {
                3.5
            };
            let body = match shape {
                "big" => format!(
                    r##"<circle cx="{x:.1}" cy="{mid:.1}" r="{:.1}" fill="{colour}" stroke="#000" stroke-width="0.6">"##,
                    r + 1.5
                ),
                "tick" => format!(
                    r#"<rect x="{:.1}" y="{:.1}" width="1.6" height="{:.1}" fill="{colour}">"#,
                    x - 0.8,
                    mid - r,
                    2.0 * r
                ),
                "x" => format!(
                    r#"<path d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{colour}" stroke-width="1.6">"#,
                    x - r,
                    mid - r,
                    x + r,
                    mid + r,
                    x - r,
                    mid + r,
                    x + r,
                    mid - r
                ),
                "tri" => format!(
                    r#"<path d="M{x:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z" fill="{colour}">"#,
                    mid - r,
                    x + r,
                    mid + r,
                    x - r,
                    mid + r
                ),
                "diamond" => format!(
                    r#"<path d="M{x:.1} {:.1}L{:.1} {mid:.1}L{x:.1} {:.1}L{:.1} {mid:.1}Z" fill="{colour}">"#,
                    mid - r,
                    x + r,
                    mid + r,
                    x - r
                ),
                _ => format!(r#"<circle cx="{x:.1}" cy="{mid:.1}" r="{r:.1}" fill="{colour}">"#),
            };
            let close = if body.starts_with("<circle") {
                "</circle>"
            } else if body.starts_with("<rect") {
                "</rect>"
            } else {
                "</path>"
            };
            let _ = write!(s, "{body}<title>{}</title>{close}", escape(&title));
        }
        y += h;
    }
    for f in &t.faults {
        let x = LABEL + t.axis.x(f.t_ms);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#d62728" stroke-dasharray="3 2"><title>{}</title></line>"##,
            TOP - 6.0,
            height - 6.0,
            escape(&f.title)
        );
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" class="fault">#{}</text>"##,
            x + 2.0,
            TOP - 7.0,
            f.rule
        );
    }
    s.push_str("</svg>");
    s
}

/// One bar of a chart, with an optional interval.
pub struct Bar {
    /// Row label.
    pub label: String,
    /// Value.
    pub value: f64,
    /// Interval, if any.
    pub interval: Option<(f64, f64)>,
    /// Fill colour.
    pub colour: String,
}

/// A horizontal bar chart.
pub fn bars(title: &str, unit: &str, rows: &[Bar]) -> String {
    let label_w = 320.0;
    let plot_w = 420.0;
    let row_h = 20.0;
    let height = 30.0 + row_h * rows.len() as f64 + 10.0;
    let max = rows
        .iter()
        .map(|r| r.interval.map_or(r.value, |i| i.1.max(r.value)))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{:.0}" height="{height:.0}" role="img" aria-label="{}">"#,
        label_w + plot_w + 90.0,
        escape(title)
    );
    let _ = write!(
        s,
        r#"<text x="0" y="16" class="ctitle">{}</text>"#,
        escape(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let w = plot_w * r.value / max;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="clabel" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + 13.0,
            escape(&r.label)
        );
        let _ = write!(
            s,
            r#"<rect x="{label_w}" y="{:.1}" width="{:.1}" height="14" fill="{}"><title>{}: {:.2} {}</title></rect>"#,
            y + 2.0,
            w.max(0.5),
            r.colour,
            escape(&r.label),
            r.value,
            escape(unit)
        );
        if let Some((lo, hi)) = r.interval {
            let (a, b) = (label_w + plot_w * lo / max, label_w + plot_w * hi / max);
            let _ = write!(
                s,
                r##"<path d="M{a:.1} {:.1}H{b:.1}M{a:.1} {:.1}V{:.1}M{b:.1} {:.1}V{:.1}" stroke="#333" stroke-width="1"/>"##,
                y + 9.0,
                y + 5.0,
                y + 13.0,
                y + 5.0,
                y + 13.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="cval">{:.1}</text>"#,
            label_w + plot_w + 6.0,
            y + 13.0,
            r.value
        );
    }
    s.push_str("</svg>");
    s
}

/// A colour from green (0) through yellow to red (1).
pub fn heat(f: f64) -> String {
    let f = f.clamp(0.0, 1.0);
    let (r, g) = if f < 0.5 {
        ((255.0 * f * 2.0) as u8, 200u8)
    } else {
        (230u8, (200.0 * (1.0 - f) * 2.0) as u8)
    };
    format!("#{r:02x}{g:02x}60")
}
