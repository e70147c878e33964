//! Identifiers. Sale and order ids are UUIDv7 strings: unique without
//! coordination and time-ordered, so new rows land at the end of an index.

use crate::FieldError;
use crate::text::refuse_control_characters;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use utoipa::ToSchema;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A sale's id.
    SaleId
);
string_id!(
    /// An order's id, handed to the buyer with the 202.
    OrderId
);
string_id!(
    /// A user: the `sub` claim of their token.
    UserId
);

impl SaleId {
    pub fn generate() -> Self {
        Self::from(uuid::Uuid::now_v7().to_string())
    }
}

impl OrderId {
    pub fn generate() -> Self {
        Self::from(uuid::Uuid::now_v7().to_string())
    }
}

/// Longest accepted user id, in bytes (the order stores' column).
pub const MAX_USER_ID_LEN: usize = 200;

impl UserId {
    /// A user id from a token's `sub`: 1 to [`MAX_USER_ID_LEN`] bytes, no
    /// control characters, so that every order store keeps it as it is.
    pub fn parse(sub: String) -> Result<Self, FieldError> {
        if sub.is_empty() || sub.len() > MAX_USER_ID_LEN {
            return Err(FieldError::new(
                "sub",
                format!("must be 1 to {MAX_USER_ID_LEN} bytes"),
            ));
        }
        refuse_control_characters("sub", &sub)?;
        Ok(Self::from(sub))
    }
}

impl OrderId {
    /// The id in a request, if it can name an order at all (ids are UUIDs):
    /// anything else is no order, without asking a store.
    pub fn parse(id: &str) -> Option<Self> {
        is_uuid(id).then(|| Self::from(id))
    }
}

impl SaleId {
    /// The id in a request, if it can name a sale at all (ids are UUIDs).
    pub fn parse(id: &str) -> Option<Self> {
        is_uuid(id).then(|| Self::from(id))
    }
}

fn is_uuid(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_id_is_bounded_and_free_of_control_characters() {
        assert!(UserId::parse("alice".into()).is_ok());
        assert!(UserId::parse("x".repeat(MAX_USER_ID_LEN)).is_ok());
        let too_long = "x".repeat(MAX_USER_ID_LEN + 1);
        for bad in ["", &too_long, "a\0b", "line\n", "\u{1b}"] {
            assert_eq!(
                UserId::parse(bad.into()).unwrap_err().field,
                "sub",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_a_uuid_can_name_an_order() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "1",
            "a\u{0}b",
            "../orders",
            "01a236db-c3ee-7215-986c-e77374cff37",
        ] {
            assert_eq!(OrderId::parse(bad), None, "{bad:?}");
        }
    }
}
