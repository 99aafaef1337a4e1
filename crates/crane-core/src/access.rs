//! Who may do what: tenants, roles and API keys. Pure (no I/O): key generation, parsing,
//! hashing and constant-time verification, the rights of each role, and tenant-name rules.
//! The store keeps keys (`store::keys`); the server checks them on every request.
//!
//! A key reads `crk_<key_id>_<secret>`: the `crk_` prefix lets secret scanners find leaked
//! keys, `key_id` (16 hex digits) names the key in listings, logs and the audit log, and the
//! secret (64 hex digits, 256 random bits) is shown once and stored only as its SHA-256. A
//! SHA-256 (not a password hash) is right here: the secret is random and long, so there is
//! nothing to brute-force, and verification stays a few hundred nanoseconds per request.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The tenant every request acts as when auth is off, and that data stored before tenancy
/// belongs to.
pub const DEFAULT_TENANT: &str = "default";

/// Prefix of every API key.
pub const KEY_PREFIX: &str = "crk_";

/// Hex digits of a key id.
const KEY_ID_HEX: usize = 16;
/// Hex digits of a key's secret (256 bits).
const SECRET_HEX: usize = 64;

/// What a role may do. Each role has the rights of the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every GET.
    Viewer,
    /// + create, retry and cancel runs, feedback, approvals.
    Operator,
    /// + keys, aliases, experiments, budgets, the audit log.
    Admin,
}

impl Role {
    /// The role's name as written in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// True when this role has at least the rights of `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role '{other}' (use admin, operator or viewer)"
            )),
        }
    }
}

/// Who is asking: the tenant a request acts for, its role, and the key it came with (`None`
/// with auth off or for the CLI on the data dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub role: Role,
    pub key_id: Option<String>,
}

impl Principal {
    /// Auth off: tenant `default` with every right.
    pub fn unauthenticated() -> Self {
        Self {
            tenant: DEFAULT_TENANT.to_owned(),
            role: Role::Admin,
            key_id: None,
        }
    }

    /// Who did it, for the audit log: the key id, else `local` (auth off, or the CLI).
    pub fn actor(&self) -> &str {
        self.key_id.as_deref().unwrap_or("local")
    }
}

/// Checks a tenant name: 1–64 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter
/// or digit (it appears in URLs, metric labels and logs).
pub fn check_tenant(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tenant '{}': use 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// A freshly generated key: the full key (shown once) and what is stored.
pub struct GeneratedKey {
    pub key_id: String,
    /// `crk_<key_id>_<secret>`: give it to the user, never store or log it.
    pub key: String,
    /// SHA-256 of the secret, hex: the only thing stored.
    pub hash: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A new random key (from the OS-seeded thread RNG).
pub fn generate_key() -> GeneratedKey {
    let mut id = [0u8; KEY_ID_HEX / 2];
    let mut secret = [0u8; SECRET_HEX / 2];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key_id = hex(&id);
    let secret = hex(&secret);
    GeneratedKey {
        key: format!("{KEY_PREFIX}{key_id}_{secret}"),
        hash: hash_secret(&secret),
        key_id,
    }
}

/// SHA-256 of a key's secret, as stored.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A presented key split into its id and secret, or `None` when it is not shaped like a crane
/// key (which is then simply unknown: the caller answers 401 without saying more).
pub fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, KEY_ID_HEX) && hex_of(secret, SECRET_HEX)).then_some((id, secret))
}

/// True when `secret` hashes to `stored_hash`, compared in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(secret);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.key, b.key);
        assert_ne!(a.key_id, b.key_id);
        assert!(a.key.starts_with("crk_"));
        let (id, secret) = parse_key(&a.key).unwrap();
        assert_eq!(id, a.key_id);
        assert_eq!(secret.len(), 64, "256 random bits");
        assert!(verify_secret(secret, &a.hash));
        assert!(!verify_secret(secret, &b.hash));
        assert!(!a.hash.contains(secret), "only a hash is kept");
        assert!(!format!("{a:?}").contains(secret), "Debug redacts the key");
    }

    #[test]
    fn malformed_keys_are_not_parsed() {
        let k = generate_key();
        for bad in [
            "",
            "crk_",
            "sk-abc",
            &k.key[1..],
            &k.key[..k.key.len() - 1],
            &format!("{}0", k.key),
            &k.key.replace('_', "-"),
            &format!("crk_{}_{}", "z".repeat(16), "0".repeat(64)),
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn roles_include_the_rights_below_them() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Operator.allows(Role::Admin));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert_eq!("Admin".parse::<Role>(), Ok(Role::Admin));
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("admin, operator or viewer")
        );
    }

    #[test]
    fn tenant_names_are_checked() {
        for ok in ["default", "acme", "team-7", "a_b", "0x"] {
            assert!(check_tenant(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "-x", "a b", "ü", &"a".repeat(65)] {
            assert!(check_tenant(bad).is_err(), "{bad}");
        }
    }
}
