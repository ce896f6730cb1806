//! A probe that keeps every event in memory and answers fault points with a closure: what the
//! node and client tests install, and the shortest way to watch an embedded actor.

use std::sync::{Arc, Mutex};

use crate::{Event, FaultCtx, Probe, Verdict};

/// Records events; answers fault points with a rule.
pub struct Recorder {
    /// Every event, in order.
    pub events: Mutex<Vec<Event>>,
    rule: Box<dyn Fn(&FaultCtx<'_>) -> Verdict + Send + Sync>,
}

impl Recorder {
    /// A recorder whose fault points are answered by `rule`.
    pub fn new(rule: impl Fn(&FaultCtx<'_>) -> Verdict + Send + Sync + 'static) -> Arc<Recorder> {
        Arc::new(Recorder {
            events: Mutex::default(),
            rule: Box::new(rule),
        })
    }

    /// A recorder that never injects a fault.
    pub fn quiet() -> Arc<Recorder> {
        Recorder::new(|_| Verdict::Continue)
    }

    /// How many recorded events match `pred`.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.lock().iter().filter(|e| pred(e)).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Probe for Recorder {
    fn event(&self, event: Event) {
        self.lock().push(event);
    }

    fn fault(&self, ctx: &FaultCtx<'_>) -> Verdict {
        (self.rule)(ctx)
    }
}
