//! Cache semantics of actions/cache and GitLab.

use ci_store::caches::{files_key, Caches, Policy, Saved};
use ci_store::BlobStore;

const MAIN: &str = "refs/heads/main";
const FEATURE: &str = "refs/heads/feature";
const OTHER: &str = "refs/heads/other";

fn ws(content: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("target/deps")).unwrap();
    std::fs::write(d.path().join("target/deps/lib.rlib"), content).unwrap();
    std::fs::write(d.path().join("Cargo.lock"), "lock").unwrap();
    d
}

#[tokio::test]
async fn exact_key_then_restore_prefixes_newest_first() {
    let caches = Caches::new(BlobStore::open("memory://").unwrap());
    let w = ws("v1");
    assert!(matches!(
        caches
            .save(MAIN, "linux-cargo-aaa", w.path(), &["target"])
            .await
            .unwrap(),
        Saved::Stored(_)
    ));
    std::fs::write(w.path().join("target/deps/lib.rlib"), "v2").unwrap();
    caches
        .save(MAIN, "linux-cargo-bbb", w.path(), &["target"])
        .await
        .unwrap();
    let hit = caches
        .lookup(MAIN, MAIN, "linux-cargo-ccc", &["linux-cargo-", "linux-"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((hit.key.as_str(), hit.exact), ("linux-cargo-bbb", false));
    let exact = caches
        .lookup(MAIN, MAIN, "linux-cargo-aaa", &["linux-"])
        .await
        .unwrap()
        .unwrap();
    assert!(exact.exact);
    let target = tempfile::tempdir().unwrap();
    assert_eq!(caches.restore(&exact, target.path()).await.unwrap(), 1);
    assert_eq!(
        std::fs::read_to_string(target.path().join("target/deps/lib.rlib")).unwrap(),
        "v1"
    );
    assert!(caches
        .lookup(MAIN, MAIN, "windows-x", &["windows-"])
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn keys_are_immutable() {
    let caches = Caches::new(BlobStore::open("memory://").unwrap());
    let w = ws("first");
    caches.save(MAIN, "k", w.path(), &["target"]).await.unwrap();
    std::fs::write(w.path().join("target/deps/lib.rlib"), "second").unwrap();
    assert_eq!(
        caches.save(MAIN, "k", w.path(), &["target"]).await.unwrap(),
        Saved::Exists
    );
    let hit = caches.lookup(MAIN, MAIN, "k", &[]).await.unwrap().unwrap();
    let t = tempfile::tempdir().unwrap();
    caches.restore(&hit, t.path()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(t.path().join("target/deps/lib.rlib")).unwrap(),
        "first"
    );
}

#[tokio::test]
async fn branches_read_their_own_and_the_default_branch_caches_only() {
    let caches = Caches::new(BlobStore::open("memory://").unwrap());
    let w = ws("x");
    caches
        .save(MAIN, "main-key", w.path(), &["target"])
        .await
        .unwrap();
    caches
        .save(OTHER, "other-key", w.path(), &["target"])
        .await
        .unwrap();
    let from_default = caches
        .lookup(FEATURE, MAIN, "main-key", &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_default.scope, MAIN);
    assert!(caches
        .lookup(FEATURE, MAIN, "other-key", &["other"])
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn gitlab_fallback_keys_and_files_key() {
    let caches = Caches::new(BlobStore::open("memory://").unwrap());
    let w = ws("x");
    caches
        .save(MAIN, "fallback", w.path(), &["target"])
        .await
        .unwrap();
    let hit = caches
        .lookup_exact(FEATURE, MAIN, &["primary", "missing", "fallback"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((hit.key.as_str(), hit.exact), ("fallback", false));
    let k1 = files_key(Some("deps"), w.path(), &["Cargo.lock"]);
    std::fs::write(w.path().join("Cargo.lock"), "changed").unwrap();
    let k2 = files_key(Some("deps"), w.path(), &["Cargo.lock"]);
    assert!(k1.starts_with("deps-") && k1 != k2);
}

#[tokio::test]
async fn least_recently_used_caches_are_evicted() {
    let caches = Caches::new(BlobStore::open("memory://").unwrap());
    let w = ws(&"data".repeat(1000));
    for k in ["a", "b", "c"] {
        caches.save(MAIN, k, w.path(), &["target"]).await.unwrap();
    }
    // Using `a` makes `b` the least recently used.
    let hit = caches.lookup(MAIN, MAIN, "a", &[]).await.unwrap().unwrap();
    caches
        .restore(&hit, tempfile::tempdir().unwrap().path())
        .await
        .unwrap();
    let one = caches.lookup(MAIN, MAIN, "c", &[]).await.unwrap();
    assert!(one.is_some());
    let evicted = caches.evict(&[MAIN], 1).await.unwrap();
    assert_eq!(evicted.first().map(String::as_str), Some("b"));
    assert_eq!(
        evicted.len(),
        3,
        "a limit of one byte evicts everything, oldest use first"
    );
}

#[tokio::test]
async fn unsafe_cache_paths_are_refused() {
    let caches = Caches::new(BlobStore::open("memory://").unwrap());
    let w = ws("x");
    for bad in ["../x", "/etc"] {
        assert!(
            caches.save(MAIN, "bad", w.path(), &[bad]).await.is_err(),
            "{bad}"
        );
    }
}

#[test]
fn gitlab_policies() {
    assert_eq!(Policy::parse("pull"), Some(Policy::Pull));
    assert!(Policy::Pull.pulls() && !Policy::Pull.pushes());
    assert!(!Policy::Push.pulls() && Policy::Push.pushes());
    assert!(Policy::default().pulls() && Policy::default().pushes());
    assert_eq!(Policy::parse("sometimes"), None);
}
