//! Sold-out and restock messages: a node that hears "sold out" answers the
//! crowd locally without asking Redis; "restock" lets it ask again.

use super::RedisAuthority;
use super::keys::{RESTOCK_CHANNEL, SOLD_OUT_CHANNEL};
use futures::StreamExt;
use seckill_core::SaleId;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockEvent {
    /// The sale's last unit was reserved.
    SoldOut(SaleId),
    /// Units of the sale came back on sale.
    Restock(SaleId),
    /// The subscription was (re)opened: messages may have been missed while
    /// it was down, so every sale's view should be re-read.
    Resync,
}

/// The receiving end; the task behind it ends when this is dropped.
pub struct StockEvents {
    receiver: mpsc::Receiver<StockEvent>,
}

/// Pause before reopening a lost subscription.
const RETRY_EVERY: Duration = Duration::from_millis(250);

impl StockEvents {
    pub(super) fn start(authority: RedisAuthority, timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(async move {
            while !sender.is_closed() {
                if let Err(e) = listen(&authority, timeout, &sender).await {
                    tracing::warn!(error = %e, "stock events: subscription lost, reopening");
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
        });
        Self { receiver }
    }

    /// The next event; `None` only if the listening task is gone.
    pub async fn next(&mut self) -> Option<StockEvent> {
        self.receiver.recv().await
    }
}

/// One subscription's life: open on the current primary, announce
/// `Resync`, forward messages until the connection ends or the primary
/// moves (Ok) or fails to open (Err).
async fn listen(
    authority: &RedisAuthority,
    timeout: Duration,
    sender: &mpsc::Sender<StockEvent>,
) -> Result<(), redis::RedisError> {
    let mut moves = authority.primary_moves();
    moves.mark_unchanged();
    let client = authority.client();
    let open = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub
            .subscribe(&[SOLD_OUT_CHANNEL, RESTOCK_CHANNEL])
            .await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let mut pubsub = match tokio::time::timeout(timeout, open).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(error)) => {
            authority.follow_primary().await;
            return Err(error);
        }
        Err(_) => {
            authority.follow_primary().await;
            return Ok(());
        }
    };
    if sender.send(StockEvent::Resync).await.is_err() {
        return Ok(());
    }
    let mut messages = pubsub.on_message();
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            () = sender.closed() => return Ok(()),
            _ = moves.changed() => return Ok(()),
        };
        let Some(message) = message else {
            return Ok(());
        };
        let Ok(sale) = message.get_payload::<String>() else {
            continue;
        };
        let event = match message.get_channel_name() {
            SOLD_OUT_CHANNEL => StockEvent::SoldOut(SaleId::from(sale)),
            RESTOCK_CHANNEL => StockEvent::Restock(SaleId::from(sale)),
            _ => continue,
        };
        if sender.send(event).await.is_err() {
            return Ok(());
        }
    }
}
