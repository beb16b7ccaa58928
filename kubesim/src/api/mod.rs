//! The verbs on one resolved resource path: get, list (selectors, limit/continue, Tables),
//! watch, and create/update/patch/delete/deletecollection, which pass each object through
//! [`admission`](super::admission) into the [`Store`], plus CRD registration, `dryRun=All` and
//! the request log. HTTP-free: takes parsed requests and returns [`Reply`]s.
//!
//! - this module: the state, the request log, dispatch by verb;
//! - `read`: get, list, watch;
//! - `write`: create, update, patch, delete, deletecollection, CRD registration.

mod read;
mod write;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::auth::Tokens;
use super::error::ApiError;
use super::faults::Faults;
pub use super::options::Options;
use super::request::{ResourceRequest, parse_body};
use super::resources::{Registry, Resolved};
use super::routing::Query;
use super::storage::{ObjectKey, Store};
use super::tls::Serving;

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
    /// Who sent it (`system:serviceaccount:NS:NAME`, ...) with RBAC on; empty otherwise, and for
    /// a request refused before authentication.
    pub user: String,
    /// The bearer token it carried (empty: none), so a test tells clients apart.
    pub client: String,
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
            ("GET", Some(name)) => self.get_one(&req, name),
            ("POST", None) => self.post(&req),
            ("PUT", Some(name)) => {
                let body = parse_body(req.content_type, &req.body)?;
                let updated = self.update(t, name, body, status, &req.query, &req.manager())?;
                Ok(Reply::Json(200, updated))
            }
            ("PATCH", Some(name)) => self.patch_request(&req, name, status),
            ("DELETE", Some(name)) => self.delete_request(&req, name),
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
}

/// Shared handle to the state.
pub type SharedState = Arc<ApiState>;
