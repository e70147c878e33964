//! Purchase tokens, the articles' "hidden purchase URL": a sale with
//! `require_purchase_token` sells only to a buyer who first asked for a
//! token while the sale was open. A script that fires purchases before the
//! start, or replays another user's token, is refused.
//!
//! A token is `EXPIRES_MS.MAC`: an HMAC-SHA256 over the sale, the user and
//! the expiry, with a key derived from the JWT secret (so there is no
//! second secret to configure), hex-encoded. Checking it needs no state.

use crate::error::{ApiError, ApiResult};
use hmac::{Hmac, KeyInit, Mac};
use seckill_core::{ErrorCode, SaleId, Timestamp, UserId};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long a token stays valid: long enough to click "buy", short enough
/// that a token harvested early is useless.
pub const PURCHASE_TOKEN_TTL_SECS: u64 = 60;

/// Separates this key from any other use of the JWT secret.
const KEY_CONTEXT: &[u8] = b"seckill purchase-token v1";

pub struct PurchaseTokens {
    key: Hmac<Sha256>,
}

impl PurchaseTokens {
    pub fn new(jwt_secret: &[u8]) -> Self {
        let mut derive =
            Hmac::<Sha256>::new_from_slice(jwt_secret).expect("HMAC takes keys of any length");
        derive.update(KEY_CONTEXT);
        let key = derive.finalize().into_bytes();
        Self {
            key: Hmac::new_from_slice(&key).expect("HMAC takes keys of any length"),
        }
    }

    /// A token for `user` on `sale`, and when it expires.
    pub fn issue(&self, sale: &SaleId, user: &UserId, now: Timestamp) -> (String, Timestamp) {
        let expires = now.plus_secs(PURCHASE_TOKEN_TTL_SECS);
        (self.token(sale, user, expires), expires)
    }

    /// Accepts only an unexpired token issued to this user for this sale.
    pub fn check(
        &self,
        sale: &SaleId,
        user: &UserId,
        token: Option<&[u8]>,
        now: Timestamp,
    ) -> ApiResult<()> {
        let Some(token) = token else {
            return Err(ApiError::new(
                ErrorCode::PurchaseTokenRequired,
                "this sale needs an X-Purchase-Token from POST /api/v1/sales/{id}/purchase-token",
            ));
        };
        let invalid = || {
            ApiError::new(
                ErrorCode::PurchaseTokenInvalid,
                "the purchase token is not valid for this user and sale, or has expired",
            )
        };
        let expires = std::str::from_utf8(token)
            .ok()
            .and_then(|token| token.split_once('.'))
            .and_then(|(expires, _)| expires.parse::<i64>().ok())
            .map(Timestamp::from_millis)
            .ok_or_else(invalid)?;
        let expected = self.token(sale, user, expires);
        if !bool::from(expected.as_bytes().ct_eq(token)) || expires < now {
            return Err(invalid());
        }
        Ok(())
    }

    fn token(&self, sale: &SaleId, user: &UserId, expires: Timestamp) -> String {
        let mut mac = self.key.clone();
        let expires = expires.as_millis();
        // Lengths first, so that no two (sale, user) pairs sign the same bytes.
        for part in [sale.as_str(), user.as_str()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.update(&expires.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut token = format!("{expires}.");
        for byte in digest {
            token.push_str(&format!("{byte:02x}"));
        }
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (SaleId, SaleId, UserId, UserId) {
        (
            SaleId::generate(),
            SaleId::generate(),
            UserId::from("alice".to_string()),
            UserId::from("bob".to_string()),
        )
    }

    fn code(result: ApiResult<()>) -> ErrorCode {
        result.expect_err("refused").code
    }

    #[test]
    fn a_token_works_for_its_user_and_sale_until_it_expires() {
        let tokens = PurchaseTokens::new(b"secret");
        let (sale, other_sale, alice, bob) = ids();
        let now = Timestamp::from_millis(1_000_000);
        let (token, expires) = tokens.issue(&sale, &alice, now);
        assert_eq!(expires.as_millis(), 1_000_000 + 60_000);
        let token = Some(token.as_bytes());

        assert!(tokens.check(&sale, &alice, token, now).is_ok());
        assert!(tokens.check(&sale, &alice, token, expires).is_ok());
        let late = Timestamp::from_millis(expires.as_millis() + 1);
        assert_eq!(
            code(tokens.check(&sale, &alice, token, late)),
            ErrorCode::PurchaseTokenInvalid
        );
        assert_eq!(
            code(tokens.check(&sale, &bob, token, now)),
            ErrorCode::PurchaseTokenInvalid
        );
        assert_eq!(
            code(tokens.check(&other_sale, &alice, token, now)),
            ErrorCode::PurchaseTokenInvalid
        );
        assert_eq!(
            code(tokens.check(&sale, &alice, None, now)),
            ErrorCode::PurchaseTokenRequired
        );
    }

    #[test]
    fn forged_or_altered_tokens_are_invalid() {
        let tokens = PurchaseTokens::new(b"secret");
        let (sale, _, alice, _) = ids();
        let now = Timestamp::from_millis(1_000_000);
        let (token, _) = tokens.issue(&sale, &alice, now);
        let (mac_of_other_key, _) = PurchaseTokens::new(b"other").issue(&sale, &alice, now);
        let (_, mac) = token.split_once('.').unwrap();
        let extended = format!("{}.{mac}", now.as_millis() + 3_600_000);
        for bad in [
            mac_of_other_key.as_str(),
            extended.as_str(),
            "",
            "garbage",
            "123.",
            ".abc",
            "\u{ff}",
        ] {
            assert_eq!(
                code(tokens.check(&sale, &alice, Some(bad.as_bytes()), now)),
                ErrorCode::PurchaseTokenInvalid,
                "{bad:?}"
            );
        }
    }
}
