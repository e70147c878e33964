//! Identifiers. Sale and order ids are UUIDv7 strings: unique without
//! coordination and time-ordered, so new rows land at the end of an index.

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
