//! The bubblewrap executor: each step runs as a host process inside a `bwrap` sandbox.
//!
//! What a step sees: the host's `/usr` (and the `/bin`, `/lib*` links into it) and `/etc`
//! read-only, the job's workspace and the engine's per-job directories read-write at their
//! own paths, a private `/tmp`, fresh `/proc` and `/dev`, and an environment made only of
//! `PATH`, `HOME=/tmp`, `LANG` and what the job sets. It runs in new user, PID, IPC, UTS,
//! mount and cgroup namespaces, and without a network unless the job asks for one
//! ([`JobSpec::network`]). `--die-with-parent` and the PID namespace take the whole process
//! tree down when the step ends, times out or is cancelled: nothing a step starts outlives it
//! (unlike the host executor, background processes do not carry over to later steps).
//!
//! [`BwrapExecutor::available`] probes the sandbox once and, where user namespaces are blocked,
//! says exactly what to change.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::executor::{Capabilities, ExecError, Executor, JobEnvironment};
use crate::host::{HostExecutor, Sandbox};
use crate::spec::JobSpec;

/// Runs steps in bubblewrap sandboxes.
#[derive(Debug, Clone)]
pub struct BwrapExecutor {
    /// The `bwrap` program.
    pub bwrap: PathBuf,
    /// Further host paths steps may read (a toolchain under `/opt`, say).
    pub read_only: Vec<PathBuf>,
    /// Process handling (grace period, output draining) as on the host.
    pub host: HostExecutor,
}

impl Default for BwrapExecutor {
    fn default() -> Self {
        BwrapExecutor {
            bwrap: PathBuf::from("bwrap"),
            read_only: Vec::new(),
            host: HostExecutor::default(),
        }
    }
}

impl BwrapExecutor {
    /// `bwrap` from `PATH`.
    pub fn new() -> Self {
        BwrapExecutor::default()
    }

    /// Lets steps read another host path.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_only.push(path.into());
        self
    }
}

/// The `PATH` inside the sandbox.
const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Profile {
    bwrap: PathBuf,
    read_only: Vec<PathBuf>,
}

impl Sandbox for Profile {
    fn wrap(&self, job: &JobSpec, scripts: &Path, workdir: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |parts: &[&dyn AsRef<std::ffi::OsStr>]| {
            a.extend(parts.iter().map(|p| p.as_ref().to_owned()));
        };
        push(&[
            &self.bwrap,
            &"--die-with-parent",
            &"--new-session",
            &"--unshare-all",
        ]);
        if job.network {
            push(&[&"--share-net"]);
        }
        push(&[&"--hostname", &"gantry"]);
        push(&[&"--ro-bind", &"/usr", &"/usr"]);
        // Merged-/usr systems link /bin, /lib… into /usr: the same links inside; else binds.
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let path = Path::new(top);
            match std::fs::read_link(path) {
                Ok(target) => push(&[&"--symlink", &target, &path]),
                Err(_) if path.is_dir() => push(&[&"--ro-bind", &path, &path]),
                Err(_) => {}
            }
        }
        push(&[&"--ro-bind", &"/etc", &"/etc"]);
        if job.network {
            // /etc/resolv.conf may point into /run (systemd-resolved).
            push(&[
                &"--ro-bind-try",
                &"/run/systemd/resolve",
                &"/run/systemd/resolve",
            ]);
        }
        push(&[&"--proc", &"/proc", &"--dev", &"/dev", &"--tmpfs", &"/tmp"]);
        for p in &self.read_only {
            push(&[&"--ro-bind-try", p, p]);
        }
        // Binds after the tmpfs, so that a workspace under /tmp is seen through it.
        push(&[&"--bind", &job.workspace, &job.workspace]);
        push(&[&"--bind", &scripts, &scripts]);
        for m in &job.mounts {
            push(&[&"--bind-try", m, m]);
        }
        push(&[&"--chdir", &workdir, &"--"]);
        a
    }

    fn base_env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), SANDBOX_PATH.into()),
            ("HOME".into(), "/tmp".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ]
    }
}

/// Why user namespaces are unavailable here, and what to change.
fn diagnose(stderr: &str) -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let mut advice = Vec::new();
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        advice.push(
            "AppArmor restricts unprivileged user namespaces: run \
             `sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or give bwrap an AppArmor \
             profile with `userns,` (Ubuntu 24.04 ships one in the apparmor package: \
             /etc/apparmor.d/bwrap-userns-restrict)",
        );
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        advice.push("user namespaces are disabled: run `sysctl user.max_user_namespaces=15000`");
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        advice.push(
            "unprivileged user namespaces are off: run `sysctl kernel.unprivileged_userns_clone=1`",
        );
    }
    let in_container = Path::new("/.dockerenv").exists()
        || read("/proc/1/cgroup").is_some_and(|c| c.contains("docker") || c.contains("kubepods"));
    if in_container {
        advice.push(
            "this looks like a container, whose seccomp profile blocks namespaces: start it with \
             `--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (or give the \
             pod `securityContext.seccompProfile.type: Unconfined`)",
        );
    }
    if advice.is_empty() {
        advice.push("check that bwrap can create user namespaces here (`bwrap --unshare-all --ro-bind / / true`)");
    }
    format!(
        "bubblewrap cannot make a sandbox: {}; {}",
        stderr.trim(),
        advice.join("; ")
    )
}

fn unavailable(reason: String) -> ExecError {
    ExecError::Unavailable {
        executor: "bwrap".into(),
        reason,
    }
}

#[async_trait::async_trait]
impl Executor for BwrapExecutor {
    fn name(&self) -> &str {
        "bwrap"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::host()
    }

    async fn available(&self) -> Result<(), ExecError> {
        let probe = tokio::process::Command::new(&self.bwrap)
            .args([
                "--die-with-parent",
                "--unshare-all",
                "--ro-bind",
                "/",
                "/",
                "--",
                "true",
            ])
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .output()
            .await;
        match probe {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(unavailable(format!(
                "{} is not installed (Debian/Ubuntu: apt-get install bubblewrap)",
                self.bwrap.display()
            ))),
            Err(e) => Err(unavailable(format!("{}: {e}", self.bwrap.display()))),
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(unavailable(diagnose(&String::from_utf8_lossy(&out.stderr)))),
        }
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnvironment>, ExecError> {
        let profile = Profile {
            bwrap: self.bwrap.clone(),
            read_only: self.read_only.clone(),
        };
        self.host.prepare_sandboxed(job, Arc::new(profile))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_diagnosis_names_the_error_and_a_fix() {
        let said = super::diagnose("bwrap: No permissions to create new namespace");
        assert!(
            said.contains("No permissions to create new namespace"),
            "{said}"
        );
        assert!(
            said.contains("sysctl") || said.contains("seccomp") || said.contains("check that"),
            "{said}"
        );
    }
}
