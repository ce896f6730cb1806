//! One module per subcommand.

pub mod bench;
pub mod scenario;
pub mod serve;
pub mod upload;
