//! Key and channel names of the Redis data model (see the crate docs). Every
//! key of one sale carries the hash tag `{SALE_ID}`, so a Redis Cluster keeps
//! them on one shard and a script may touch them all.

use seckill_core::SaleId;

/// Node heartbeats: node id → expiry (unix ms).
pub const NODES: &str = "seckill:nodes";
/// When the last complete pass over recent releases started (unix ms), see
/// `crate::reconcile::RecentReleases`.
pub const RELEASES_CHECKED: &str = "seckill:releases_checked";
/// Carries a sale id when its last unit is reserved.
pub const SOLD_OUT_CHANNEL: &str = "seckill:sold_out";
/// Carries a sale id when units of it come back on sale.
pub const RESTOCK_CHANNEL: &str = "seckill:restock";

/// The keys of one sale, built once per call and handed to scripts as KEYS.
pub struct SaleKeys {
    pub sale: String,
    pub buyers: String,
    pub keys: String,
    pub reservations: String,
    pub dead_letter: String,
    pub released: String,
    pub restored: String,
}

impl SaleKeys {
    pub fn new(sale_id: &SaleId) -> Self {
        let key = |name: &str| format!("seckill:{{{sale_id}}}:{name}");
        Self {
            sale: key("sale"),
            buyers: key("buyers"),
            keys: key("keys"),
            reservations: key("reservations"),
            dead_letter: key("dead_letter"),
            released: key("released"),
            restored: key("restored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_sale_shares_its_hash_tag() {
        let keys = SaleKeys::new(&SaleId::from("s1"));
        assert_eq!(keys.sale, "seckill:{s1}:sale");
        assert_eq!(keys.buyers, "seckill:{s1}:buyers");
        assert_eq!(keys.keys, "seckill:{s1}:keys");
        assert_eq!(keys.reservations, "seckill:{s1}:reservations");
        assert_eq!(keys.dead_letter, "seckill:{s1}:dead_letter");
        assert_eq!(keys.released, "seckill:{s1}:released");
        assert_eq!(keys.restored, "seckill:{s1}:restored");
    }
}
