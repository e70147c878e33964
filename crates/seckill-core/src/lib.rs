//! The flash-sale domain, free of I/O and of any runtime: what a sale is,
//! how stock is taken and given back, the order state machine, and the error
//! codes of the API. Every other crate speaks in these types.

pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod order;
pub mod purchase;
pub mod sale;
pub mod stock;
pub mod text;
pub mod time;

pub use error::{ErrorCode, FieldError};
pub use ids::{OrderId, SaleId, UserId};
pub use order::{Order, OrderStatus};
pub use purchase::{Purchase, Receipt};
pub use sale::{NewSale, Sale, SalePhase, StockState};
pub use stock::Stock;
pub use time::Timestamp;
