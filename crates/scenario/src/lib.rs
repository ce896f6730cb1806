//! Scenarios: the file format ([`spec`]), loading ([`load`]), expectations ([`expect`]), the
//! simulated farm ([`farm`]) with its fault rules ([`fault`]), the event log ([`log`]), per-file
//! tracking ([`track`]).

pub mod catalog;
pub mod check;
pub mod data;
pub mod expect;
pub mod farm;
pub mod fault;
pub mod load;
pub mod log;
pub mod overrides;
pub mod rule;
pub mod spec;
pub mod summary;
pub mod track;

pub use load::{LoadError, load_path, load_str};
pub use spec::Scenario;
