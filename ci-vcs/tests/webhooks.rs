//! Webhook deliveries in each forge's documented shape: signatures accepted and refused,
//! tampering detected, typed errors, and no panic on any input.

use ci_vcs::webhook::{self, Delivery, Forge, WebhookConfig, WebhookError};
use ci_vcs::EventKind;
use proptest::prelude::*;

const SECRET: &[u8] = b"It's a Secret to Everybody";

fn config() -> WebhookConfig {
    WebhookConfig {
        secret: Some(SECRET.to_vec()),
        ..Default::default()
    }
}

const GITHUB_PUSH: &str = r#"{
  "ref": "refs/heads/main",
  "before": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "repository": {"id": 1296269, "name": "Hello-World", "full_name": "octocat/Hello-World",
                 "owner": {"login": "octocat"}, "default_branch": "main",
                 "html_url": "https://github.com/octocat/Hello-World"},
  "pusher": {"name": "octocat", "email": "octocat@github.com"},
  "sender": {"login": "octocat"},
  "head_commit": {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Update README.md"}
}"#;

const GITHUB_PR: &str = r#"{
  "action": "synchronize",
  "number": 42,
  "pull_request": {"title": "Fix it", "head": {"ref": "fix", "sha": "aaaa"}, "base": {"ref": "main", "sha": "bbbb"}},
  "repository": {"name": "Hello-World", "full_name": "octocat/Hello-World", "owner": {"login": "octocat"}},
  "sender": {"login": "hubot"}
}"#;

const GITLAB_TAG_PUSH: &str = r#"{
  "object_kind": "tag_push",
  "ref": "refs/tags/v1.0.0",
  "before": "0000000000000000000000000000000000000000",
  "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
  "checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
  "user_username": "jsmith",
  "project": {"name": "Example", "namespace": "Jsmith", "path_with_namespace": "jsmith/example",
              "default_branch": "master", "web_url": "http://example.com/jsmith/example"},
  "commits": []
}"#;

const GITLAB_MR: &str = r#"{
  "object_kind": "merge_request",
  "user": {"username": "root"},
  "project": {"name": "Gitlab Test", "namespace": "gitlabhq", "path_with_namespace": "gitlabhq/gitlab-test", "default_branch": "master"},
  "object_attributes": {"iid": 1, "action": "open", "title": "MS-Viewport", "source_branch": "ms-viewport",
                        "target_branch": "master", "last_commit": {"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "message": "fixed readme"}}
}"#;

const GITEA_PUSH: &str = r#"{
  "ref": "refs/heads/develop",
  "before": "28e1879d029cb852e4844d9c718537df08844e03",
  "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
  "commits": [{"id": "bffeb74224043ba2feb48d137756c8a9331c449a", "message": "Webhooks Yay!"}],
  "repository": {"id": 140, "owner": {"login": "gitea", "username": "gitea"}, "name": "webhooks",
                 "full_name": "gitea/webhooks", "default_branch": "master"},
  "pusher": {"login": "gitea", "username": "gitea"},
  "sender": {"login": "gitea", "username": "gitea"}
}"#;

fn github(event: &str, body: &str, signature: Option<&str>) -> Result<Delivery, WebhookError> {
    let mut headers = vec![("X-GitHub-Event", event), ("X-GitHub-Delivery", "72d3162e")];
    if let Some(s) = signature {
        headers.push(("X-Hub-Signature-256", s));
    }
    webhook::parse(Forge::GitHub, &headers, body.as_bytes(), &config())
}

fn event(d: Result<Delivery, WebhookError>) -> ci_vcs::Event {
    match d {
        Ok(Delivery::Event(e)) => *e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn github_push_with_a_good_signature() {
    let sig = webhook::sign_github(SECRET, GITHUB_PUSH.as_bytes());
    let e = event(github("push", GITHUB_PUSH, Some(&sig)));
    assert_eq!(e.kind, EventKind::Push);
    assert_eq!(e.git_ref, "refs/heads/main");
    assert_eq!(e.sha, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    assert_eq!(e.repository.full_name, "octocat/Hello-World");
    assert_eq!(e.actor, "octocat");
    assert_eq!(e.message.as_deref(), Some("Update README.md"));
}

#[test]
fn github_signature_is_known_vector() {
    // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
    assert_eq!(
        webhook::sign_github(SECRET, b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn github_pull_request_and_ping() {
    let sig = webhook::sign_github(SECRET, GITHUB_PR.as_bytes());
    let e = event(github("pull_request", GITHUB_PR, Some(&sig)));
    assert_eq!(
        e.kind,
        EventKind::PullRequest {
            action: "synchronize".into(),
            number: 42
        }
    );
    assert_eq!(e.git_ref, "refs/pull/42/merge");
    assert_eq!(
        (e.head_ref.as_deref(), e.base_ref.as_deref()),
        (Some("fix"), Some("main"))
    );
    let ping = r#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
    let sig = webhook::sign_github(SECRET, ping.as_bytes());
    assert_eq!(github("ping", ping, Some(&sig)), Ok(Delivery::Ping));
}

#[test]
fn github_bad_signatures_are_refused() {
    let good = webhook::sign_github(SECRET, GITHUB_PUSH.as_bytes());
    assert_eq!(
        github("push", GITHUB_PUSH, None),
        Err(WebhookError::MissingSignature("X-Hub-Signature-256"))
    );
    let wrong = webhook::sign_github(b"another secret", GITHUB_PUSH.as_bytes());
    assert_eq!(
        github("push", GITHUB_PUSH, Some(&wrong)),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        github("push", GITHUB_PUSH, Some(&good[..good.len() - 2])),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        github(
            "push",
            GITHUB_PUSH,
            Some(good.trim_start_matches("sha256="))
        ),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        github("push", GITHUB_PUSH, Some("sha256=zz")),
        Err(WebhookError::BadSignature)
    );
    let tampered = GITHUB_PUSH.replace("refs/heads/main", "refs/heads/evil");
    assert_eq!(
        github("push", &tampered, Some(&good)),
        Err(WebhookError::BadSignature)
    );
    let err = github("push", GITHUB_PUSH, Some(&wrong)).unwrap_err();
    assert_eq!(err.status(), 401);
}

#[test]
fn typed_errors_for_size_json_and_events() {
    let cfg = WebhookConfig {
        secret: None,
        max_body: 10,
    };
    let big = webhook::parse(
        Forge::GitHub,
        &[("X-GitHub-Event", "push")],
        GITHUB_PUSH.as_bytes(),
        &cfg,
    );
    assert_eq!(big, Err(WebhookError::TooLarge { limit: 10 }));
    assert_eq!(big.unwrap_err().status(), 413);
    let open = WebhookConfig::default();
    let bad = webhook::parse(
        Forge::GitHub,
        &[("X-GitHub-Event", "push")],
        b"{not json",
        &open,
    )
    .unwrap_err();
    assert!(matches!(bad, WebhookError::Malformed(_)));
    assert_eq!(bad.status(), 400);
    let missing =
        webhook::parse(Forge::GitHub, &[("X-GitHub-Event", "push")], b"{}", &open).unwrap_err();
    assert!(matches!(missing, WebhookError::Malformed(_)), "{missing:?}");
    let unsupported =
        webhook::parse(Forge::GitHub, &[("X-GitHub-Event", "issues")], b"{}", &open).unwrap_err();
    assert_eq!(unsupported, WebhookError::Unsupported("issues".into()));
    assert_eq!(unsupported.status(), 202);
    let no_event = webhook::parse(Forge::GitHub, &[], b"{}", &open).unwrap_err();
    assert_eq!(no_event.status(), 400);
}

#[test]
fn gitlab_token_and_events() {
    let secret = std::str::from_utf8(SECRET).unwrap();
    let tag = webhook::parse(
        Forge::GitLab,
        &[
            ("X-Gitlab-Event", "Tag Push Hook"),
            ("X-Gitlab-Token", secret),
        ],
        GITLAB_TAG_PUSH.as_bytes(),
        &config(),
    );
    let e = event(tag);
    assert_eq!(e.git_ref, "refs/tags/v1.0.0");
    assert_eq!(e.ref_type(), "tag");
    assert_eq!(e.repository.full_name, "jsmith/example");
    assert_eq!(
        e.gitlab_variables(&Default::default())["CI_COMMIT_TAG"],
        "v1.0.0"
    );
    let mr = event(webhook::parse(
        Forge::GitLab,
        &[
            ("x-gitlab-event", "Merge Request Hook"),
            ("x-gitlab-token", secret),
        ],
        GITLAB_MR.as_bytes(),
        &config(),
    ));
    assert_eq!(
        mr.kind,
        EventKind::PullRequest {
            action: "opened".into(),
            number: 1
        }
    );
    assert_eq!(mr.base_ref.as_deref(), Some("master"));
    for token in [None, Some("wrong"), Some("It's a Secret to Everybod")] {
        let mut headers = vec![("X-Gitlab-Event", "Push Hook")];
        if let Some(t) = token {
            headers.push(("X-Gitlab-Token", t));
        }
        let r = webhook::parse(
            Forge::GitLab,
            &headers,
            GITLAB_TAG_PUSH.as_bytes(),
            &config(),
        );
        assert_eq!(r.unwrap_err().status(), 401, "{token:?}");
    }
}

#[test]
fn gitea_and_forgejo_signatures() {
    let sig = webhook::sign_hex(SECRET, GITEA_PUSH.as_bytes());
    let gitea = event(webhook::parse(
        Forge::Gitea,
        &[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &sig)],
        GITEA_PUSH.as_bytes(),
        &config(),
    ));
    assert_eq!(gitea.git_ref, "refs/heads/develop");
    assert_eq!(gitea.message.as_deref(), Some("Webhooks Yay!"));
    assert_eq!(gitea.repository.owner, "gitea");
    let forgejo = webhook::parse(
        Forge::Forgejo,
        &[("X-Forgejo-Event", "push"), ("X-Forgejo-Signature", &sig)],
        GITEA_PUSH.as_bytes(),
        &config(),
    );
    assert!(matches!(forgejo, Ok(Delivery::Event(_))));
    let tampered = GITEA_PUSH.replace("develop", "main");
    let refused = webhook::parse(
        Forge::Forgejo,
        &[("X-Forgejo-Event", "push"), ("X-Forgejo-Signature", &sig)],
        tampered.as_bytes(),
        &config(),
    );
    assert_eq!(refused, Err(WebhookError::BadSignature));
}

proptest! {
    #[test]
    fn random_deliveries_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        event in "[a-z_ ]{0,12}",
        sig in "[a-z0-9=]{0,80}",
        forge in prop::sample::select(vec![Forge::GitHub, Forge::GitLab, Forge::Gitea, Forge::Forgejo]),
        with_secret in any::<bool>(),
    ) {
        let cfg = WebhookConfig { secret: with_secret.then(|| SECRET.to_vec()), ..Default::default() };
        let headers = [
            ("X-GitHub-Event", event.as_str()), ("X-Gitlab-Event", event.as_str()),
            ("X-Gitea-Event", event.as_str()), ("X-Forgejo-Event", event.as_str()),
            ("X-Hub-Signature-256", sig.as_str()), ("X-Gitlab-Token", sig.as_str()),
            ("X-Gitea-Signature", sig.as_str()),
        ];
        let _ = webhook::parse(forge, &headers, &body, &cfg);
    }

    #[test]
    fn json_shaped_bodies_never_panic(
        r#ref in "[a-z/]{0,20}", after in "[a-f0-9]{0,40}", number in any::<i64>(), push in any::<bool>(),
    ) {
        let body = if push {
            serde_json::json!({"ref": r#ref, "after": after, "repository": {"full_name": r#ref}}).to_string()
        } else {
            serde_json::json!({"number": number, "action": r#ref, "pull_request": {"head": {"sha": after}}}).to_string()
        };
        for forge in [Forge::GitHub, Forge::Gitea] {
            let _ = webhook::parse(forge, &[("X-GitHub-Event", if push { "push" } else { "pull_request" })], body.as_bytes(), &WebhookConfig::default());
        }
    }
}
