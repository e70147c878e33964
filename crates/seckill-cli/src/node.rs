//! Opening a cluster node: joining Redis and the order database, then the
//! engine on them, waiting while they cannot be reached.

use seckill_cluster::node::{Cluster, ClusterConfig, JoinError};
use seckill_engine::StoreError;
use seckill_http::waiting::Waiting;
use seckill_http::{OpenError, Server, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// Why a node could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenNodeError {
    #[error("joining the cluster: {0}")]
    Join(#[from] JoinError),
    #[error("opening the engine: {0}")]
    Open(#[from] OpenError),
}

/// The first wait before joining again, doubled after each failure up to
/// the cap.
const JOIN_RETRY_FIRST: Duration = Duration::from_millis(500);
const JOIN_RETRY_CAP: Duration = Duration::from_secs(5);

/// Joins the cluster and opens the engine on it (the sales restored into
/// memory). While Redis or the database cannot be reached it waits and
/// tries again, saying what it waits for in `waiting` (the node's answers
/// meanwhile, `seckill_http::waiting`) and in the log; wrong settings or schema
/// end it.
pub async fn open_node(
    config: ServerConfig,
    cluster: ClusterConfig,
    waiting: &Waiting,
) -> Result<(Server, Arc<Cluster>), OpenNodeError> {
    let mut delay = JOIN_RETRY_FIRST;
    loop {
        let reason = match Cluster::join(cluster.clone()).await {
            Ok((node, store)) => {
                match Server::open(config.clone(), store, Some(node.clone())).await {
                    Ok(server) => {
                        if delay > JOIN_RETRY_FIRST {
                            tracing::info!("the cluster's services are reachable: serving");
                        }
                        return Ok((server, node));
                    }
                    Err(OpenError::Store(StoreError::Unavailable(error))) => {
                        format!("the order database: {error}")
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Err(error) if error.is_transient() => error.to_string(),
            Err(error) => return Err(error.into()),
        };
        tracing::warn!(waiting_for = %reason, retry_in = ?delay, "not serving yet: waiting for the cluster's services");
        waiting.set(reason);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(JOIN_RETRY_CAP);
    }
}
