//! Panics inside a simulated run: recorded, never swallowed.
//!
//! tokio catches a task's panic and turns it into a `JoinError` that nobody may look at (a
//! node's connection task, a client job, a harness timer). A run in which any task panicked has
//! not shown anything about BITS, so the run must fail. [`capture`] installs (once per process)
//! a panic hook that, on a thread inside `capture`, records the panic's message and location
//! instead of printing it; on every other thread the previous hook runs as before.
//!
//! The hook runs where the panic happens, before tokio's `catch_unwind`, so it sees panics of
//! every task of a current-thread runtime driven by the capturing thread.

use std::{cell::RefCell, sync::Once};

/// How many panic messages a run keeps (all are counted).
pub const MAX_KEPT: usize = 10;

/// The panics of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Panics {
    /// How many panics happened.
    pub count: u64,
    /// The first [`MAX_KEPT`] messages, each with its location (`message at file:line:col`).
    pub messages: Vec<String>,
}

impl Panics {
    /// Whether nothing panicked.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn note(&mut self, info: &std::panic::PanicHookInfo<'_>) {
        self.count += 1;
        if self.messages.len() < MAX_KEPT {
            self.messages.push(describe(info));
        }
    }
}

thread_local! {
    static CAPTURED: RefCell<Option<Panics>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let kept = CAPTURED
                .try_with(|c| match c.try_borrow_mut() {
                    Ok(mut slot) => match slot.as_mut() {
                        Some(p) => {
                            p.note(info);
                            true
                        }
                        None => false,
                    },
                    Err(_) => false,
                })
                .unwrap_or(false);
            if !kept {
                previous(info);
            }
        }));
    });
}

fn describe(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned());
    let mut text = match info.location() {
        Some(l) => format!("{message} at {}:{}:{}", l.file(), l.line(), l.column()),
        None => message,
    };
    // A panic inside the standard library (an overflowing `Instant + Duration`) is located
    // there; the caller in bitsfarm's own code is what a reader needs.
    if info.location().is_some_and(|l| !is_ours(l.file())) {
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        if let Some(frame) = trace
            .lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("at "))
            .find(|l| is_ours(l) && !l.contains("crates/sim/src/panics.rs"))
        {
            text.push_str(&format!(", called from {frame}"));
        }
    }
    text
}

/// Whether a source path is one of the workspace's crates.
fn is_ours(file: &str) -> bool {
    file.contains("crates/") && !file.contains(".cargo/") && !file.contains("/rustc/")
}

/// Runs `f` on this thread and returns what it returned (`Err` with the message if `f` itself
/// unwound) and every panic that happened on this thread meanwhile, including those tokio
/// caught inside tasks.
pub fn capture<R>(f: impl FnOnce() -> R) -> (Result<R, String>, Panics) {
    install();
    let outer = CAPTURED.with(|c| c.replace(Some(Panics::default())));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let panics = CAPTURED.with(|c| c.replace(outer)).unwrap_or_default();
    let result = result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".to_owned())
    });
    (result, panics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_task_panics_that_tokio_swallows() {
        let (out, panics) = capture(|| {
            crate::run(std::time::Duration::from_secs(10), async {
                let t = tokio::spawn(async { panic!("boom in a task") });
                let joined = t.await;
                joined.is_err()
            })
        });
        assert_eq!(out, Ok(Some(true)));
        assert_eq!(panics.count, 1);
        assert!(
            panics.messages[0].starts_with("boom in a task at "),
            "{panics:?}"
        );
        assert!(panics.messages[0].contains("panics.rs"), "{panics:?}");
    }

    #[test]
    fn a_panic_of_the_closure_is_an_error_and_capture_nests() {
        let (out, panics) = capture(|| {
            let (inner, inner_panics) = capture(|| -> u32 { panic!("inner") });
            assert!(inner.is_err());
            assert_eq!(inner_panics.count, 1);
            7
        });
        assert_eq!(out, Ok(7));
        assert!(panics.is_empty(), "the inner capture kept its own panics");
        let (out, panics) = capture(|| -> u32 { panic!("outer {}", 1) });
        assert_eq!(out, Err("outer 1".to_owned()));
        assert_eq!(panics.count, 1);
    }

    #[test]
    fn keeps_the_first_messages_and_counts_all() {
        let (_, panics) = capture(|| {
            for i in 0..(MAX_KEPT + 5) {
                let _ = std::panic::catch_unwind(|| panic!("p{i}"));
            }
        });
        assert_eq!(panics.count, (MAX_KEPT + 5) as u64);
        assert_eq!(panics.messages.len(), MAX_KEPT);
        assert!(panics.messages[0].starts_with("p0 at"));
    }
}
