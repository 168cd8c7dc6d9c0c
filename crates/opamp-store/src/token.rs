//! Admin API tokens: only a SHA-256 hash of each secret is stored.

use std::fmt;
use std::str::FromStr;

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Timestamp;

/// What a token may do. Each role includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Read, and change configs, assignments, groups, labels; send commands.
    Operator,
    /// Everything, including tokens.
    Admin,
}

impl Role {
    /// `"admin"`, `"operator"` or `"viewer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// True when this role includes `needed` (admin ⊇ operator ⊇ viewer).
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            other => Err(crate::Error::invalid(
                "role",
                format!("{other:?} is not one of admin, operator, viewer"),
            )),
        }
    }
}

/// The SHA-256 of a token secret: what is stored and looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of a secret as presented in `Authorization: Bearer <secret>`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

/// A new random secret (`opamp_` and 64 hex digits: 256 bits from the thread-local CSPRNG,
/// which the OS seeds) and its hash. Show the secret once to the operator; store only the hash.
pub fn generate_secret() -> (String, TokenHash) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("opamp_{}", hex::encode(bytes));
    let hash = TokenHash::of(&secret);
    (secret, hash)
}

/// A stored API token (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Stable id.
    pub id: i64,
    /// A name for operators, unique among tokens not revoked.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// When it was last accepted (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked token is never accepted again.
    pub revoked_at: Option<Timestamp>,
}

/// A token to create with [`crate::Store::create_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// The hash of the secret (see [`generate_secret`]).
    pub hash: TokenHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hash_to_what_is_stored() {
        let (a, ha) = generate_secret();
        let (b, hb) = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("opamp_") && a.len() == 70);
        assert_eq!(TokenHash::of(&a), ha);
        assert_ne!(ha, hb);
        assert_eq!(ha.to_string().len(), 64);
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert_eq!("operator".parse::<Role>().unwrap(), Role::Operator);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::Viewer).unwrap(), "\"viewer\"");
    }
}
