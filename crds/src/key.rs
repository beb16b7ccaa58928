//! `namespace/name`: how FerroLB names an object in maps, logs and errors. One place, so the
//! controller, the webhook and the speaker never disagree on the shape of a key. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `namespace/name` from the two parts; a missing part is empty (cluster-scoped objects, or an
/// object the API server sent without a name, which then cannot clash with a real one).
pub fn of_parts(namespace: Option<&str>, name: Option<&str>) -> String {
    format!(
        "{}/{}",
        namespace.unwrap_or_default(),
        name.unwrap_or_default()
    )
}

/// `namespace/name` of an object's metadata.
pub fn of(meta: &ObjectMeta) -> String {
    of_parts(meta.namespace.as_deref(), meta.name.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_joins_namespace_and_name_with_a_slash() {
        let meta = ObjectMeta {
            namespace: Some("shop".into()),
            name: Some("web".into()),
            ..ObjectMeta::default()
        };
        assert_eq!(of(&meta), "shop/web");
    }

    #[test]
    fn a_cluster_scoped_object_has_an_empty_namespace_part() {
        assert_eq!(of_parts(None, Some("node-1")), "/node-1");
        assert_eq!(of(&ObjectMeta::default()), "/");
    }
}
