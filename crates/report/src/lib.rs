//! Reports users read in a minute, share, and diff: for one run (`report.md`, a self-contained
//! `report.html` with a timeline) and for sweeps over settings (a safety matrix with confidence
//! intervals, charts). Reports are made from saved JSON only: they never re-simulate and never
//! parse log text.
//!
//! A run directory (`reports/<scenario>/<run id>/`, see [`runs`]) holds `summary.json` (the run's
//! [`scenario::summary::Summary`]), `events.jsonl` (see [`scenario::log`]) and the reports. A
//! sweep directory (`reports/sweeps/<name>/`) is described in [`sweep`].
//!
//! **Invariants:** every number in a report comes from the summary or the event log it is
//! written from; HTML reports reference nothing outside themselves (no URLs, no scripts).

pub mod files;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod runs;
pub mod svg;
pub mod sweep;
pub mod timeline;

pub use files::{
    Recording, ReportError, live_into, record_into, run_into, write_aggregate, write_run_reports,
    write_sweep, write_sweep_reports,
};

/// Escapes text for HTML and XML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
