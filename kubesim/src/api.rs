//! The verbs on one resolved resource path: get, list (selectors, limit/continue, Tables),
//! watch, and create/update/patch/delete/deletecollection, which pass each object through
//! [`admission`] into the [`Store`], plus CRD registration, `dryRun=All` and the
//! request log. HTTP-free: takes parsed requests and returns [`Reply`]s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::admission;
use super::auth::Tokens;
use super::error::{ApiError, Cause, qualified};
use super::faults::Faults;
use super::gc::{self, Propagation};
use super::managed;
use super::meta::{meta_mut, meta_str};
pub use super::options::Options;
use super::patch::{self, PatchKind};
use super::request::{
    ResourceRequest, decode_continue, delete_options, encode_continue, is_dry_run, parse_body,
    preconditions,
};
use super::resources::{self, Registry, Resolved};
use super::routing::{Query, Target};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::storage::{ObjectKey, Preconditions, Store};
use super::tables::{self, View};
use super::tls::Serving;
use super::watch::{self, WatchRequest};

/// What a handler answers: a JSON document with its status code, or a watch stream.
#[derive(Debug)]
pub enum Reply {
    Json(u16, Value),
    /// A 200 watch stream of newline-delimited events.
    Stream(mpsc::Receiver<Bytes>),
    /// A complete watch answer of one line (the 410 ERROR event).
    StreamLine(Bytes),
}

/// One answered request, kept so tests can check what a client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The HTTP status; a watch that ended in a 410 ERROR event is recorded as 410.
    pub status: u16,
}

/// How many requests the log keeps (oldest dropped first).
const REQUEST_LOG_CAPACITY: usize = 10_000;

/// Everything a running kubesim holds: the store, the served types and the options.
#[derive(Debug)]
pub struct ApiState {
    pub store: Store,
    pub registry: RwLock<Registry>,
    pub options: Options,
    /// Faults a test injects (pause, error answers, dropped watches).
    pub faults: Faults,
    /// Bearer tokens and the users they stand for (checked when `options.rbac` is on).
    pub tokens: Tokens,
    /// The serving certificate for HTTPS on the same port (made when `options.rbac` is on).
    pub tls: Option<Serving>,
    /// The most recent requests, for tests.
    requests: Mutex<VecDeque<RequestRecord>>,
}

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

fn present(res: &Resolved, object: &Value) -> Value {
    let mut out = res.info.from_storage(object).into_owned();
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!(res.api_version()));
        map.insert("kind".into(), json!(res.info.kind));
    }
    out
}

impl ApiState {
    pub fn new(options: Options, seed: u64) -> Self {
        Self {
            store: Store::new(options.event_window, seed),
            registry: RwLock::new(Registry::with_builtins()),
            options,
            faults: Faults::default(),
            tokens: Tokens::default(),
            tls: None,
            requests: Mutex::new(VecDeque::new()),
        }
    }

    /// Records an answered request.
    pub fn record(&self, record: RequestRecord) {
        let mut log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(record);
    }

    /// The requests answered so far (up to the log's capacity), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// A snapshot of the registry (cheap: resource types are shared).
    pub fn registry(&self) -> Registry {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the namespaces every cluster has.
    pub fn bootstrap(&self) -> Result<(), ApiError> {
        let res = self
            .registry()
            .resolve("", "v1", "namespaces")
            .ok_or(ApiError::NoSuchPath)?;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.create(
                &res,
                None,
                json!({"metadata": {"name": ns}}),
                &Query::default(),
            )?;
        }
        Ok(())
    }

    /// Serves one resource request.
    pub fn handle(&self, req: ResourceRequest<'_>) -> Result<Reply, ApiError> {
        let t = &req.target;
        let sub = t.subresource.as_deref();
        if let Some(s) = sub
            && !(s == "status" && t.res.has_status())
        {
            return Err(ApiError::NoSuchPath);
        }
        let status = sub == Some("status");
        if req.method == "GET"
            && let Some(rv) = req.query.get("resourceVersion")
            && !rv.is_empty()
            && rv.parse::<u64>().is_err()
        {
            return Err(ApiError::InvalidResourceVersion(rv.to_owned()));
        }
        match (req.method, t.name.as_deref()) {
            ("GET", None) if req.query.flag("watch") => self.watch(&req),
            ("GET", None) => self.list(&req),
            ("GET", Some(name)) => {
                let object = self.get(&t.res, t.namespace.as_deref(), name)?;
                let rv = self.store.resource_version();
                Ok(Reply::Json(
                    200,
                    match View::from_request(req.accept, req.query.get("includeObject")) {
                        View::Table(include) => tables::table(&t.res, &[object], rv, None, include),
                        View::Metadata => tables::metadata_only(&object),
                        View::Object => object,
                    },
                ))
            }
            ("POST", None) => {
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
            ("PUT", Some(name)) => {
                let body = parse_body(req.content_type, &req.body)?;
                let updated = self.update(t, name, body, status, &req.query, &req.manager())?;
                Ok(Reply::Json(200, updated))
            }
            ("PATCH", Some(name)) => {
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
            ("DELETE", Some(name)) => {
                let options = delete_options(&req)?;
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
                Ok(Reply::Json(
                    200,
                    self.delete(
                        &t.res,
                        t.namespace.as_deref(),
                        name,
                        &preconditions,
                        propagation,
                    )?,
                ))
            }
            ("DELETE", None) => self.delete_collection(&req),
            _ => Err(ApiError::MethodNotAllowed),
        }
    }

    fn key(res: &Resolved, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey::new(
            res.info.storage_group(),
            &res.info.plural,
            namespace.unwrap_or(""),
            name,
        )
    }

    pub fn get(
        &self,
        res: &Resolved,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.store
            .get(&Self::key(res, namespace, name))
            .map(|o| present(res, &o))
            .ok_or_else(|| ApiError::not_found(&res.info.group, &res.info.plural, name))
    }

    fn selectors(query: &Query) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?,
        })
    }

    fn list(&self, req: &ResourceRequest<'_>) -> Result<Reply, ApiError> {
        let res = &req.target.res;
        let selectors = Self::selectors(&req.query)?;
        let (rv, items) = self.store.list(
            res.info.storage_group(),
            &res.info.plural,
            req.target.namespace.as_deref(),
        );
        let mut items: Vec<Value> = items
            .into_iter()
            .filter(|o| selectors.matches(&res.info.from_storage(o)))
            .collect();
        if let Some(token) = req.query.get("continue") {
            let after = decode_continue(token)?;
            items.retain(|o| {
                (
                    meta_str(o, "namespace").to_owned(),
                    meta_str(o, "name").to_owned(),
                ) > after
            });
        }
        let mut continue_token = None;
        let mut remaining = 0;
        if let Some(limit) = req.query.number("limit")?.filter(|l| *l > 0)
            && items.len() as u64 > limit
        {
            remaining = items.len() as u64 - limit;
            items.truncate(limit as usize);
            continue_token = items.last().map(encode_continue);
        }
        let items: Vec<Value> = items.iter().map(|o| present(res, o)).collect();
        let (list_kind, api_version, items) =
            match View::from_request(req.accept, req.query.get("includeObject")) {
                View::Table(include) => {
                    let table = tables::table(res, &items, rv, continue_token.as_deref(), include);
                    return Ok(Reply::Json(200, table));
                }
                View::Metadata => (
                    "PartialObjectMetadataList".to_owned(),
                    "meta.k8s.io/v1".to_owned(),
                    items.iter().map(tables::metadata_only).collect(),
                ),
                View::Object => (res.info.list_kind(), res.api_version(), items),
            };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if let Some(token) = continue_token {
            metadata["continue"] = json!(token);
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(Reply::Json(
            200,
            json!({
                "kind": list_kind,
                "apiVersion": api_version,
                "metadata": metadata,
                "items": items,
            }),
        ))
    }

    fn watch(&self, req: &ResourceRequest<'_>) -> Result<Reply, ApiError> {
        let res = &req.target.res;
        let q = &req.query;
        let send_initial_events = q.flag("sendInitialEvents");
        let after =
            match q.get("resourceVersion") {
                _ if send_initial_events => None,
                None | Some("0") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!("invalid resource version {rv:?}"))
                })?),
            };
        let feed = match self.store.watch(
            res.info.storage_group(),
            &res.info.plural,
            req.target.namespace.as_deref(),
            after,
        ) {
            Ok(feed) => feed,
            Err(expired @ ApiError::Expired { .. }) => {
                return Ok(Reply::StreamLine(watch::error_line(&expired)));
            }
            Err(other) => return Err(other),
        };
        let timeout = q
            .number("timeoutSeconds")?
            .map(Duration::from_secs)
            .unwrap_or(self.options.default_watch_timeout);
        let request = WatchRequest {
            group: res.info.storage_group().to_owned(),
            resource: res.info.plural.clone(),
            namespace: req.target.namespace.clone(),
            selectors: Self::selectors(q)?,
            api_version: res.api_version(),
            kind: res.info.kind.clone(),
            allow_bookmarks: q.flag("allowWatchBookmarks"),
            send_initial_events,
            timeout,
            bookmark_interval: self.options.bookmark_interval,
            view: View::from_request(req.accept, q.get("includeObject")),
            resolved: res.clone(),
        };
        Ok(Reply::Stream(watch::spawn(request, feed)))
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

    fn update(
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

    fn delete_collection(&self, req: &ResourceRequest<'_>) -> Result<Reply, ApiError> {
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

/// Shared handle to the state.
pub type SharedState = Arc<ApiState>;
