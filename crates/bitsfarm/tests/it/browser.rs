//! The HTML reports as a browser lays them out (headless Chromium): no two text boxes of a
//! timeline or chart overlap, every duplicate's chain has its zoomed timeline with the
//! decisive deliveries far apart, and the run report says what to change.
//!
//! Needs Chromium (`/usr/bin/chromium`, Debian's package `chromium`), which a machine with
//! only the Rust toolchain does not have: these tests are `#[ignore]`d in the plain test
//! command and `.ci/run` installs Chromium and runs them (`cargo test ... -- --ignored
//! browser`; `just browser` here).

use std::{path::Path, process::Command};

use super::{Scratch, bitsfarm, code, stderr, tempdir};

/// Measures the page in Chromium: the text boxes of every SVG that overlap, and what the
/// check below reads. The report has no script of its own; one is added to a copy.
const CHECK: &str = r##"<script>
(() => {
  const out = { overlaps: [], svgs: 0, texts: 0, zooms: [], advice: !!document.getElementById('what-to-change'),
                width: document.documentElement.scrollWidth };
  for (const svg of document.querySelectorAll('svg')) {
    out.svgs++;
    const boxes = [...svg.querySelectorAll('text')]
      .map(t => [t.textContent, t.getBoundingClientRect()])
      .filter(([, r]) => r.width > 0 && r.height > 0);
    out.texts += boxes.length;
    for (let i = 0; i < boxes.length; i++)
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, ra] = boxes[i], [b, rb] = boxes[j];
        const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
        const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
        if (w > 0.5 && h > 0.5) out.overlaps.push(`${a} / ${b}`);
      }
  }
  for (const z of document.querySelectorAll('.zoom svg')) {
    const dups = [...z.querySelectorAll('circle[stroke="#000"]')].map(c => c.getBoundingClientRect().left);
    out.zooms.push(dups);
  }
  const pre = document.createElement('pre');
  pre.id = 'check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"##;

fn chromium() -> &'static str {
    "/usr/bin/chromium"
}

/// Chromium's flags for a machine with no network, as root, with a fresh profile.
fn chromium_cmd(profile: &Path) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,2400",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Loads `report` (a copy with [`CHECK`] added) and returns what the script measured.
fn measure(report: &Path, scratch: &Path) -> serde_json::Value {
    let html = std::fs::read_to_string(report).unwrap();
    let page = scratch.join("checked.html");
    std::fs::write(&page, html.replace("</body>", &format!("{CHECK}</body>"))).unwrap();
    let o = chromium_cmd(&scratch.join("profile"))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): install Debian's chromium",
                chromium()
            )
        });
    let dom = String::from_utf8_lossy(&o.stdout);
    let json = dom
        .split("<pre id=\"check\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "no measurement in the page: {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
    let json = json
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    serde_json::from_str(&json).unwrap()
}

fn run_report(tag: &str, args: &[&str]) -> (std::path::PathBuf, Scratch) {
    let dir = tempdir(tag);
    let out = dir.join("run");
    let mut all = vec!["scenario"];
    all.extend_from_slice(args);
    all.extend(["-o", out.to_str().unwrap()]);
    let o = bitsfarm(&all);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    (out.join("report.html"), dir)
}

fn assert_no_overlaps(m: &serde_json::Value, what: &str) {
    assert!(m["texts"].as_u64().unwrap() > 10, "{what}: {m}");
    assert_eq!(
        m["overlaps"].as_array().unwrap().len(),
        0,
        "{what}: overlapping text boxes: {}",
        m["overlaps"]
    );
}

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs these"]
fn browser_run_report_has_no_overlapping_text_a_zoomed_chain_and_what_to_change() {
    let (report, scratch) = run_report("browser-run", &["crash-after-forward"]);
    let m = measure(&report, &scratch);
    assert_no_overlaps(&m, "crash-after-forward");
    assert_eq!(m["advice"], true, "{m}");
    // One zoom for the one duplicate; its two deliveries (0.9 s and 86,401 s apart in the
    // run) far apart on the zoom, not a few pixels of a day.
    let zooms = m["zooms"].as_array().unwrap();
    assert_eq!(zooms.len(), 1, "{m}");
    let xs: Vec<f64> = zooms[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(xs.len(), 2, "both deliveries of the file in the zoom: {m}");
    assert!((xs[1] - xs[0]).abs() > 200.0, "{xs:?}");
    assert!(
        m["width"].as_f64().unwrap() <= 1400.0,
        "no horizontal scroll: {m}"
    );
}

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs these"]
fn browser_fifty_clients_keep_axis_and_fault_labels_apart() {
    let (report, scratch) = run_report(
        "browser-50",
        &["crash-after-forward", "--set", "clients.count=50"],
    );
    let m = measure(&report, &scratch);
    assert_no_overlaps(&m, "50 clients");
}

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs these"]
fn browser_sweep_report_has_no_overlapping_text() {
    let dir = tempdir("browser-sweep");
    let out = dir.join("sweep");
    let o = bitsfarm(&[
        "sweep",
        "crash-after-forward",
        "--vary",
        "farm.host_id=true,false",
        "--vary",
        "clients.transaction_id=false,true",
        "--set",
        "backend.dedupe=true",
        "--seeds",
        "4",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = measure(&out.join("report.html"), &dir);
    assert_no_overlaps(&m, "sweep");
}
