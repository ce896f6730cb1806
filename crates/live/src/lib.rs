//! Real sockets for the live modes (`farm`; `proxy` shares [`Picker`]): where the simulator
//! has `sim::Net`, these run over TCP with the OS clock.
//!
//! [`Balancer`] is an L4 load balancer: it accepts on one address and forwards each connection,
//! whole, to one member picked per connection with the simulator's policies (round-robin,
//! random, least-connections, source-affinity). A member can be taken down the two ways the
//! simulator knows: killed (its connections are reset, new ones go elsewhere or are refused) or
//! powered off (its connections go silent: the client learns only from its own timeout). One
//! balancer per node with a single member stands in front of each node's own address, so
//! connections that follow a `BITS-Host-Id` can be cut too.
//!
//! Bytes are forwarded socket to socket inside the kernel on Linux (`splice(2)` through a pipe
//! per direction), through copy buffers elsewhere (`relay.rs`).
//!
//! **Invariants.** Every forwarded connection is a task the balancer owns; memory per
//! connection is two fixed pipes or copy buffers (256 KiB toward the member, 16 KiB back);
//! connecting to a member has a timeout; accept errors
//! that concern one connection or a passing lack of resources (`EMFILE`, ...) are waited out
//! (`transport::tcp::accept_patiently`), never the end of the balancer.

mod balancer;
mod relay;

pub use balancer::{Balancer, CONNECT_TIMEOUT, Picker};
