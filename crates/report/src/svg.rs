//! Inline SVG: the run timeline and bar charts. No scripts, no external references; tooltips
//! are SVG `<title>` elements.

use std::fmt::Write as _;

use crate::{
    escape,
    timeline::{MarkKind, SpanKind, Timeline},
};

const LABEL: f64 = 96.0;
/// Height of the header: two rows of tick and break labels, two of fault labels.
const TOP: f64 = 58.0;
/// Rows of the tick and break labels, and of the fault labels.
const TICK_ROWS: [f64; 2] = [12.0, 24.0];
const FAULT_ROWS: [f64; 2] = [38.0, 49.0];
/// Below the lanes: the axis title.
const BOTTOM: f64 = 22.0;

/// Estimated width of a label of `n` characters at the 10 px font (a little generous, so
/// estimated boxes that do not touch never overlap on screen).
fn label_width(n: usize) -> f64 {
    n as f64 * 6.4 + 6.0
}

/// Rows of labels: a label goes in the first row where it touches no label placed before,
/// or nowhere (its line and tooltip stay).
struct Rows {
    taken: Vec<Vec<(f64, f64)>>,
}

impl Rows {
    fn new(n: usize) -> Rows {
        Rows {
            taken: vec![Vec::new(); n],
        }
    }

    /// The row a label centred at `x` (or starting at `x` when `left`) fits in.
    fn place(&mut self, x: f64, w: f64, left: bool) -> Option<usize> {
        let (a, b) = if left {
            (x, x + w)
        } else {
            (x - w / 2.0, x + w / 2.0)
        };
        let row = self
            .taken
            .iter()
            .position(|r| r.iter().all(|&(c, d)| b + 4.0 < c || a > d + 4.0))?;
        self.taken[row].push((a, b));
        Some(row)
    }
}

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

/// A mark's shape at `(x, mid)` of radius `r`: the opening element (a `<title>` may follow)
/// and its closing tag.
fn shape(kind: MarkKind, x: f64, mid: f64, r: f64) -> (String, &'static str) {
    let (colour, shape) = mark_style(kind);
    match shape {
        "big" => (
            format!(
                r##"<circle cx="{x:.1}" cy="{mid:.1}" r="{:.1}" fill="{colour}" stroke="#000" stroke-width="0.6">"##,
                r + 1.5
            ),
            "</circle>",
        ),
        "tick" => (
            format!(
                r#"<rect x="{:.1}" y="{:.1}" width="1.6" height="{:.1}" fill="{colour}">"#,
                x - 0.8,
                mid - r,
                2.0 * r
            ),
            "</rect>",
        ),
        "x" => (
            format!(
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
            "</path>",
        ),
        "tri" => (
            format!(
                r#"<path d="M{x:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z" fill="{colour}">"#,
                mid - r,
                x + r,
                mid + r,
                x - r,
                mid + r
            ),
            "</path>",
        ),
        "diamond" => (
            format!(
                r#"<path d="M{x:.1} {:.1}L{:.1} {mid:.1}L{x:.1} {:.1}L{:.1} {mid:.1}Z" fill="{colour}">"#,
                mid - r,
                x + r,
                mid + r,
                x - r
            ),
            "</path>",
        ),
        _ => (
            format!(r#"<circle cx="{x:.1}" cy="{mid:.1}" r="{r:.1}" fill="{colour}">"#),
            "</circle>",
        ),
    }
}

/// The legend of a timeline with `nodes` nodes: every mark, span and line it can draw, each
/// with the very shape the timeline uses (HTML, one inline SVG per entry).
pub fn legend(nodes: usize) -> String {
    let item = |svg: String, label: &str| {
        format!(
            r#"<span><svg width="18" height="14" viewBox="0 0 18 14" aria-hidden="true">{svg}</svg> {}</span>"#,
            escape(label)
        )
    };
    let mark = |kind: MarkKind, label: &str| {
        let (body, close) = shape(kind, 9.0, 7.0, 3.5);
        item(format!("{body}{close}"), label)
    };
    let span = |fill: &str, h: f64, label: &str| {
        item(
            format!(
                r#"<rect x="1" y="{:.1}" width="16" height="{h:.1}" fill="{fill}"/>"#,
                7.0 - h / 2.0
            ),
            label,
        )
    };
    let mut o = String::from(r#"<p class="legend">"#);
    for i in 0..nodes.max(1) {
        o += &mark(
            MarkKind::Routed(i),
            &format!("farm lane: a connection sent to node-{}", i + 1),
        );
    }
    o += &mark(MarkKind::Session, "node: session created");
    o += &mark(MarkKind::Forward, "node: file forwarded to the application");
    o += &mark(MarkKind::NotFound, "node: session not found");
    o += &mark(MarkKind::Replay, "node: cached Ack replayed");
    o += &mark(MarkKind::Delivery(false), "backend: delivered");
    o += &mark(
        MarkKind::Delivery(true),
        "backend: delivery of a duplicated file",
    );
    o += &mark(MarkKind::Done, "client: job acknowledged");
    o += &mark(MarkKind::Failed, "client: job failed or cancelled");
    o += &mark(MarkKind::Restart, "client: upload restarted from byte 0");
    o += &mark(MarkKind::Fallback, "client: Host-Id fallback");
    o += &span("#dbe9f6", 3.0, "client: job running");
    o += &span("#fdb863", 6.0, "client: transient error (retrying)");
    o += &span("#bdbdbd", 12.0, "host down");
    o += &span("#fee08b", 12.0, "partitioned");
    o += &item(
        r##"<line x1="9" x2="9" y1="0" y2="14" stroke="#d62728" stroke-dasharray="3 2"/>"##.into(),
        "a fault fired (#rule)",
    );
    o += &item(
        r##"<path d="M1 7l4 -4l4 8l4 -8l4 4" fill="none" stroke="#888" stroke-width="1.2"/>"##
            .into(),
        "time skipped (labelled)",
    );
    o += "</p>";
    o
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
    let height = TOP + heights.iter().sum::<f64>() + 8.0 + BOTTOM;
    let width = LABEL + t.axis.width + 48.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="timeline">"#
    );

    // Axis: stretches shaded; the breaks between them drawn as a dashed white band with a zigzag,
    // labelled with the time they skip; ticks spread over the stretches. Labels never overlap:
    // break labels are placed first, then ticks where they fit.
    let lanes_bottom = height - BOTTOM;
    let mut labels = Rows::new(TICK_ROWS.len());
    let mut texts = String::new();
    for (i, &(t0, _, x0, x1)) in t.axis.segments.iter().enumerate() {
        let (a, b) = (LABEL + x0, LABEL + x1);
        let _ = write!(
            s,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f7f7f7"/>"##,
            TOP - 4.0,
            (b - a).max(1.0),
            lanes_bottom - TOP + 4.0
        );
        if i > 0 {
            let prev = t.axis.segments[i - 1];
            let (ba, bb) = (LABEL + prev.3, a);
            let mid = (ba + bb) / 2.0;
            let skipped = crate::markdown::short_time(t0 - prev.1);
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fff" stroke="#bbb" stroke-dasharray="2 3"><title>{} skipped</title></rect><path d="M{:.1} {:.1}l4 -4l4 8l4 -8l4 8l4 -4" fill="none" stroke="#888" stroke-width="1.2"/>"##,
                ba + 2.0,
                TOP - 4.0,
                (bb - ba - 4.0).max(1.0),
                lanes_bottom - TOP + 4.0,
                escape(&skipped),
                mid - 10.0,
                TOP - 4.0
            );
            let label = format!("+{skipped}");
            if let Some(row) = labels.place(mid, label_width(label.chars().count()), false) {
                let _ = write!(
                    texts,
                    r#"<text x="{mid:.1}" y="{}" class="brk" text-anchor="middle">{}<title>{} skipped</title></text>"#,
                    TICK_ROWS[row],
                    escape(&label),
                    escape(&skipped)
                );
            }
        }
    }
    let mut ticks = Vec::new();
    for (x, tt) in t.axis.ticks(110.0) {
        let x = LABEL + x;
        // A zoom's windows are milliseconds wide, wherever they are in the run.
        let label = if t.axis.windowed {
            scenario::text::secs(tt)
        } else {
            crate::markdown::short_time(tt)
        };
        if let Some(row) = labels.place(x, label_width(label.chars().count()), false) {
            ticks.push((x, row, label));
        }
    }
    // Tick labels in x order with the break labels: `labels` placed them left to right.
    for (x, row, label) in ticks {
        let y = TICK_ROWS[row];
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#ccc"/>"##,
            y + 2.0,
            TOP - 4.0
        );
        let _ = write!(
            texts,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{}</text>"#,
            escape(&label)
        );
    }
    s.push_str(&texts);
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
        LABEL + t.axis.width / 2.0,
        height - 6.0,
        if t.axis.windowed {
            "time since the run began (windows around the chain's steps; a zigzag skips the time it is labelled with)"
        } else {
            "time since the run began (virtual time; a zigzag skips an idle stretch, labelled with its length)"
        }
    );
    let mut y = TOP;
    for (lane, h) in t.lanes.iter().zip(&heights) {
        let mid = y + h / 2.0;
        let small = if *h < 12.0 { " small" } else { "" };
        let cls = if lane.highlight {
            format!("lane hl{small}")
        } else {
            format!("lane{small}")
        };
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
            let (body, close) = shape(m.kind, x, mid, r);
            let _ = write!(s, "{body}<title>{}</title>{close}", escape(&title));
        }
        y += h;
    }
    let mut rows = Rows::new(FAULT_ROWS.len());
    for f in &t.faults {
        let x = LABEL + t.axis.x(f.t_ms);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#d62728" stroke-dasharray="3 2"><title>{}</title></line>"##,
            TOP - 6.0,
            lanes_bottom,
            escape(&f.title)
        );
        let label = format!("#{}", f.rule);
        if let Some(row) = rows.place(x + 2.0, label_width(label.len()), true) {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" class="fault">{label}<title>{}</title></text>"##,
                x + 2.0,
                FAULT_ROWS[row],
                escape(&f.title)
            );
        }
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
