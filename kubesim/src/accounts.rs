//! Identities for RBAC tests: bearer tokens for ServiceAccounts and plain users, and kube-rs
//! clients and kubeconfigs that use them. A ServiceAccount's object is created when missing,
//! as its token would need on a real cluster.

use std::path::PathBuf;

use serde_json::json;

use super::KubeSim;
use super::auth::UserInfo;
use super::fixtures::FixtureError;

impl KubeSim {
    /// Mints a token for ServiceAccount `namespace/name` (creating the ServiceAccount if needed).
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, FixtureError> {
        let created = self.create_object(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        }));
        match created {
            Ok(_) | Err(FixtureError::Api(super::error::ApiError::AlreadyExists { .. })) => {}
            Err(other) => return Err(other),
        }
        Ok(self.user_token(UserInfo::service_account(namespace, name)))
    }

    /// Mints a token for any user (name and groups as given; add `system:authenticated`).
    pub fn user_token(&self, user: UserInfo) -> String {
        let token = format!(
            "kubesim-token-{}-{:x}",
            user.username.replace(':', "."),
            self.resource_version()
        );
        self.state.tokens.insert(token.clone(), user);
        token
    }

    /// A kube-rs client that sends `token`.
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        let mut config = self.client_config();
        config.auth_info.token = Some(token.to_owned().into());
        kube::Client::try_from(config).expect("a plain-HTTP client needs no TLS setup")
    }

    /// A kube-rs client acting as ServiceAccount `namespace/name`.
    pub fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, FixtureError> {
        Ok(self.client_with_token(&self.service_account_token(namespace, name)?))
    }

    /// A kubeconfig (beside the admin one) acting as ServiceAccount `namespace/name`, with that
    /// namespace as the default.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, FixtureError> {
        let token = self.service_account_token(namespace, name)?;
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{namespace}-{name}"));
        std::fs::write(&path, self.render_kubeconfig(namespace, Some(&token))).map_err(
            |source| FixtureError::Read {
                path: path.clone(),
                source,
            },
        )?;
        Ok(path)
    }
}
