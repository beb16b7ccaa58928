//! The CustomResourceDefinitions, generated from [`crate::types`] so that the schema the API server
//! enforces and the structs the components read can never disagree. `crds/*.yaml` hold the output;
//! a test fails when they are stale (`FERROLB_UPDATE_GOLDEN=1 cargo test -p ferrolb-api` rewrites them).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::types;

/// Why the CRDs could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The versions of one kind do not merge (a bug in the types).
    #[error("merging the versions of {kind}: {message}")]
    Merge {
        /// The kind.
        kind: &'static str,
        /// What kube reported.
        message: String,
    },
    /// A schema could not be rewritten (a bug in the types).
    #[error("rewriting the schema of {kind}: {source}")]
    Json {
        /// The kind.
        kind: String,
        /// What serde reported.
        source: serde_json::Error,
    },
    /// YAML rendering failed.
    #[error("rendering {kind} as YAML: {message}")]
    Yaml {
        /// The kind.
        kind: String,
        /// What the serializer reported.
        message: String,
    },
}

/// Every CRD FerroLB installs, one per kind, in a stable order.
pub fn all() -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let bgp_peer = kube::core::crd::merge_crds(
        vec![
            types::BGPPeer::crd(),
            types::bgppeer_v1beta1::BGPPeer::crd(),
        ],
        "v1beta2",
    )
    .map_err(|e| CrdError::Merge {
        kind: "BGPPeer",
        message: e.to_string(),
    })?;
    [
        types::BFDProfile::crd(),
        types::BGPAdvertisement::crd(),
        bgp_peer,
        types::Community::crd(),
        types::ConfigurationState::crd(),
        types::IPAddressPool::crd(),
        types::L2Advertisement::crd(),
        types::ServiceBGPStatus::crd(),
        types::ServiceL2Status::crd(),
    ]
    .into_iter()
    .map(normalise)
    .collect()
}

/// The file a CRD is written to, named as controller-gen names MetalLB's.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// A CRD as a YAML document.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    serde_saphyr::to_string(crd).map_err(|e| CrdError::Yaml {
        kind: crd.spec.names.kind.clone(),
        message: e.to_string(),
    })
}

/// Aligns kube's schema output with what controller-gen emits for MetalLB: optional fields are
/// omitted rather than `nullable` (so the API server prunes nulls and applies defaults, as it does
/// for MetalLB), and unsigned integers carry no format the API server does not know.
fn normalise(crd: CustomResourceDefinition) -> Result<CustomResourceDefinition, CrdError> {
    let kind = crd.spec.names.kind.clone();
    let mut value = serde_json::to_value(crd).map_err(|source| CrdError::Json {
        kind: kind.clone(),
        source,
    })?;
    if let Some(versions) = value
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for version in versions {
            if let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") {
                rewrite_schema(schema);
                // MetalLB's Go types make `spec` optional (omitempty) on every kind but
                // IPAddressPool: an L2Advertisement with only metadata is its most common example.
                if kind != "IPAddressPool"
                    && let Some(object) = schema.as_object_mut()
                {
                    let required = object.remove("required").into_iter().flat_map(|r| match r {
                        Value::Array(fields) => fields,
                        _ => Vec::new(),
                    });
                    let kept: Vec<Value> = required.filter(|field| field != "spec").collect();
                    if !kept.is_empty() {
                        object.insert("required".into(), Value::Array(kept));
                    }
                }
            }
        }
    }
    serde_json::from_value(value).map_err(|source| CrdError::Json { kind, source })
}

fn rewrite_schema(node: &mut Value) {
    match node {
        Value::Object(map) => {
            map.remove("nullable");
            if let Some(Value::String(format)) = map.get("format") {
                let replacement = match format.as_str() {
                    "uint8" | "uint16" | "int8" | "int16" => None,
                    "uint32" => Some("int64"),
                    "uint64" | "uint" => Some("int64"),
                    _ => Some(format.as_str()),
                }
                .map(str::to_owned);
                match replacement {
                    Some(format) => {
                        map.insert("format".into(), Value::String(format));
                    }
                    None => {
                        map.remove("format");
                    }
                }
            }
            map.values_mut().for_each(rewrite_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_schema),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn crds_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Input: the types. Output: crds/*.yaml. Fails when the committed manifests are stale.
    #[test]
    fn committed_crd_manifests_match_the_types() {
        let update = std::env::var_os("FERROLB_UPDATE_GOLDEN").is_some();
        let mut stale = Vec::new();
        for crd in all().expect("CRDs generate") {
            let path = crds_dir().join(file_name(&crd));
            let rendered = to_yaml(&crd).expect("CRD renders");
            if update {
                std::fs::write(&path, &rendered).expect("write CRD");
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "stale CRD manifests {stale:?}: run FERROLB_UPDATE_GOLDEN=1 cargo test -p ferrolb-api crd"
        );
    }

    #[test]
    fn every_kind_has_a_status_subresource_and_the_metallb_group() {
        let crds = all().expect("CRDs generate");
        assert_eq!(crds.len(), 9);
        for crd in &crds {
            assert_eq!(crd.spec.group, "metallb.io");
            assert_eq!(crd.spec.scope, "Namespaced");
            for version in &crd.spec.versions {
                let status = version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref());
                assert!(
                    status.is_some(),
                    "{} {} lacks a status subresource",
                    crd.spec.names.kind,
                    version.name
                );
            }
        }
    }

    #[test]
    fn bgppeer_serves_both_versions_and_stores_v1beta2() {
        let crds = all().expect("CRDs generate");
        let peer = crds
            .iter()
            .find(|c| c.spec.names.kind == "BGPPeer")
            .expect("BGPPeer CRD");
        let versions: Vec<(&str, bool, bool)> = peer
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert!(versions.contains(&("v1beta2", true, true)));
        assert!(versions.contains(&("v1beta1", true, false)));
    }

    #[test]
    fn schemas_carry_defaults_and_rules_but_no_nullable() {
        let json = serde_json::to_string(&all().expect("CRDs generate")).expect("json");
        assert!(!json.contains("nullable"));
        assert!(!json.contains("uint"));
        for needle in [
            r#""default":179"#,
            r#""default":true"#,
            r#""default":128"#,
            r#""enum":["internal","external"]"#,
            "duration(self).getSeconds() >= 1",
            "serviceSelectors can only be used",
            r#""x-kubernetes-list-type":"map""#,
            r#""x-kubernetes-map-type":"atomic""#,
        ] {
            assert!(json.contains(needle), "missing {needle}");
        }
    }
}
