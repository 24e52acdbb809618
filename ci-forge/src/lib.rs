//! Gantry as a forge's runner: the forge dispatches jobs, Gantry runs them with its engine
//! and executors and reports back over the forge's runner protocol. The protocols live here;
//! the engine does not know them.
//!
//! - [`forgejo`] (feature `forgejo`): Forgejo and Gitea Actions (runner.v1).

#[cfg(feature = "forgejo")]
pub mod forgejo;
