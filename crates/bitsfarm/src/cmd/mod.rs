//! One module per subcommand.

pub mod scenario;
pub mod serve;
pub mod upload;
