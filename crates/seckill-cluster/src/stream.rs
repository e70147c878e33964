//! The reservation stream of a sale as the crate docs define it: the entry
//! format, read back into a [`Reservation`] (its key names are
//! [`crate::authority::keys::SaleKeys`]).

use redis::Value;
use seckill_core::{OrderId, SaleId, Timestamp, UserId};
use seckill_engine::Reservation;
use std::collections::HashMap;

/// The consumer group that turns reservations into order rows.
pub const ORDERS_GROUP: &str = "orders";

/// Reads an entry of `sale`'s stream; the error says what is wrong with it.
pub fn parse_reservation(
    sale: &SaleId,
    fields: &HashMap<String, Value>,
) -> Result<Reservation, String> {
    let text = |name: &str| -> Result<String, String> {
        let value = fields
            .get(name)
            .ok_or_else(|| format!("field `{name}` is missing"))?;
        redis::from_redis_value_ref::<String>(value)
            .map_err(|_| format!("field `{name}` is not text"))
    };
    let id = |name: &str| -> Result<String, String> {
        let value = text(name)?;
        if value.is_empty() {
            return Err(format!("field `{name}` is empty"));
        }
        Ok(value)
    };
    let millis = |name: &str| -> Result<Timestamp, String> {
        text(name)?
            .parse::<i64>()
            .map(Timestamp::from_millis)
            .map_err(|_| format!("field `{name}` is not a whole number of milliseconds"))
    };
    let sale_id = id("sale_id")?;
    if sale_id != sale.as_str() {
        return Err(format!(
            "field `sale_id` is {sale_id:?}, not this stream's sale"
        ));
    }
    let quantity = text("quantity")?
        .parse::<u64>()
        .ok()
        .filter(|&q| i64::try_from(q).is_ok())
        .ok_or("field `quantity` is not a count")?;
    let idempotency_key = Some(text("idempotency_key")?).filter(|key| !key.is_empty());
    Ok(Reservation {
        order_id: OrderId::from(id("order_id")?),
        sale_id: sale.clone(),
        user_id: UserId::from(id("user_id")?),
        quantity,
        idempotency_key,
        created_at: millis("created_at_ms")?,
        expires_at: millis("expires_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &str)]) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::BulkString(v.as_bytes().to_vec())))
            .collect()
    }

    const GOOD: [(&str, &str); 7] = [
        ("order_id", "o1"),
        ("sale_id", "s1"),
        ("user_id", "alice"),
        ("quantity", "2"),
        ("idempotency_key", ""),
        ("created_at_ms", "1000"),
        ("expires_at_ms", "61000"),
    ];

    #[test]
    fn reads_a_well_formed_entry() {
        let r = parse_reservation(&SaleId::from("s1"), &entry(&GOOD)).unwrap();
        assert_eq!(r.order_id.as_str(), "o1");
        assert_eq!(r.user_id.as_str(), "alice");
        assert_eq!(r.quantity, 2);
        assert_eq!(r.idempotency_key, None);
        assert_eq!(r.created_at, Timestamp::from_millis(1000));
        assert_eq!(r.expires_at, Timestamp::from_millis(61000));

        let mut keyed = GOOD;
        keyed[4] = ("idempotency_key", "k-1");
        let r = parse_reservation(&SaleId::from("s1"), &entry(&keyed)).unwrap();
        assert_eq!(r.idempotency_key.as_deref(), Some("k-1"));
    }

    #[test]
    fn refuses_malformed_entries_with_the_reason() {
        let sale = SaleId::from("s1");
        let with = |field: &str, value: &str| {
            let pairs: Vec<_> = GOOD
                .iter()
                .map(|&(k, v)| (k, if k == field { value } else { v }))
                .collect();
            parse_reservation(&sale, &entry(&pairs)).unwrap_err()
        };
        assert!(with("quantity", "two").contains("quantity"));
        assert!(with("quantity", "18446744073709551615").contains("quantity"));
        assert!(with("expires_at_ms", "soon").contains("expires_at_ms"));
        assert!(with("order_id", "").contains("order_id"));
        assert!(with("sale_id", "s2").contains("sale_id"));
        let missing = entry(&GOOD[1..]);
        assert!(
            parse_reservation(&sale, &missing)
                .unwrap_err()
                .contains("order_id")
        );
    }
}
