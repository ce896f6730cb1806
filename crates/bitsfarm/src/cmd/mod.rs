//! One module per subcommand.

pub mod bench;
pub mod explore;
pub mod farm;
pub mod probe;
pub mod proxy;
pub mod report;
pub mod runs;
pub mod scenario;
pub mod serve;
pub mod sweep;
pub mod upload;
