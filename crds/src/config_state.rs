//! What a component's `ConfigurationState` says about the configuration it loaded: MetalLB's
//! derivation from the problems found, shared by the controller (`controller`) and every
//! speaker (`speaker-<node>`). Without timestamps, so that it is written only when it changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::error::ConfigError;
use crate::types::{ConfigurationStateResult, ConfigurationStateStatus};

/// The controller's condition `type`, as MetalLB names it.
pub const POOL_RECONCILER_CONDITION: &str = "poolReconcilerValid";
/// The speaker's condition `type`, as MetalLB names it.
pub const CONFIG_RECONCILER_CONDITION: &str = "configReconcilerValid";
/// Label naming the component (`controller` or `speaker`).
pub const COMPONENT_LABEL: &str = "metallb.io/component-type";
/// Label naming a speaker's node.
pub const NODE_NAME_LABEL: &str = "metallb.io/node-name";

/// What a `ConfigurationState` status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigState {
    /// The condition's `type` ([`POOL_RECONCILER_CONDITION`] or [`CONFIG_RECONCILER_CONDITION`]).
    pub condition_type: &'static str,
    /// Valid, Invalid or Unknown.
    pub result: ConfigurationStateResult,
    /// The error messages, one per line.
    pub error_summary: String,
    /// The condition: `True`/`False`, reason, message.
    pub condition: Option<(String, String, String)>,
}

impl ConfigState {
    /// MetalLB's derivation: any problem makes the condition False with reason
    /// `ConfigurationError` and the result Invalid. A reference to an object that does not exist
    /// counts too: the webhook admits it (it may be created a moment later), but until it is, a
    /// running component cannot use the object, and MetalLB's configuration load fails with its
    /// `TransientError` ("peer p referencing non existing bfd profile x").
    pub fn from_problems(condition_type: &'static str, problems: &[ConfigError]) -> Self {
        let errors: Vec<String> = problems.iter().map(ToString::to_string).collect();
        if errors.is_empty() {
            ConfigState {
                condition_type,
                result: ConfigurationStateResult::Valid,
                error_summary: String::new(),
                condition: Some(("True".into(), "Reconciled".into(), String::new())),
            }
        } else {
            let summary = errors.join("\n");
            ConfigState {
                condition_type,
                result: ConfigurationStateResult::Invalid,
                error_summary: summary.clone(),
                condition: Some(("False".into(), "ConfigurationError".into(), summary)),
            }
        }
    }

    /// Nothing reported yet (MetalLB's result when there are no conditions).
    pub fn unknown(condition_type: &'static str) -> Self {
        ConfigState {
            condition_type,
            result: ConfigurationStateResult::Unknown,
            error_summary: String::new(),
            condition: None,
        }
    }

    /// Whether the configuration has errors.
    pub fn is_invalid(&self) -> bool {
        self.result == ConfigurationStateResult::Invalid
    }

    /// What a stored status says about `condition_type`.
    pub fn of(condition_type: &'static str, status: &ConfigurationStateStatus) -> Self {
        ConfigState {
            condition_type,
            result: status.result.unwrap_or(ConfigurationStateResult::Unknown),
            error_summary: status.error_summary.clone(),
            condition: status
                .conditions
                .iter()
                .find(|c| c.type_ == condition_type)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())),
        }
    }

    /// The merge patch that writes [`Self::to_status`] over whatever the status says now. It
    /// sets `errorSummary` to null when there are no errors: the field is left out of a
    /// serialized valid status, and a merge patch without it would keep the old errors under
    /// `result: Valid`.
    pub fn status_patch(&self, now: Timestamp) -> serde_json::Value {
        let mut status = serde_json::to_value(self.to_status(now)).unwrap_or_default();
        if let Some(fields) = status.as_object_mut() {
            fields
                .entry("errorSummary")
                .or_insert(serde_json::Value::Null);
        }
        serde_json::json!({ "status": status })
    }

    /// The status to write; `now` is the condition's `lastTransitionTime` (written only on a
    /// change, so every write is a transition).
    pub fn to_status(&self, now: Timestamp) -> ConfigurationStateStatus {
        ConfigurationStateStatus {
            result: Some(self.result),
            error_summary: self.error_summary.clone(),
            conditions: self
                .condition
                .iter()
                .map(|(status, reason, message)| Condition {
                    type_: self.condition_type.into(),
                    status: status.clone(),
                    reason: reason.clone(),
                    message: message.clone(),
                    last_transition_time: Time(now),
                    observed_generation: None,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Kind, Problem};

    #[test]
    fn configuration_errors_make_the_state_invalid_with_their_messages() {
        let valid = ConfigState::from_problems(POOL_RECONCILER_CONDITION, &[]);
        assert_eq!(valid.result, ConfigurationStateResult::Valid);
        assert_eq!(
            valid.condition,
            Some(("True".into(), "Reconciled".into(), String::new()))
        );
        let error = ConfigError::new(
            Kind::IPAddressPool,
            "a",
            "metadata.name",
            Problem::DefinedTwice("x".into()),
        );
        let invalid =
            ConfigState::from_problems(CONFIG_RECONCILER_CONDITION, std::slice::from_ref(&error));
        assert!(invalid.is_invalid());
        assert_eq!(invalid.error_summary, error.to_string());
        let status = invalid.to_status(Timestamp::UNIX_EPOCH);
        assert_eq!(status.conditions[0].type_, "configReconcilerValid");
        assert_eq!(status.conditions[0].reason, "ConfigurationError");
        assert_eq!(
            ConfigState::of(CONFIG_RECONCILER_CONDITION, &status),
            invalid,
            "reading back what was written"
        );
        assert_eq!(
            ConfigState::of(POOL_RECONCILER_CONDITION, &status).condition,
            None,
            "another component's condition is not ours"
        );
    }

    #[test]
    fn a_reference_to_a_missing_object_makes_the_state_invalid_naming_object_and_field() {
        let dangling = [
            ConfigError::new(
                Kind::BGPPeer,
                "tor",
                "spec.bfdProfile",
                Problem::MissingReference {
                    kind: "BFDProfile",
                    name: "fast".into(),
                },
            ),
            ConfigError::new(
                Kind::BGPAdvertisement,
                "ad",
                "spec.communities[0]",
                crate::community::CommunityError::UnknownAlias("gold".into()).into(),
            ),
        ];
        for problem in dangling {
            assert!(problem.is_transient(), "the webhook only warns: {problem}");
            let state = ConfigState::from_problems(
                CONFIG_RECONCILER_CONDITION,
                std::slice::from_ref(&problem),
            );
            assert!(state.is_invalid(), "{problem}");
            assert_eq!(state.error_summary, problem.to_string());
            assert!(
                state.error_summary.starts_with(&format!(
                    "{}/{}: {}: ",
                    problem.kind, problem.name, problem.field
                )),
                "{}",
                state.error_summary
            );
        }
    }

    #[test]
    fn a_valid_status_patch_clears_the_previous_errors() {
        let error = ConfigError::new(Kind::BGPPeer, "tor", "spec.bfdProfile", Problem::Required);
        let invalid = ConfigState::from_problems(CONFIG_RECONCILER_CONDITION, &[error]);
        let valid = ConfigState::from_problems(CONFIG_RECONCILER_CONDITION, &[]);
        let mut stored = invalid.status_patch(Timestamp::UNIX_EPOCH);
        merge(&mut stored, &valid.status_patch(Timestamp::UNIX_EPOCH));
        let merged: ConfigurationStateStatus =
            serde_json::from_value(stored["status"].clone()).expect("status");
        assert_eq!(merged, valid.to_status(Timestamp::UNIX_EPOCH));
        assert_eq!(ConfigState::of(CONFIG_RECONCILER_CONDITION, &merged), valid);
    }

    /// RFC 7386 JSON merge patch, as the API server applies it.
    fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        let serde_json::Value::Object(fields) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = serde_json::json!({});
        }
        let Some(existing) = target.as_object_mut() else {
            return;
        };
        for (key, value) in fields {
            if value.is_null() {
                existing.remove(key);
            } else {
                merge(
                    existing
                        .entry(key.clone())
                        .or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}
