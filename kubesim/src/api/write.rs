//! Writes: create (as a field manager or as an apply), update, patch (merge, JSON, strategic
//! merge, apply), delete with propagation, deletecollection; each object passes admission, and a
//! stored CRD registers (or unregisters) the type it defines.

use serde_json::{Value, json};

use super::{ApiState, Reply, present};
use crate::admission;
use crate::error::{ApiError, Cause, qualified};
use crate::gc::{self, Propagation};
use crate::managed;
use crate::meta::{meta_mut, meta_str};
use crate::patch::{self, PatchKind};
use crate::request::{ResourceRequest, delete_options, is_dry_run, parse_body, preconditions};
use crate::resources::{self, Resolved};
use crate::routing::{Query, Target};
use crate::storage::Preconditions;

/// What a PATCH asks for beyond its body.
#[derive(Debug, Clone, Copy)]
struct PatchWrite<'a> {
    kind: PatchKind,
    /// Sent to the status subresource.
    status: bool,
    manager: &'a str,
}

/// Who a create writes as: a manager whose fields are recorded after defaults, or an apply whose
/// `managedFields` are already computed.
#[derive(Debug, Clone, Copy)]
pub enum Writer<'a> {
    Update(&'a str),
    Applied,
}

impl ApiState {
    /// POST: creates the body as the request's field manager.
    pub(super) fn post(&self, req: &ResourceRequest<'_>) -> Result<Reply, ApiError> {
        let t = &req.target;
        let body = parse_body(req.content_type, &req.body)?;
        let manager = req.manager();
        let created = self.create_as(
            &t.res,
            t.namespace.as_deref(),
            body,
            &req.query,
            Writer::Update(&manager),
        )?;
        Ok(Reply::Json(201, created))
    }

    /// PATCH of one object (or of its status).
    pub(super) fn patch_request(
        &self,
        req: &ResourceRequest<'_>,
        name: &str,
        status: bool,
    ) -> Result<Reply, ApiError> {
        let t = &req.target;
        let kind = PatchKind::from_content_type(req.content_type)?;
        if kind == PatchKind::StrategicMerge && t.res.info.is_custom {
            return Err(ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            ));
        }
        let patch_body = patch::parse_body(kind, &req.body)?;
        let write = PatchWrite {
            kind,
            status,
            manager: &req.manager(),
        };
        let (code, object) = self.patch(t, name, &write, &patch_body, &req.query)?;
        Ok(Reply::Json(code, object))
    }

    /// DELETE of one object, with its options (propagation, preconditions, dry run).
    pub(super) fn delete_request(
        &self,
        req: &ResourceRequest<'_>,
        name: &str,
    ) -> Result<Reply, ApiError> {
        let t = &req.target;
        let options = delete_options(req)?;
        let propagation = Propagation::requested(&options, &req.query)?;
        let preconditions = preconditions(&options);
        let dry_run_in_body = options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
        if is_dry_run(&req.query) || dry_run_in_body {
            return Ok(Reply::Json(
                200,
                self.get(&t.res, t.namespace.as_deref(), name)?,
            ));
        }
        let namespace = t.namespace.as_deref();
        let last = self.delete(&t.res, namespace, name, &preconditions, propagation)?;
        Ok(Reply::Json(200, last))
    }

    /// Registers or refreshes the resource type a stored CRD defines.
    fn sync_crd(&self, res: &Resolved, crd: &Value) {
        if res.info.group == "apiextensions.k8s.io"
            && res.info.plural == "customresourcedefinitions"
            && let Some(info) = resources::from_crd(crd)
        {
            self.registry_mut().upsert_custom(info);
        }
    }

    /// Creates an object as kubesim's own manager (bootstrap and fixtures).
    pub fn create(
        &self,
        res: &Resolved,
        namespace: Option<&str>,
        object: Value,
        query: &Query,
    ) -> Result<Value, ApiError> {
        self.create_as(res, namespace, object, query, Writer::Update("kubesim"))
    }

    fn create_as(
        &self,
        res: &Resolved,
        namespace: Option<&str>,
        object: Value,
        query: &Query,
        writer: Writer<'_>,
    ) -> Result<Value, ApiError> {
        let mut object = res.info.to_storage(object);
        admission::check_namespace(res, namespace, &object)?;
        if meta_str(&object, "name").is_empty() && meta_str(&object, "generateName").is_empty() {
            return Err(ApiError::invalid(
                &res.info.group,
                &res.info.kind,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        // The API server ignores status on create, except for Nodes: the kubelet registers its
        // Node with addresses and conditions in one call.
        let keeps_status = res.info.group.is_empty() && res.info.kind == "Node";
        if res.has_status()
            && !keeps_status
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        if let Some(ns) = namespace {
            meta_mut(&mut object).insert("namespace".into(), json!(ns));
        }
        admission::admit(res, &mut object, None, query)?;
        if let Writer::Update(manager) = writer {
            let api_version = res.api_version();
            let manager = managed::Manager {
                name: manager,
                api_version: &api_version,
                subresource: "",
            };
            managed::record_update(None, &mut object, &manager);
        }
        if is_dry_run(query) {
            return Ok(present(res, &object));
        }
        let created = self.store.create(
            res.info.storage_group(),
            &res.info.plural,
            namespace.unwrap_or(""),
            object,
        )?;
        self.sync_crd(res, &created);
        Ok(present(res, &created))
    }

    pub(super) fn update(
        &self,
        t: &Target,
        name: &str,
        body: Value,
        status: bool,
        query: &Query,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let res = &t.res;
        admission::check_namespace(res, t.namespace.as_deref(), &body)?;
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let key = Self::key(res, t.namespace.as_deref(), name);
        let body = res.info.to_storage(body);
        let updated = self.store.update(&key, is_dry_run(query), |current| {
            let mut next = admission::merge_for_endpoint(res, current, body, status);
            admission::admit(res, &mut next, Some(current), query)?;
            let api_version = res.api_version();
            let manager = managed::Manager {
                name: manager,
                api_version: &api_version,
                subresource: if status { "status" } else { "" },
            };
            managed::record_update(Some(current), &mut next, &manager);
            Ok(next)
        })?;
        if !is_dry_run(query) {
            self.sync_crd(res, &updated);
        }
        Ok(present(res, &updated))
    }

    fn patch(
        &self,
        t: &Target,
        name: &str,
        write: &PatchWrite<'_>,
        patch_body: &Value,
        query: &Query,
    ) -> Result<(u16, Value), ApiError> {
        let res = &t.res;
        let (kind, status) = (write.kind, write.status);
        let key = Self::key(res, t.namespace.as_deref(), name);
        if kind == PatchKind::Apply && query.get("fieldManager").is_none() {
            return Err(ApiError::BadRequest(
                "PATCH requests with an apply content type must specify a fieldManager".into(),
            ));
        }
        let api_version = res.api_version();
        let manager = managed::Manager {
            name: write.manager,
            api_version: &api_version,
            subresource: if status { "status" } else { "" },
        };
        let apply = |current: Option<&Value>| {
            let current = current.map(|c| present(res, c));
            let force = query.get("force") == Some("true");
            managed::apply(current.as_ref(), patch_body, &manager, force).map_err(|causes| {
                ApiError::ApplyConflict {
                    group: res.info.group.clone(),
                    resource: qualified(&res.info.group, &res.info.plural),
                    name: name.to_owned(),
                    causes,
                }
            })
        };
        if kind == PatchKind::Apply && !status && self.store.get(&key).is_none() {
            let mut object = apply(None)?;
            meta_mut(&mut object).insert("name".into(), json!(name));
            let created =
                self.create_as(res, t.namespace.as_deref(), object, query, Writer::Applied)?;
            return Ok((201, created));
        }
        let updated = self.store.update(&key, is_dry_run(query), |current| {
            let mut doc = present(res, current);
            if kind == PatchKind::Apply {
                doc = apply(Some(current))?;
            } else {
                patch::apply(kind, &mut doc, patch_body)?;
            }
            if meta_str(&doc, "name") != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(&doc, "name")
                )));
            }
            let doc = res.info.to_storage(doc);
            let mut next = admission::merge_for_endpoint(res, current, doc, status);
            admission::admit(res, &mut next, Some(current), query)?;
            if kind != PatchKind::Apply {
                managed::record_update(Some(current), &mut next, &manager);
            }
            Ok(next)
        })?;
        if !is_dry_run(query) {
            self.sync_crd(res, &updated);
        }
        Ok((200, present(res, &updated)))
    }

    pub fn delete(
        &self,
        res: &Resolved,
        namespace: Option<&str>,
        name: &str,
        preconditions: &Preconditions,
        propagation: Propagation,
    ) -> Result<Value, ApiError> {
        let key = Self::key(res, namespace, name);
        let last = gc::delete(&self.store, &key, preconditions, propagation)?;
        let is_crd = res.info.group == "apiextensions.k8s.io"
            && res.info.plural == "customresourcedefinitions";
        if is_crd
            && self.store.get(&key).is_none()
            && let Some(info) = resources::from_crd(&last)
        {
            self.store.remove_all(&info.group, &info.plural);
            self.registry_mut().remove_custom(&info.group, &info.plural);
        }
        Ok(present(res, &last))
    }

    pub(super) fn delete_collection(&self, req: &ResourceRequest<'_>) -> Result<Reply, ApiError> {
        let res = &req.target.res;
        let propagation = Propagation::requested(&delete_options(req)?, &req.query)?;
        let selectors = Self::selectors(&req.query)?;
        let (rv, items) = self.store.list(
            res.info.storage_group(),
            &res.info.plural,
            req.target.namespace.as_deref(),
        );
        let mut deleted = Vec::new();
        for item in items
            .iter()
            .filter(|o| selectors.matches(&res.info.from_storage(o)))
        {
            let ns = meta_str(item, "namespace");
            let ns = (!ns.is_empty()).then_some(ns);
            let name = meta_str(item, "name");
            match self.delete(res, ns, name, &Preconditions::default(), propagation) {
                Ok(last) => deleted.push(last),
                Err(ApiError::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(Reply::Json(
            200,
            json!({
                "kind": res.info.list_kind(),
                "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": deleted,
            }),
        ))
    }
}
