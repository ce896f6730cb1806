//! Scenarios: the file format ([`spec`]), loading ([`load`]), expectations ([`expect`]).

pub mod expect;
pub mod load;
pub mod spec;

pub use load::{LoadError, load_path, load_str};
pub use spec::Scenario;
