//! The crowd: N distinct users, each with a bearer token. Tokens are minted
//! (or read) before the run starts, so the generator spends nothing on
//! signing while it measures; they live as slices of one buffer, so a
//! million of them cost one allocation.

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long minted tokens stay valid: longer than any run.
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

/// A user token (JWT, HS256) for `user`, valid for `ttl`.
pub fn mint(key: &EncodingKey, user: &str, ttl: Duration) -> Result<String> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)?
        .saturating_add(ttl)
        .as_secs();
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &Claims { sub: user, exp },
        key,
    )?)
}

/// The users of a run and their `Authorization` header values.
pub struct Crowd {
    bearers: Vec<Bytes>,
}

impl Crowd {
    /// Users `PREFIX-0` … `PREFIX-(count-1)`, tokens signed with `secret`
    /// on every core.
    pub fn mint(secret: &[u8], prefix: &str, count: usize) -> Result<Self> {
        if count == 0 {
            bail!("the crowd needs at least one user");
        }
        let key = EncodingKey::from_secret(secret).context("the JWT secret is empty")?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = count.div_ceil(threads);
        let parts: Vec<Result<BytesMut>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .step_by(chunk)
                .map(|first| {
                    let key = &key;
                    scope.spawn(move || {
                        let mut lines = BytesMut::new();
                        for user in first..count.min(first + chunk) {
                            let token = mint(key, &format!("{prefix}-{user}"), TOKEN_TTL)?;
                            lines.put_slice(token.as_bytes());
                            lines.put_u8(b'\n');
                        }
                        Ok(lines)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("a minting thread panicked"))
                .collect()
        });
        let mut all = BytesMut::new();
        for part in parts {
            all.put(part?);
        }
        Self::from_lines(all.freeze())
    }

    /// One token per line (blank lines ignored), as `seckill token --count` prints them.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_lines(Bytes::from(text)).with_context(|| format!("tokens in {}", path.display()))
    }

    fn from_lines(tokens: Bytes) -> Result<Self> {
        let mut bearers = Vec::new();
        let mut buffer = BytesMut::with_capacity(tokens.len() + tokens.len() / 16);
        for line in tokens.split(|&b| b == b'\n') {
            let token = line.trim_ascii();
            if token.is_empty() {
                continue;
            }
            // Written into a request head as is: printable ASCII only.
            if !token.iter().all(|b| b.is_ascii_graphic()) {
                bail!("token {} is not printable ASCII", bearers.len() + 1);
            }
            let start = buffer.len();
            buffer.put_slice(b"Bearer ");
            buffer.put_slice(token);
            bearers.push(start..buffer.len());
        }
        if bearers.is_empty() {
            bail!("no tokens");
        }
        let buffer = buffer.freeze();
        let bearers = bearers
            .into_iter()
            .map(|range| buffer.slice(range))
            .collect();
        Ok(Self { bearers })
    }

    pub fn len(&self) -> usize {
        self.bearers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bearers.is_empty()
    }

    /// The `Authorization` value of user `index`.
    pub fn bearer(&self, index: usize) -> &[u8] {
        &self.bearers[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[derive(serde::Deserialize)]
    struct Sub {
        sub: String,
    }

    #[test]
    fn mints_one_verifiable_token_per_user_in_order() {
        let crowd = Crowd::mint(b"secret", "u", 1001).unwrap();
        assert_eq!(crowd.len(), 1001);
        for index in [0, 500, 1000] {
            let value = std::str::from_utf8(crowd.bearer(index)).unwrap();
            let token = value.strip_prefix("Bearer ").unwrap();
            let claims = jsonwebtoken::decode::<Sub>(
                token,
                &DecodingKey::from_secret(b"secret").unwrap(),
                &Validation::default(),
            )
            .unwrap()
            .claims;
            assert_eq!(claims.sub, format!("u-{index}"));
        }
    }

    #[test]
    fn reads_tokens_one_per_line_and_refuses_an_empty_file() {
        let crowd = Crowd::from_lines(Bytes::from_static(b"a.b.c\n\n  d.e.f  \n")).unwrap();
        assert_eq!(crowd.len(), 2);
        assert_eq!(crowd.bearer(1), b"Bearer d.e.f");
        assert!(Crowd::from_lines(Bytes::from_static(b"\n\n")).is_err());
        assert!(Crowd::from_lines(Bytes::from_static(b"bad\x01token\n")).is_err());
    }
}
