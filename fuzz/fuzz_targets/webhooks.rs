#![no_main]

use ci_vcs::webhook::{parse, Forge, WebhookConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the forge and whether a secret is set; the rest is the body.
    let Some((&selector, body)) = data.split_first() else { return };
    let forge = [Forge::GitHub, Forge::GitLab, Forge::Gitea, Forge::Forgejo][usize::from(selector % 4)];
    let config = WebhookConfig { secret: (selector & 4 != 0).then(|| b"secret".to_vec()), ..Default::default() };
    let event = ["push", "pull_request", "ping", "Push Hook", "Merge Request Hook"][usize::from(selector / 8 % 5)];
    let headers = [
        ("X-GitHub-Event", event),
        ("X-Gitlab-Event", event),
        ("X-Gitea-Event", event),
        ("X-Forgejo-Event", event),
        ("X-Hub-Signature-256", "sha256=00"),
        ("X-Gitlab-Token", "secret"),
    ];
    let _ = parse(forge, &headers, body, &config);
});
