//! Demo sign-in tokens: HS256 JWTs that carry the user, a token id and a
//! one-hour expiry. A token id in the revoked flags is refused until the
//! token would have expired anyway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// How long a token is valid.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// What a token says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The user.
    pub(crate) sub: String,
    /// The token's id, the key of its revocation flag.
    pub(crate) jti: String,
    /// Issued at, in seconds since the epoch.
    pub(crate) iat: u64,
    /// Expires at, in seconds since the epoch.
    pub(crate) exp: u64,
}

impl Claims {
    /// When the token stops being valid.
    pub(crate) fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp)
    }
}

/// Signs and checks tokens with one HS256 key.
#[derive(Clone)]
pub(crate) struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Tokens {
    /// Tokens signed with `secret`.
    pub(crate) fn new(secret: &[u8]) -> Self {
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A new token for `user`, valid for [`TOKEN_LIFETIME`].
    pub(crate) fn issue(&self, user: &str) -> Result<(String, Claims), ApiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ApiError::internal("the system clock is before 1970"))?
            .as_secs();
        let id = crate::config::random_bytes::<16>().map_err(ApiError::internal)?;
        let claims = Claims {
            sub: user.to_owned(),
            jti: id.iter().map(|byte| format!("{byte:02x}")).collect(),
            iat: now,
            exp: now + TOKEN_LIFETIME.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| ApiError::internal(format!("cannot sign a token: {err}")))?;
        Ok((token, claims))
    }

    /// The claims of a valid, unexpired token from an `Authorization:
    /// Bearer` header value; 401 otherwise.
    pub(crate) fn check(&self, authorization: Option<&str>) -> Result<Claims, ApiError> {
        let token = bearer(authorization)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "jti"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|err| ApiError::unauthorized(format!("invalid token: {err}")))
    }
}

/// Whether a presented secret is `expected`, compared in constant time (the
/// time taken does not depend on how much of it matches), so that timing a
/// route cannot recover a secret byte by byte. Both sides are hashed first,
/// so the time does not tell the secret's length either.
pub(crate) fn same_secret(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.ct_eq(&expected).into()
}

/// The token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer(authorization: Option<&str>) -> Result<&str, ApiError> {
    let Some(value) = authorization else {
        return Err(ApiError::unauthorized(
            "missing Authorization: Bearer <token>",
        ));
    };
    match value.strip_prefix("Bearer ") {
        Some(token) if !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_same_secret_matches() {
        assert!(same_secret("admin-secret", "admin-secret"));
        for other in ["", "admin", "admin-secreT", "admin-secret ", "xdmin-secret"] {
            assert!(!same_secret(other, "admin-secret"), "{other:?}");
        }
    }
}
