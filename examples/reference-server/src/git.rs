//! Local mirrors of the repositories the server builds: [`ci_vcs::mirror`].

pub use ci_engine::vcs::mirror::Mirrors;
