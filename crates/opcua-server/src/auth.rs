//! Who may open a session: users of the gateway's users file (`[api] users`, the same
//! people and roles as the API, Argon2id passwords) and, only when configured, anonymous
//! sessions. Passwords are accepted only on secure endpoints, so they never cross the wire
//! in clear. Roles decide writes and methods later, in the node manager.

use std::sync::Arc;

use async_trait::async_trait;
use backplane_security::Role;
use backplane_security::users::Users;
use opcua::server::authenticator::{AuthManager, Password, UserToken, user_pass_security_policy_id};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerEndpoint};
use opcua::types::{Error, MessageSecurityMode, StatusCode, UAString, UserTokenPolicy, UserTokenType};
use tokio::sync::Semaphore;

/// How many password checks run at once: Argon2id is costly by design, and a client
/// opening sessions in a loop must not take every core.
const CONCURRENT_CHECKS: usize = 2;

/// The server's [`AuthManager`].
#[derive(Debug)]
pub struct Accounts {
    users: Arc<Users>,
    anonymous: bool,
    checks: Semaphore,
}

impl Accounts {
    pub fn new(users: Arc<Users>, anonymous: bool) -> Accounts {
        Accounts {
            users,
            anonymous,
            checks: Semaphore::new(CONCURRENT_CHECKS),
        }
    }

    /// The role of a session's user; `None` for anonymous sessions.
    pub fn role(&self, token: &UserToken) -> Option<Role> {
        if token.is_anonymous() {
            return None;
        }
        self.users
            .users()
            .find(|(name, _)| *name == token.0)
            .map(|(_, role)| role)
    }

    fn passwords_on(&self, endpoint: &ServerEndpoint) -> bool {
        !self.users.is_empty() && endpoint.message_security_mode() != MessageSecurityMode::None
    }
}

fn rejected(message: &str) -> Error {
    Error::new(StatusCode::BadIdentityTokenRejected, message.to_owned())
}

#[async_trait]
impl AuthManager for Accounts {
    async fn authenticate_anonymous_token(&self, endpoint: &ServerEndpoint) -> Result<(), Error> {
        if self.anonymous && endpoint.user_token_ids.contains(ANONYMOUS_USER_TOKEN_ID) {
            Ok(())
        } else {
            Err(rejected("anonymous sessions are not allowed on this server"))
        }
    }

    async fn authenticate_username_identity_token(
        &self,
        endpoint: &ServerEndpoint,
        username: &str,
        password: &Password,
    ) -> Result<UserToken, Error> {
        if !self.passwords_on(endpoint) {
            return Err(rejected("user names are accepted on secure endpoints only"));
        }
        let _permit = self
            .checks
            .acquire()
            .await
            .map_err(|_| Error::new(StatusCode::BadServerHalted, "the server is stopping"))?;
        let users = self.users.clone();
        let (name, password) = (username.to_owned(), password.get().to_owned());
        let verified = tokio::task::spawn_blocking(move || users.verify_password(&name, &password))
            .await
            .ok()
            .flatten();
        match verified {
            Some(_) => Ok(UserToken(username.to_owned())),
            None => {
                tracing::warn!(
                    user = username,
                    "OPC UA session refused: unknown user or wrong password"
                );
                Err(Error::new(
                    StatusCode::BadUserAccessDenied,
                    "unknown user or wrong password",
                ))
            }
        }
    }

    fn user_token_policies(&self, endpoint: &ServerEndpoint) -> Vec<UserTokenPolicy> {
        let mut policies = Vec::new();
        if self.anonymous && endpoint.user_token_ids.contains(ANONYMOUS_USER_TOKEN_ID) {
            policies.push(UserTokenPolicy {
                policy_id: UAString::from("anonymous"),
                token_type: UserTokenType::Anonymous,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        if self.passwords_on(endpoint) {
            policies.push(UserTokenPolicy {
                policy_id: user_pass_security_policy_id(endpoint),
                token_type: UserTokenType::UserName,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        policies
    }
}
