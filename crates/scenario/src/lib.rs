//! Scenarios: the file format ([`spec`]), loading ([`load`], with [`overrides`] and the shipped
//! [`catalog`]), typed fault rules ([`rule`]), the simulated farm ([`farm`]) and the harness that
//! carries the rules out ([`fault`]), the event log ([`log`]), per-file tracking ([`track`]), the
//! checker ([`check`]: totals, causal chains, invariants, expectations), its results
//! ([`summary`], [`metrics`]) and number formatting ([`text`]).
//!
//! Module dependencies run one way (no cycles): `spec` ← `load` ← `rule` ← `fault` ← `farm` ←
//! `check` → `summary` → `metrics`, `text`.

pub mod advice;
pub mod batch;
pub mod catalog;
pub mod check;
pub mod control;
pub mod data;
pub mod dist;
pub mod expect;
pub mod failure;
pub mod farm;
pub mod fault;
pub mod live;
pub mod load;
pub mod log;
pub mod metrics;
pub mod overrides;
pub mod rates;
pub mod rule;
pub mod spec;
pub mod stores;
pub mod summary;
pub mod text;
pub mod track;

pub use load::{LoadError, load_path, load_str};
pub use spec::Scenario;
