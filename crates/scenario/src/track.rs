//! Following each file through a run: its deliveries, how its job ended, and the events that
//! explain a duplicate (its "story"), kept compact so memory grows with files in trouble, not
//! with files done.

use std::collections::{HashMap, VecDeque};

use client::{JobReport, JobState};
use probe::Event;

use crate::log::Record;

/// One delivery of a file to the application (or, with notification type 0, one commit of it
/// to its destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Position of the event in the log.
    pub seq: u64,
    /// When.
    pub t_ms: u64,
    /// The delivering node.
    pub node: String,
    /// The node's session.
    pub session: Option<String>,
    /// Hash of the bytes delivered (`None` for a type-0 commit: the node checks its own bytes).
    pub hash: Option<u64>,
    /// Bytes delivered.
    pub len: Option<u64>,
    /// Whether it had an effect.
    pub effect: bool,
}

/// How a file's job ended (the parts of a [`JobReport`] the summary needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// Final state.
    pub state: JobState,
    /// Whether the final fragment's success Ack reached the client.
    pub final_acked: bool,
    /// Bytes uploaded.
    pub total: u64,
    /// Hash of the uploaded bytes.
    pub hash: u64,
    /// Restarts from byte 0.
    pub restarts: u32,
    /// Host-Id fallbacks.
    pub host_fallbacks: u32,
    /// Bytes sent beyond one copy.
    pub bytes_resent: u64,
    /// Transient errors.
    pub transient_errors: u32,
    /// Why the job failed.
    pub error: Option<client::JobError>,
    /// When its first attempt started.
    pub started_ms: u64,
    /// When it ended.
    pub finished_ms: u64,
}

/// A step of a file's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// One event.
    At(Record),
    /// Consecutive failed requests to one target, and the retries between them.
    Retrying {
        /// Sequence number of the first failure.
        first_seq: u64,
        /// Where they went.
        target: String,
        /// First failure.
        first_ms: u64,
        /// Last failure.
        last_ms: u64,
        /// How many.
        failures: u32,
        /// The retry delay.
        delay_ms: u64,
        /// The first error.
        error: String,
    },
}

impl Step {
    /// When the step (began).
    pub fn t_ms(&self) -> u64 {
        match self {
            Step::At(r) => r.t_ms,
            Step::Retrying { first_ms, .. } => *first_ms,
        }
    }

    /// Position in the event log of the step (its first event).
    pub fn seq(&self) -> u64 {
        match self {
            Step::At(r) => r.seq,
            Step::Retrying { first_seq, .. } => *first_seq,
        }
    }
}

/// Everything known about one file.
#[derive(Debug, Clone)]
pub struct FileTrack {
    /// The upload's path.
    pub file: String,
    /// Its job.
    pub job: String,
    /// Its client.
    pub client: String,
    /// Deliveries, in order.
    pub deliveries: Vec<Delivery>,
    /// The job's end, once it ended.
    pub outcome: Option<JobOutcome>,
    /// Events that explain what happened to it (dropped for files that had no trouble).
    pub story: Vec<Step>,
    trouble: bool,
    /// Its sessions still in the session index, forgotten with the file (a streaming tracker's).
    sessions: Vec<String>,
}

impl FileTrack {
    /// Deliveries that had an effect.
    pub fn effects(&self) -> u64 {
        self.deliveries.iter().filter(|d| d.effect).count() as u64
    }
}

/// The client of a file uploaded by a client the run did not start (an outside client).
pub const OUTSIDE: &str = "external";

/// The files followed. Every track lives in one arena (`slots`, registration order, a
/// forgotten file's slot reused); tables of every file map a path or a job to its slot, and
/// are only looked up once a file is registered. A file is hot from its first event to its
/// job's end, and cold before and after: a run's events are about the files in flight, a few
/// hundred at most, so their lookups stay in small tables (in cache) however many files the
/// run has, and a file costs the big tables two inserts and one lookup, never a move.
#[derive(Default)]
struct Files {
    /// Every track; `None` where a file was forgotten (its slot in `free`).
    slots: Vec<Option<FileTrack>>,
    free: Vec<u32>,
    /// path → slot, of every file.
    paths: HashMap<String, u32>,
    /// job → slot, of every file.
    jobs: HashMap<String, u32>,
    /// path → slot, of the hot files.
    hot: HashMap<String, u32>,
    /// job → slot, of the hot files.
    hot_jobs: HashMap<String, u32>,
}

impl Files {
    /// Room for `more` files registered before they start (no rehash of the big tables).
    fn reserve(&mut self, more: usize) {
        self.slots.reserve(more.saturating_sub(self.free.len()));
        self.paths.reserve(more);
        self.jobs.reserve(more);
    }

    /// Follows `t`, cold; a file followed at its path already is replaced, and its job
    /// forgotten (every table entry names a live slot holding that path or job).
    fn insert(&mut self, t: FileTrack) {
        if let Some(&i) = self.paths.get(&t.file) {
            if let Some(old) = &self.slots[i as usize] {
                self.hot_jobs.remove(&old.job);
                self.jobs.remove(&old.job);
            }
            self.hot.remove(&t.file);
            self.jobs.insert(t.job.clone(), i);
            self.slots[i as usize] = Some(t);
            return;
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 files followed")
            }
        };
        self.paths.insert(t.file.clone(), i);
        self.jobs.insert(t.job.clone(), i);
        self.slots[i as usize] = Some(t);
    }

    fn slot(&self, i: u32) -> Option<&FileTrack> {
        self.slots.get(i as usize).and_then(Option::as_ref)
    }

    fn contains(&self, path: &str) -> bool {
        self.hot.contains_key(path) || self.paths.contains_key(path)
    }

    fn get(&self, path: &str) -> Option<&FileTrack> {
        let i = self.hot.get(path).or_else(|| self.paths.get(path))?;
        self.slot(*i)
    }

    /// The file at `path`, made hot.
    fn get_mut(&mut self, path: &str) -> Option<&mut FileTrack> {
        let i = match self.hot.get(path) {
            Some(&i) => i,
            None => {
                let i = *self.paths.get(path)?;
                let job = self.slot(i)?.job.clone();
                self.hot_jobs.insert(job, i);
                self.hot.insert(path.to_owned(), i);
                i
            }
        };
        self.slots.get_mut(i as usize).and_then(Option::as_mut)
    }

    fn file_of_job(&self, job: &str) -> Option<String> {
        let i = self.hot_jobs.get(job).or_else(|| self.jobs.get(job))?;
        self.slot(*i).map(|t| t.file.clone())
    }

    /// The file's job ended: it goes cold.
    fn cool(&mut self, path: &str) {
        if let Some(i) = self.hot.remove(path)
            && let Some(t) = self.slots[i as usize].as_ref()
        {
            self.hot_jobs.remove(&t.job);
        }
    }

    fn remove(&mut self, path: &str) -> Option<FileTrack> {
        let i = self.paths.remove(path)?;
        self.hot.remove(path);
        let t = self.slots[i as usize].take()?;
        self.hot_jobs.remove(&t.job);
        self.jobs.remove(&t.job);
        self.free.push(i);
        Some(t)
    }

    fn all(&self) -> impl Iterator<Item = &FileTrack> {
        self.slots.iter().flatten()
    }
}

/// Follows every file of a run.
pub struct Tracker {
    commits_are_deliveries: bool,
    files: Files,
    /// session → file; lookup only.
    session_file: HashMap<String, String>,
    /// Events not about one file: crashes, restarts, partitions, Host-Id switches, timed faults.
    pub global: Vec<Record>,
    /// Follow files no job registered, from their first session (the live farm's external
    /// clients).
    adopt: bool,
    /// The application is not bitsfarm's (it reports no deliveries): an application's 2xx
    /// answer to a notification counts as a delivery, from the node's side.
    answers_are_deliveries: bool,
    /// Files already folded into `tally` (a streaming tracker's).
    tally: crate::check::tally::Tally,
    /// A streaming tracker folds each file this long after its job ended, and forgets it.
    stream: Option<Stream>,
    /// `Delivered` events of files not followed (a rogue client's upload), but by a streaming
    /// tracker.
    untracked_deliveries: u64,
}

/// When to fold the files of a streaming tracker.
struct Stream {
    grace_ms: u64,
    txid_dedupe: bool,
    /// (when, file), in order of time.
    due: VecDeque<(u64, String)>,
}

impl Tracker {
    /// A tracker; with notification type 0, commits to the destination count as deliveries.
    pub fn new(commits_are_deliveries: bool) -> Tracker {
        Tracker {
            commits_are_deliveries,
            files: Files::default(),
            session_file: HashMap::new(),
            global: Vec::new(),
            adopt: false,
            answers_are_deliveries: false,
            tally: Default::default(),
            stream: None,
            untracked_deliveries: 0,
        }
    }

    /// Folds each file into the run's totals `grace_ms` after its job ended and forgets it
    /// (a long run's memory then follows the uploads in flight). A delivery of a file already
    /// folded counts as a duplicate of cause `late`. `txid_dedupe` as for
    /// [`Tracker::tally_all`].
    pub fn streaming(mut self, grace_ms: u64, txid_dedupe: bool) -> Tracker {
        self.stream = Some(Stream {
            grace_ms,
            txid_dedupe,
            due: VecDeque::new(),
        });
        self
    }

    /// The totals of every file: those already folded and the rest, folded now (in path
    /// order). `txid_dedupe`: the run deduplicates by transaction id.
    pub fn tally_all(&self, txid_dedupe: bool) -> crate::check::tally::Tally {
        let mut tally = self.tally.clone();
        for t in self.files() {
            tally.fold(t, &self.global, txid_dedupe);
        }
        tally
    }

    /// Folds and forgets the files whose time has come (streaming only).
    fn retire_due(&mut self, now_ms: u64) {
        let Some(stream) = &mut self.stream else {
            return;
        };
        let txid_dedupe = stream.txid_dedupe;
        let mut due = Vec::new();
        while stream.due.front().is_some_and(|(at, _)| *at <= now_ms) {
            if let Some((_, file)) = stream.due.pop_front() {
                due.push(file);
            }
        }
        for file in due {
            let Some(t) = self.files.remove(&file) else {
                continue;
            };
            for s in &t.sessions {
                self.session_file.remove(s);
            }
            self.tally.fold(&t, &self.global, txid_dedupe);
        }
    }

    /// Counts an application's 2xx answers as deliveries (an application that is not
    /// bitsfarm's: `farm --app-url`); their bytes cannot be compared.
    pub fn counting_answers(mut self) -> Tracker {
        self.answers_are_deliveries = true;
        self
    }

    /// A tracker that also follows files uploaded by clients it does not run (their outcome is
    /// unknown: they count as neither acknowledged nor lost).
    pub fn adopting(commits_are_deliveries: bool) -> Tracker {
        Tracker {
            adopt: true,
            ..Tracker::new(commits_are_deliveries)
        }
    }

    /// Room for `files` more registered files: a run that registers its files up front (a
    /// million of them, at most) grows its maps once instead of rehashing them as it goes.
    pub fn reserve(&mut self, files: usize) {
        self.files.reserve(files);
    }

    /// Registers a job before it starts.
    pub fn register(&mut self, job: &str, file: &str, client: &str) {
        self.files.insert(FileTrack {
            file: file.to_owned(),
            job: job.to_owned(),
            client: client.to_owned(),
            deliveries: Vec::new(),
            outcome: None,
            story: Vec::new(),
            trouble: false,
            sessions: Vec::new(),
        });
    }

    /// Every file, in path order.
    pub fn files(&self) -> Vec<&FileTrack> {
        let mut all: Vec<&FileTrack> = self.files.all().collect();
        all.sort_unstable_by(|a, b| a.file.cmp(&b.file));
        all
    }

    /// `Delivered` events of files it did not follow (none counted while streaming).
    pub fn untracked_deliveries(&self) -> u64 {
        self.untracked_deliveries
    }

    /// The file at `path`, if it is followed.
    pub fn file(&self, path: &str) -> Option<&FileTrack> {
        self.files.get(path)
    }

    fn track(&mut self, file: &str) -> Option<&mut FileTrack> {
        self.files.get_mut(file)
    }

    fn push(&mut self, file: Option<&str>, rec: &Record, trouble: bool) {
        if let Some(t) = file.and_then(|f| self.files.get_mut(f)) {
            t.story.push(Step::At(rec.clone()));
            t.trouble |= trouble;
        }
    }

    /// A delivery seen from a node's side (a commit, an outside application's 2xx): its bytes
    /// are not known, so they cannot be compared.
    fn node_side_delivery(&mut self, file: &str, node: &str, session: &str, rec: &Record) {
        if let Some(t) = self.track(file) {
            t.deliveries.reserve_exact(1);
            t.deliveries.push(Delivery {
                seq: rec.seq,
                t_ms: rec.t_ms,
                node: node.to_owned(),
                session: Some(session.to_owned()),
                hash: None,
                len: None,
                effect: true,
            });
        }
    }

    /// Takes one recorded event into account.
    pub fn observe(&mut self, rec: &Record) {
        let job_file = |job: &str| self.files.file_of_job(job);
        match &rec.event {
            Event::SessionCreated { session, file, .. } => {
                if self.adopt && !self.files.contains(file) {
                    self.register(file, file, OUTSIDE);
                }
                // Only a streaming tracker forgets a file's sessions with it.
                if let (Some(t), Some(_)) = (self.files.get_mut(file), &self.stream) {
                    t.sessions.push(session.clone());
                }
                self.session_file.insert(session.clone(), file.clone());
                self.push(Some(file), rec, false);
            }
            Event::SessionNotFound { session, .. } => {
                let f = self.session_file.get(session).cloned();
                self.push(f.as_deref(), rec, true);
            }
            Event::Forwarded { file, .. } | Event::CachedAckReplayed { file, .. } => {
                self.push(Some(file), rec, false)
            }
            Event::AppAnswered {
                file,
                status,
                node,
                session,
                ..
            } => {
                let ok = status.is_some_and(|s| (200..300).contains(&s));
                if ok && self.answers_are_deliveries {
                    self.node_side_delivery(file, node, session, rec);
                }
                self.push(Some(file), rec, !ok);
            }
            Event::Committed {
                node,
                session,
                file,
            } => {
                if self.commits_are_deliveries {
                    self.node_side_delivery(file, node, session, rec);
                }
                self.push(Some(file), rec, false);
            }
            Event::Delivered {
                file,
                node,
                session,
                len,
                hash,
                effect,
                ..
            } => {
                if let Some(t) = self.files.get_mut(file) {
                    // Most files are delivered once: room for one, not four.
                    t.deliveries.reserve_exact(1);
                    t.deliveries.push(Delivery {
                        seq: rec.seq,
                        t_ms: rec.t_ms,
                        node: node.clone(),
                        session: session.clone(),
                        hash: Some(*hash),
                        len: Some(*len),
                        effect: *effect,
                    });
                } else if self.stream.is_none() {
                    self.untracked_deliveries += 1;
                } else if file.starts_with("/upload/") {
                    self.tally.late_delivery(*effect);
                }
                self.push(Some(file), rec, false);
            }
            Event::SessionClosed { session, .. } => {
                self.session_file.remove(session);
            }
            Event::SessionCancelled { session, file, .. }
            | Event::SessionExpired { session, file, .. } => {
                self.session_file.remove(session);
                self.push(Some(file), rec, true);
            }
            Event::JobState { job, state, .. } => {
                if matches!(
                    state,
                    JobState::Transferred | JobState::Error | JobState::Acknowledged
                ) {
                    self.push(job_file(job).as_deref(), rec, *state == JobState::Error);
                }
            }
            Event::HostIdLearned { job, .. } => self.push(job_file(job).as_deref(), rec, false),
            Event::HostFallback { job, .. } | Event::UploadRestart { job, .. } => {
                self.push(job_file(job).as_deref(), rec, true)
            }
            Event::ClientFailure {
                job, target, error, ..
            } => {
                if let Some(t) = job_file(job).and_then(|f| self.files.get_mut(&f)) {
                    t.trouble = true;
                    match t.story.last_mut() {
                        Some(Step::Retrying {
                            target: tt,
                            last_ms,
                            failures,
                            ..
                        }) if tt == target => {
                            *last_ms = rec.t_ms;
                            *failures += 1;
                        }
                        _ => t.story.push(Step::Retrying {
                            first_seq: rec.seq,
                            target: target.clone(),
                            first_ms: rec.t_ms,
                            last_ms: rec.t_ms,
                            failures: 1,
                            delay_ms: 0,
                            error: error.clone(),
                        }),
                    }
                }
            }
            Event::RetryScheduled { job, delay_ms, .. } => {
                if let Some(t) = job_file(job).and_then(|f| self.files.get_mut(&f)) {
                    t.trouble = true;
                    match t.story.last_mut() {
                        // A retry after failed requests: part of that run.
                        Some(Step::Retrying { delay_ms: d, .. }) => *d = *delay_ms,
                        // A retry after an error Ack.
                        _ => t.story.push(Step::At(rec.clone())),
                    }
                }
            }
            Event::FaultFired { session, file, .. } => {
                let f = file.clone().or_else(|| {
                    session
                        .as_ref()
                        .and_then(|s| self.session_file.get(s).cloned())
                });
                match f {
                    Some(f) => self.push(Some(&f), rec, true),
                    None => self.global.push(rec.clone()),
                }
            }
            Event::FailureStruck { session, file, .. } => {
                let f = file.clone().or_else(|| {
                    session
                        .as_ref()
                        .and_then(|s| self.session_file.get(s).cloned())
                });
                match f {
                    Some(f) if self.files.contains(&f) => self.push(Some(&f), rec, true),
                    _ => self.global.push(rec.clone()),
                }
            }
            Event::Crashed { .. }
            | Event::Restarted { .. }
            | Event::Partitioned { .. }
            | Event::Healed { .. }
            | Event::HostIdToggled { .. } => self.global.push(rec.clone()),
            _ => {}
        }
        self.retire_due(rec.t_ms);
    }

    /// Records how a job ended, with the hash of what it uploaded; a file without trouble and
    /// at most one delivery forgets its story.
    pub fn finish(&mut self, report: &JobReport, hash: u64) {
        let Some(t) = self.files.get_mut(&report.file) else {
            return;
        };
        t.outcome = Some(JobOutcome {
            state: report.state,
            final_acked: report.final_acked,
            total: report.total,
            hash,
            restarts: report.restarts,
            host_fallbacks: report.host_fallbacks,
            bytes_resent: report.bytes_resent(),
            transient_errors: report.transient_errors,
            error: report.error.clone(),
            started_ms: report
                .history
                .first()
                .map_or(report.finished_ms, |a| a.at_ms),
            finished_ms: report.finished_ms,
        });
        if !t.trouble && t.deliveries.len() <= 1 {
            t.story = Vec::new();
        }
        if let Some(stream) = &mut self.stream {
            stream.due.push_back((
                report.finished_ms.saturating_add(stream.grace_ms),
                report.file.clone(),
            ));
        }
        self.files.cool(&report.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(job: &str, file: &str) -> FileTrack {
        FileTrack {
            file: file.into(),
            job: job.into(),
            client: "c".into(),
            deliveries: Vec::new(),
            outcome: None,
            story: Vec::new(),
            trouble: false,
            sessions: Vec::new(),
        }
    }

    fn delivered(seq: u64, file: &str) -> Record {
        Record {
            v: crate::log::FORMAT_VERSION,
            seq,
            t_ms: seq,
            event: Event::Delivered {
                file: file.into(),
                txid: None,
                node: "node-1".into(),
                session: Some("{s}".into()),
                len: 4,
                hash: 7,
                effect: true,
            },
        }
    }

    #[test]
    fn deliveries_of_files_not_followed_are_counted_but_by_a_streaming_tracker() {
        let mut t = Tracker::new(false);
        t.register("j1", "/upload/a.bin", "c1");
        t.observe(&delivered(0, "/upload/a.bin"));
        t.observe(&delivered(1, "/upload/rogue.bin"));
        t.observe(&delivered(2, "/elsewhere"));
        assert_eq!(t.untracked_deliveries(), 2);
        assert_eq!(t.file("/upload/a.bin").map(|f| f.deliveries.len()), Some(1));
        // A streaming tracker counts a forgotten file's delivery as late, in its tally.
        let mut s = Tracker::new(false).streaming(1_000, false);
        s.observe(&delivered(0, "/upload/gone.bin"));
        s.observe(&delivered(1, "/elsewhere"));
        assert_eq!(s.untracked_deliveries(), 0);
        assert_eq!(s.tally_all(false).late_deliveries, 1);
    }

    #[test]
    fn a_file_is_hot_from_its_first_touch_to_its_end_and_found_either_way() {
        let mut f = Files::default();
        f.insert(track("j1", "/a"));
        f.insert(track("j2", "/b"));
        assert!(f.hot.is_empty(), "registered files start cold");
        assert_eq!(f.file_of_job("j1").as_deref(), Some("/a"));
        f.get_mut("/a").expect("followed").trouble = true;
        assert!(f.hot.contains_key("/a") && f.paths.contains_key("/a"));
        assert_eq!(
            f.hot_jobs
                .get("j1")
                .and_then(|&i| f.slot(i))
                .map(|t| t.file.as_str()),
            Some("/a")
        );
        assert!(
            f.get("/a").is_some_and(|t| t.trouble),
            "a hot file keeps its changes"
        );
        f.cool("/a");
        assert!(f.hot.is_empty() && f.hot_jobs.is_empty());
        assert!(
            f.get("/a").is_some_and(|t| t.trouble),
            "a cooled file keeps its changes"
        );
        assert_eq!(f.file_of_job("j1").as_deref(), Some("/a"));
        let mut all: Vec<&str> = f.all().map(|t| t.file.as_str()).collect();
        all.sort_unstable();
        assert_eq!(all, ["/a", "/b"]);
        f.get_mut("/b");
        assert!(f.remove("/b").is_some());
        assert!(!f.contains("/b") && f.file_of_job("j2").is_none() && f.hot_jobs.is_empty());
        assert!(f.get_mut("/none").is_none());
        // A forgotten file's slot goes to the next file, which is found by its own names.
        f.insert(track("j3", "/c"));
        assert_eq!(f.slots.len(), 2, "the freed slot was reused");
        assert_eq!(f.file_of_job("j3").as_deref(), Some("/c"));
        assert!(f.get("/b").is_none() && f.get("/c").is_some_and(|t| t.job == "j3"));
        // Registering a path again replaces its track, cold.
        f.get_mut("/c");
        f.insert(track("j4", "/c"));
        assert!(f.hot.is_empty() && f.hot_jobs.is_empty());
        assert_eq!(f.get("/c").map(|t| t.job.as_str()), Some("j4"));
        assert_eq!(f.all().count(), 2);
        // The replaced track's job names nothing, even once the slot holds another file.
        assert!(f.file_of_job("j3").is_none());
        assert!(f.remove("/c").is_some());
        f.insert(track("j5", "/d"));
        assert!(f.file_of_job("j3").is_none() && f.file_of_job("j4").is_none());
        assert_eq!(f.file_of_job("j5").as_deref(), Some("/d"));
    }
}
