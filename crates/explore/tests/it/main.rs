//! The property suite: generated scenarios (proptest drives the generator's seed and shrinks
//! with `Knobs::simpler`), the canary, and what a found scenario file replays.
//!
//! `PROPTEST_CASES` sets the cases per property (default 4096); `just prop CASES` runs long.

mod canary;
mod props;
mod reach;
