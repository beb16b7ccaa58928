//! What happens to an object between the request and the store: the kind and namespace
//! checks, metadata validation, a custom resource's schema (prune → default → validate, with
//! `fieldValidation=Strict`), built-in defaults, CRD checks and status, and the
//! status-subresource rule of which part of a write is kept. Pure.

use serde_json::{Value, json};

use super::builtin;
use super::error::ApiError;
use super::event_views;
use super::meta::{meta_mut, meta_str, now_rfc3339};
use super::resources::Resolved;
use super::routing::Query;
use super::validation;
use super::{rules, schema};

/// Checks and completes an object about to be written: kind/apiVersion, CR schema
/// (prune, default, validate), built-in defaults, CRD checks.
pub fn admit(
    res: &Resolved,
    object: &mut Value,
    old: Option<&Value>,
    query: &Query,
) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::BadRequest(
            "the object must be a JSON object".into(),
        ));
    }
    let body_kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if !body_kind.is_empty() && body_kind != res.info.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({body_kind}) does not match the expected kind ({})",
            res.info.kind
        )));
    }
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(res.api_version()));
        map.insert("kind".into(), json!(res.info.kind));
    }
    let name = meta_str(object, "name").to_owned();
    let mut causes = validation::check_metadata(&res.info.group, &res.info.plural, object);
    if old.is_none() && event_views::is_events_view(&res.info.group, &res.info.plural) {
        causes.extend(event_views::validate_create(object));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            &res.info.group,
            &res.info.kind,
            &name,
            causes,
        ));
    }
    if let Some(schema) = res.schema() {
        let unknown = schema::prune(schema, object);
        if !unknown.is_empty() && query.get("fieldValidation") == Some("Strict") {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            let kind = &res.info.kind;
            return Err(ApiError::BadRequest(format!(
                "{kind} in version {:?} cannot be handled as a {kind}: strict decoding error: {}",
                res.version,
                list.join(", ")
            )));
        }
        schema::apply_defaults(schema, object);
        let mut causes = schema::validate(schema, object);
        causes.extend(rules::validate(schema, object, old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                &res.info.group,
                &res.info.kind,
                &name,
                causes,
            ));
        }
    }
    builtin::default_object(&res.info.group, &res.info.plural, object, old);
    if res.info.group == "apiextensions.k8s.io" && res.info.plural == "customresourcedefinitions" {
        let causes = builtin::validate_crd(object);
        if !causes.is_empty() {
            return Err(builtin::crd_error(object, causes));
        }
        object["status"] = builtin::crd_status(object, &now_rfc3339());
    }
    Ok(())
}

/// The namespace in the body, if any, must be the one in the path.
pub fn check_namespace(
    res: &Resolved,
    namespace: Option<&str>,
    object: &Value,
) -> Result<(), ApiError> {
    let in_body = meta_str(object, "namespace");
    if let Some(ns) = namespace
        && !in_body.is_empty()
        && in_body != ns
    {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    if res.info.namespaced && namespace.is_none() {
        return Err(ApiError::NoSuchPath);
    }
    Ok(())
}

/// The object a write on the main endpoint or `/status` stores, given the stored one.
pub fn merge_for_endpoint(
    res: &Resolved,
    current: &Value,
    mut requested: Value,
    status: bool,
) -> Value {
    if status {
        let mut next = current.clone();
        match requested.get("status") {
            Some(s) => next["status"] = s.clone(),
            None => {
                if let Some(map) = next.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        let rv = meta_str(&requested, "resourceVersion").to_owned();
        meta_mut(&mut next).insert("resourceVersion".into(), json!(rv));
        next
    } else {
        if res.has_status()
            && let Some(map) = requested.as_object_mut()
        {
            match current.get("status") {
                Some(s) => map.insert("status".into(), s.clone()),
                None => map.remove("status"),
            };
        }
        requested
    }
}
