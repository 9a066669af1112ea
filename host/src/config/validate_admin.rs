//! `[admin]` -> [`AdminConfig`]: the operators' listener and its token.

use std::net::SocketAddr;

use super::raw::RawAdmin;
use super::validate::Invalid;
use super::ConfigError;
use crate::secret::Secret;

/// `[admin]`, typed.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Address of the admin listener (API, `/metrics`, health).
    pub listen: SocketAddr,
    /// The bearer token every route but health requires. `None` only on a
    /// loopback address, where the routes are open to local processes.
    pub token: Option<Secret>,
}

pub(super) fn validate_admin(
    raw: RawAdmin,
    invalid: &Invalid<'_>,
) -> Result<AdminConfig, ConfigError> {
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        invalid(
            "admin.listen".into(),
            "a socket address such as \"127.0.0.1:8081\"".into(),
        )
    })?;
    // `token = "${HOOKYARD_ADMIN_TOKEN:-}"` with the variable unset means none.
    let token = raw.token.filter(|t| !t.expose().is_empty());
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(invalid(
            "admin.token".into(),
            format!(
                "a token: the admin listener on {listen} is not a loopback address, so it \
                 needs one (set admin.token, e.g. \"${{HOOKYARD_ADMIN_TOKEN}}\")"
            ),
        ));
    }
    if token.as_ref().is_some_and(|t| t.expose().len() < 16) {
        return Err(invalid(
            "admin.token".into(),
            "a token of at least 16 characters".into(),
        ));
    }
    Ok(AdminConfig { listen, token })
}
