//! GitHub's filter-pattern cheat sheet as a table: pattern(s), names that match, names that
//! do not.

use ci_vcs::filter::{EventFilters, FilterError, GitRef, Globs, Patterns};

#[test]
fn github_filter_pattern_cheat_sheet() {
    // (patterns, matching, not matching) — from GitHub's "Filter pattern cheat sheet".
    let table: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["feature/*"],
            &["feature/my-branch", "feature/your-branch"],
            &["feature/a/b", "feature"],
        ),
        (
            &["feature/**"],
            &[
                "feature/beta-a/my-branch",
                "feature/your-branch",
                "feature/mona/the/octocat",
            ],
            &["features/x"],
        ),
        (
            &["main", "releases/mona-the-octocat"],
            &["main", "releases/mona-the-octocat"],
            &["main2", "releases/other"],
        ),
        (&["*"], &["main", "releases"], &["releases/x"]),
        (&["**"], &["all/the/branches", "every/tag"], &[]),
        (
            &["*feature"],
            &["mona-feature", "feature", "ver-10-feature"],
            &["feature-x"],
        ),
        (&["v2*"], &["v2", "v2.0", "v2.9"], &["v1"]),
        (
            &["v[12].[0-9]+.[0-9]+"],
            &["v1.10.1", "v2.0.0"],
            &["v3.0.0", "v1.1"],
        ),
        (
            &["**.js"],
            &["app.js", "index.js", "src/js/app.js"],
            &["app.ts"],
        ),
        (
            &["docs/*"],
            &["docs/README.md", "docs/file.txt"],
            &["docs/a/b.md"],
        ),
        (
            &["docs/**"],
            &["docs/README.md", "docs/mona/octocat.txt"],
            &["README.md"],
        ),
        (
            &["docs/**/*.md"],
            &[
                "docs/README.md",
                "docs/mona/hello-world.md",
                "docs/a/markdown/file.md",
            ],
            &["docs/a.txt"],
        ),
        (
            &["**/docs/**"],
            &[
                "docs/hello.md",
                "dir/docs/my-file.txt",
                "space/docs/plan/space.doc",
            ],
            &["documents/x"],
        ),
        (
            &["**/README.md"],
            &["README.md", "js/README.md"],
            &["README.mdx"],
        ),
        (
            &["**/*src/**"],
            &["a/src/app.js", "my-src/code/js/app.js"],
            &["src2/x"],
        ),
        (
            &["**/*-post.md"],
            &["my-post.md", "path/their-post.md"],
            &["post.md"],
        ),
        (
            &["**/migrate-*.sql"],
            &[
                "migrate-10909.sql",
                "db/migrate-v1.0.sql",
                "db/sept/migrate-v1.sql",
            ],
            &["migrate.sql"],
        ),
        (
            &["*.md", "!README.md"],
            &["hello.md"],
            &["README.md", "docs/hello.md"],
        ),
        (
            &["*.md", "!README.md", "README*"],
            &["hello.md", "README.md", "README.doc"],
            &[],
        ),
        (
            &["releases/**", "!releases/**-alpha"],
            &["releases/beta/3-alpha2", "releases/v1"],
            &["releases/beta/3-alpha"],
        ),
        (&["!main"], &[], &["main", "dev"]),
        (&["a?b"], &["ab", "b"], &["aab"]),
        (&["ab+c"], &["abc", "abbbc"], &["ac"]),
        (
            &["path with space/**"],
            &["path with space/ünïcødé.txt"],
            &["path/with"],
        ),
    ];
    let mut failures = Vec::new();
    for (patterns, yes, no) in table {
        let p = Patterns::new(patterns).expect("valid patterns");
        for name in *yes {
            if !p.matches(name) {
                failures.push(format!("{patterns:?} should match {name}"));
            }
        }
        for name in *no {
            if p.matches(name) {
                failures.push(format!("{patterns:?} should not match {name}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn list(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

#[test]
fn event_filters_follow_githubs_rules() {
    let branches_only = EventFilters {
        branches: list(&["main"]),
        ..Default::default()
    };
    assert!(branches_only.allows(GitRef::Branch("main"), None).unwrap());
    assert!(!branches_only.allows(GitRef::Branch("dev"), None).unwrap());
    // Only branch filters: tag pushes do not run, and the other way round.
    assert!(!branches_only.allows(GitRef::Tag("v1"), None).unwrap());
    let tags_only = EventFilters {
        tags: list(&["v*"]),
        ..Default::default()
    };
    assert!(tags_only.allows(GitRef::Tag("v1"), None).unwrap());
    assert!(!tags_only.allows(GitRef::Branch("main"), None).unwrap());
    let ignore = EventFilters {
        branches_ignore: list(&["wip/**"]),
        ..Default::default()
    };
    assert!(!ignore.allows(GitRef::Branch("wip/x"), None).unwrap());
    assert!(ignore.allows(GitRef::Branch("main"), None).unwrap());
    // No filters: everything runs.
    assert!(EventFilters::default()
        .allows(GitRef::Tag("x"), None)
        .unwrap());
}

#[test]
fn path_filters_need_changed_files() {
    let paths = EventFilters {
        paths: list(&["src/**", "!src/**/*.md"]),
        ..Default::default()
    };
    assert_eq!(
        paths.allows(GitRef::Branch("main"), None),
        Err(FilterError::NeedsChangedPaths)
    );
    let changed = |files: &[&str]| files.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(paths
        .allows(GitRef::Branch("main"), Some(&changed(&["src/a.rs"])))
        .unwrap());
    assert!(!paths
        .allows(
            GitRef::Branch("main"),
            Some(&changed(&["src/a.md", "README"]))
        )
        .unwrap());
    let ignore = EventFilters {
        paths_ignore: list(&["docs/**"]),
        ..Default::default()
    };
    assert!(!ignore
        .allows(
            GitRef::Branch("main"),
            Some(&changed(&["docs/a", "docs/b"]))
        )
        .unwrap());
    assert!(ignore
        .allows(GitRef::Branch("main"), Some(&changed(&["docs/a", "src/b"])))
        .unwrap());
    // Branch and path filters must both pass.
    let both = EventFilters {
        branches: list(&["main"]),
        paths: list(&["src/**"]),
        ..Default::default()
    };
    assert!(!both
        .allows(GitRef::Branch("dev"), Some(&changed(&["src/a"])))
        .unwrap());
}

#[test]
fn gitlab_globs() {
    let g = Globs::new(&["src/**/*.rs", "{Cargo.toml,Cargo.lock}", "docs/*.md"]).unwrap();
    assert!(g.any_match(&["src/lib.rs"]));
    assert!(g.any_match(&["src/a/b/c.rs"]));
    assert!(g.any_match(&["Cargo.lock"]));
    assert!(!g.any_match(&["docs/a/b.md", "README.md"]));
    assert!(Globs::new(&["src/[a"]).is_err());
}
