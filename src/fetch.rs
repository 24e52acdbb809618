//! How the CLI fetches remote actions, reusable workflows and GitLab includes: the fetch
//! layer configured from the environment and the global flags, once per process.

use std::path::Path;
use std::sync::OnceLock;

use ci_engine::vcs::fetch::{FetchConfig, FetchMode, Fetcher};
use clap::Args;

/// Flags of every command that reads CI files.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// Use only what earlier runs fetched (remote actions, includes); never the network.
    /// Also GANTRY_OFFLINE=1.
    #[arg(long, global = true, conflicts_with = "refresh")]
    offline: bool,
    /// Fetch remote actions and includes again, ignoring the cache.
    #[arg(long, global = true)]
    refresh: bool,
    /// GitHub (or GitHub Enterprise, Forgejo) URL actions are cloned from:
    /// URL/owner/repo; any git URL scheme. Also GANTRY_GITHUB_URL.
    #[arg(long, global = true, value_name = "URL")]
    github_url: Option<String>,
    /// GitLab URL for include:project, include:template and components. Also
    /// GANTRY_GITLAB_URL, else CI_SERVER_URL.
    #[arg(long, global = true, value_name = "URL")]
    gitlab_url: Option<String>,
    /// CircleCI URL registry orbs are fetched from (its GraphQL API). Also
    /// GANTRY_CIRCLECI_URL; default https://circleci.com.
    #[arg(long, global = true, value_name = "URL")]
    circleci_url: Option<String>,
    /// CircleCI: a registry orb's source from a local file or directory (holding orb.yml),
    /// e.g. `circleci/node@5.1.0=vendor/node-orb`; repeatable.
    #[arg(long = "orb-dir", global = true, value_name = "ORB=PATH", value_parser = crate::plan::key_value)]
    orb_dirs: Vec<(String, String)>,
}

static FETCHER: OnceLock<Fetcher> = OnceLock::new();
static ORB_DIRS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// The CircleCI orb sources named with `--orb-dir`: reference → YAML text.
pub fn orbs() -> anyhow::Result<indexmap::IndexMap<String, String>> {
    let mut out = indexmap::IndexMap::new();
    for (orb, path) in ORB_DIRS.get().into_iter().flatten() {
        let path = Path::new(path);
        let file = if path.is_dir() {
            ["orb.yml", "@orb.yml", "orb.yaml"]
                .iter()
                .map(|f| path.join(f))
                .find(|f| f.is_file())
                .ok_or_else(|| {
                    anyhow::anyhow!("--orb-dir {orb}={}: no orb.yml in it", path.display())
                })?
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("--orb-dir {orb}={}: {e}", file.display()))?;
        out.insert(orb.clone(), text);
    }
    Ok(out)
}

/// Sets the process's fetch layer from the environment and the flags.
pub fn configure(args: &FetchArgs) {
    let mut config = FetchConfig::from_env();
    if args.offline {
        config.mode = FetchMode::Offline;
    } else if args.refresh {
        config.mode = FetchMode::Refresh;
    }
    if let Some(u) = &args.github_url {
        config.github_url = u.clone();
    }
    if let Some(u) = &args.gitlab_url {
        config.gitlab_url = u.clone();
    }
    if let Some(u) = &args.circleci_url {
        config.circleci_url = u.clone();
    }
    let _ = FETCHER.set(Fetcher::new(config));
    let _ = ORB_DIRS.set(args.orb_dirs.clone());
}

/// The process's fetch layer.
pub fn fetcher() -> Fetcher {
    FETCHER
        .get_or_init(|| Fetcher::new(FetchConfig::from_env()))
        .clone()
}

/// GitLab includes of a file in the repository at `root`, fetched where they are remote;
/// an include that cannot be had is a warning (lint, plans).
pub fn includes(root: &Path) -> ci_engine::FetchingIncludes {
    ci_engine::FetchingIncludes::new(
        ci_engine::config::gitlab::LocalIncludes::new(root),
        Some(fetcher()),
    )
}
