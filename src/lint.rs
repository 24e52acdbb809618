//! `gantry lint`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ci_config::Diagnostic;

use crate::Format;

/// Checks the given files (or the repository's defaults) and prints the findings.
pub fn run(
    paths: &[PathBuf],
    format: Format,
    quiet: bool,
    dialect: Option<ci_config::Dialect>,
) -> Result<ExitCode> {
    let files = files(paths)?;
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut io_failed = false;
    let mut errors = 0;
    let mut warnings = 0;
    for file in &files {
        let display = file.display().to_string();
        let src = match std::fs::read_to_string(file) {
            Ok(src) => src,
            Err(e) => {
                anstream::eprintln!("error: cannot read {display}: {e}");
                io_failed = true;
                continue;
            }
        };
        let resolver = LocalWorkflows {
            root: repository_root(file),
        };
        let includes = crate::fetch::includes(&repository_root(file));
        let file_dialect = dialect.unwrap_or_else(|| ci_config::detect_dialect(&display, &src));
        let diagnostics = if file_dialect == ci_config::Dialect::CircleCi {
            let pipeline = circleci_pipeline(&src)?;
            let options = ci_config::LoadOptions {
                dialect: Some(file_dialect),
                circleci: Some(&pipeline),
                ..ci_config::LoadOptions::default()
            };
            ci_config::load(&display, &src, &options).diagnostics
        } else {
            ci_config::lint_including(&display, &src, &resolver, &includes, dialect)
        };
        for d in &diagnostics {
            if d.is_error() {
                errors += 1;
            } else {
                warnings += 1;
            }
            if format == Format::Human && (d.is_error() || !quiet) {
                anstream::println!("{}", d.render(&src, true));
            }
        }
        all.extend(diagnostics);
    }
    match format {
        Format::Json => {
            let json: Vec<_> = all.iter().map(Diagnostic::to_json).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json).context("serialising diagnostics")?
            );
        }
        Format::Human if !quiet => {
            anstream::eprintln!(
                "checked {} file{}: {errors} error{}, {warnings} warning{}",
                files.len(),
                plural(files.len()),
                plural(errors),
                plural(warnings)
            );
        }
        Format::Human => {}
    }
    Ok(if io_failed {
        ExitCode::from(2)
    } else if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `gantry lint --show-merged`: GitLab's merged configuration of each GitLab file, CircleCI's
/// compiled configuration of each CircleCI file.
pub fn show_merged(paths: &[PathBuf], dialect: Option<ci_config::Dialect>) -> Result<ExitCode> {
    let mut failed = false;
    for file in files(paths)? {
        let display = file.display().to_string();
        let src =
            std::fs::read_to_string(&file).with_context(|| format!("cannot read {display}"))?;
        let file_dialect = dialect.unwrap_or_else(|| ci_config::detect_dialect(&display, &src));
        if file_dialect == ci_config::Dialect::CircleCi {
            let parsed =
                ci_config::circleci::parse_config(&display, &src, &circleci_pipeline(&src)?);
            let has_errors = parsed.has_errors();
            match parsed.value.filter(|_| !has_errors) {
                Some(workflows) => print!("{}", ci_config::circleci::to_yaml(&workflows)),
                None => {
                    failed = true;
                    for d in parsed.diagnostics.iter().filter(|d| d.is_error()) {
                        anstream::eprintln!("{}", d.render(&src, true));
                    }
                }
            }
            continue;
        }
        if file_dialect != ci_config::Dialect::GitLabCi {
            continue;
        }
        let includes = crate::fetch::includes(&repository_root(&file));
        match ci_config::gitlab::merged_yaml(&display, &src, &includes) {
            Ok(yaml) => print!("{yaml}"),
            Err(diagnostics) => {
                failed = true;
                for d in &diagnostics {
                    anstream::eprintln!("{}", d.render(&src, true));
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The pipeline a CircleCI file is checked for: CircleCI's local defaults, with the orb
/// sources of `--orb-dir` and the registry orbs it imports, fetched (or from the cache; what
/// cannot be had stays a warning).
fn circleci_pipeline(src: &str) -> Result<ci_config::circleci::Pipeline> {
    let mut orbs = crate::fetch::orbs()?;
    let fetcher = crate::fetch::fetcher();
    for reference in ci_config::circleci::registry_orbs(src) {
        let name = reference.split('@').next().unwrap_or(&reference).to_owned();
        if orbs.contains_key(&reference) || orbs.contains_key(&name) {
            continue;
        }
        if let Ok(source) = fetcher.circleci_orb(&reference) {
            orbs.insert(reference, source);
        }
    }
    Ok(ci_config::circleci::Pipeline {
        orbs,
        ..ci_config::circleci::Pipeline::default()
    })
}

/// The files named (directories stand for their YAML files), or the repository's defaults.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let files = if paths.is_empty() {
        default_files(Path::new("."))?
    } else {
        expand(paths)?
    };
    if files.is_empty() {
        bail!("no CI files found (looked for .github/workflows/*.yml, .gitlab-ci.yml, .circleci/config.yml)");
    }
    Ok(files)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    )
}

/// The YAML files directly inside `dir`, sorted.
fn yaml_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_yaml(p))
        .collect();
    files.sort();
    Ok(files)
}

fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = yaml_files_in(path)?;
            if found.is_empty() {
                // A repository root: look where the forges look.
                files.extend(default_files(path)?);
            } else {
                files.extend(found);
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or directory", path.display());
        }
    }
    Ok(files)
}

fn default_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let workflows = root.join(".github/workflows");
    if workflows.is_dir() {
        files.extend(yaml_files_in(&workflows)?);
    }
    for candidate in [".gitlab-ci.yml", ".circleci/config.yml"] {
        let path = root.join(candidate);
        if path.is_file() {
            files.push(path);
        }
    }
    Ok(files
        .into_iter()
        .map(|p| p.strip_prefix("./").map(Path::to_path_buf).unwrap_or(p))
        .collect())
}

/// Resolves `./.github/workflows/x.yml` calls from the repository the linted file is in.
struct LocalWorkflows {
    root: PathBuf,
}

impl ci_config::github::WorkflowResolver for LocalWorkflows {
    fn resolve(&self, uses: &str) -> Option<String> {
        let relative = uses.strip_prefix("./")?;
        std::fs::read_to_string(self.root.join(relative)).ok()
    }
}

/// The nearest ancestor of `file` holding a `.github` directory (else the current directory).
pub fn repository_root(file: &Path) -> PathBuf {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    absolute
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(".github").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
