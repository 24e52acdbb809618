//! Executors named by platform targets, the words of `--platform LABEL=TARGET`, a server's
//! `[executors]` table and `agent --executor`: `host`, `bwrap`, `docker://IMAGE`,
//! `swarm://IMAGE`, `k8s://IMAGE[?settings]`. One parser, so every front end accepts the
//! same words and says the same thing about a wrong one.

use std::sync::Arc;

use crate::executor::{ExecError, Executor};

/// What a target may be (for messages).
pub const TARGETS: &str = "host, bwrap, docker://IMAGE, swarm://IMAGE or k8s://IMAGE[?settings]";

#[allow(dead_code)] // used only by builds without some executor feature
fn not_built(feature: &str, target: &str) -> ExecError {
    ExecError::Unavailable {
        executor: feature.to_owned(),
        reason: format!(
            "{target}: this build has no {feature} executor (cargo feature `{feature}`)"
        ),
    }
}

/// Makes (and checks) the executor `target` names.
pub async fn executor_for_target(target: &str) -> Result<Arc<dyn Executor>, ExecError> {
    if target == "host" {
        return Ok(Arc::new(crate::HostExecutor::default()));
    }
    if target == "bwrap" {
        #[cfg(feature = "bwrap")]
        {
            let bwrap = crate::BwrapExecutor::new();
            bwrap.available().await?;
            return Ok(Arc::new(bwrap));
        }
        #[cfg(not(feature = "bwrap"))]
        return Err(not_built("bwrap", target));
    }
    if let Some(_image) = target.strip_prefix("docker://") {
        #[cfg(feature = "docker")]
        return Ok(Arc::new(crate::DockerExecutor::connect(_image).await?));
        #[cfg(not(feature = "docker"))]
        return Err(not_built("docker", target));
    }
    if let Some(_image) = target.strip_prefix("swarm://") {
        #[cfg(feature = "swarm")]
        return Ok(Arc::new(crate::SwarmExecutor::connect(_image).await?));
        #[cfg(not(feature = "swarm"))]
        return Err(not_built("swarm", target));
    }
    if let Some(_rest) = target.strip_prefix("k8s://") {
        #[cfg(feature = "kubernetes")]
        return Ok(Arc::new(
            crate::KubernetesExecutor::from_target(_rest).await?,
        ));
        #[cfg(not(feature = "kubernetes"))]
        return Err(not_built("kubernetes", target));
    }
    Err(ExecError::Unavailable {
        executor: target.to_owned(),
        reason: format!("unknown platform target {target:?}: expected {TARGETS}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_targets_are_refused_by_name() {
        let err = executor_for_target("dockr://alpine")
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("dockr://alpine") && err.contains("k8s://IMAGE"),
            "{err}"
        );
        assert!(executor_for_target("host").await.is_ok());
    }
}
