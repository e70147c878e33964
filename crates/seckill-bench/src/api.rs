//! The few API calls the generator makes outside the crowd: reading a sale
//! and its report before and after a run, creating a sale for the demo,
//! reading an order as its owner.

use crate::client::{Answer, Connection, Endpoint, Request};
use anyhow::{Result, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A sale as `GET /api/v1/sales/{id}` shows it (the fields used here).
#[derive(Debug, Deserialize)]
pub struct Sale {
    pub id: String,
    pub stock: u64,
    pub per_user_limit: u64,
}

/// `GET /api/v1/sales/{id}/report`: units per order status.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct SaleReport {
    pub stock: u64,
    pub remaining: u64,
    pub queued: u64,
    pub pending_payment: u64,
    pub paid: u64,
    pub expired: u64,
    pub cancelled: u64,
}

impl SaleReport {
    /// Units ever reserved, whatever became of them since.
    pub fn ever_reserved(&self) -> u64 {
        self.queued + self.pending_payment + self.paid + self.expired + self.cancelled
    }

    /// Units off sale now: queued, waiting for payment, or paid.
    pub fn held(&self) -> u64 {
        self.queued + self.pending_payment + self.paid
    }
}

/// `GET /api/v1/sales/{id}/stock`.
#[derive(Debug, Deserialize)]
pub struct StockView {
    pub remaining: u64,
}

/// Each call opens its own connection: calls are few and far apart (a
/// kept-alive one would have been closed by the server during the run).
pub struct Api {
    endpoint: Endpoint,
    admin: Option<Vec<u8>>,
}

impl Api {
    pub fn new(endpoint: &Endpoint, admin_token: Option<&str>) -> Self {
        Self {
            endpoint: endpoint.clone(),
            admin: admin_token.map(|token| format!("Bearer {token}").into_bytes()),
        }
    }

    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }

    pub async fn send(&mut self, request: &Request<'_>) -> Result<Answer> {
        Connection::new(&self.endpoint).send(request).await
    }

    async fn json<T: DeserializeOwned>(&mut self, request: &Request<'_>) -> Result<T> {
        let answer = self.send(request).await?;
        if !(200..300).contains(&answer.status) {
            bail!(
                "{} {} answered {}: {}",
                request.method,
                request.path,
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        Ok(serde_json::from_slice(&answer.body)?)
    }

    pub async fn sale(&mut self, sale: &str) -> Result<Sale> {
        self.json(&Request::get(&format!("/api/v1/sales/{sale}"), None))
            .await
    }

    pub async fn stock(&mut self, sale: &str) -> Result<StockView> {
        self.json(&Request::get(&format!("/api/v1/sales/{sale}/stock"), None))
            .await
    }

    /// The sale's report; needs the admin token.
    pub async fn report(&mut self, sale: &str) -> Result<SaleReport> {
        let path = format!("/api/v1/sales/{sale}/report");
        let admin = self.admin.clone();
        self.json(&Request::get(&path, admin.as_deref())).await
    }

    /// Creates a sale from a `POST /api/v1/sales` body; needs the admin token.
    pub async fn create_sale(&mut self, body: &serde_json::Value) -> Result<Sale> {
        let body = serde_json::to_vec(body)?;
        let admin = self.admin.clone();
        self.json(&Request::post("/api/v1/sales", admin.as_deref(), &body))
            .await
    }
}
