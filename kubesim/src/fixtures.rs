//! Test conveniences on a running kubesim: loading YAML manifests, creating objects straight
//! into the store (no HTTP), and raw HTTP requests whose status codes and bodies tests check.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use super::KubeSim;
use super::error::ApiError;
use super::meta::meta_str;
use super::routing::Query;

/// Why a fixture could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: no manifests found")]
    Empty { path: PathBuf },
    #[error("no served resource for {api_version} {kind}")]
    UnknownKind { api_version: String, kind: String },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("HTTP request failed: {0}")]
    Http(String),
}

impl FixtureError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Read { .. } => "Read",
            Self::Yaml { .. } => "Yaml",
            Self::Empty { .. } => "Empty",
            Self::UnknownKind { .. } => "UnknownKind",
            Self::Api(e) => e.reason(),
            Self::Http(_) => "Http",
        }
    }
}

/// The objects in a YAML file, or in every `*.yaml`/`*.yml` file of a directory (sorted by file
/// name). Empty documents are skipped; finding no object at all is an error.
pub fn load_manifests(path: &Path) -> Result<Vec<Value>, FixtureError> {
    let read_err = |source| FixtureError::Read {
        path: path.to_owned(),
        source,
    };
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| FixtureError::Read {
            path: file.clone(),
            source,
        })?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| FixtureError::Yaml {
                path: file.clone(),
                message: e.to_string(),
            })?;
        objects.extend(docs.into_iter().filter(|d| d.is_object()));
    }
    if objects.is_empty() {
        return Err(FixtureError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(objects)
}

/// The answer to a raw request.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl RawResponse {
    /// The body as JSON (Null if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl KubeSim {
    /// Creates an object straight in the store, as a POST would (schema, defaults, CRD
    /// registration included). Its apiVersion and kind pick the resource.
    pub fn create_object(&self, object: Value) -> Result<Value, FixtureError> {
        let text = |k: &str| {
            object
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let res = self
            .state
            .registry()
            .resolve_kind(&api_version, &kind)
            .ok_or(FixtureError::UnknownKind { api_version, kind })?;
        let namespace = res.info.namespaced.then(|| {
            let ns = meta_str(&object, "namespace");
            if ns.is_empty() {
                "default".to_owned()
            } else {
                ns.to_owned()
            }
        });
        Ok(self
            .state
            .create(&res, namespace.as_deref(), object, &Query::default())?)
    }

    /// An object straight from the store, as a GET would return it; `None` when absent.
    pub fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, FixtureError> {
        let res = self
            .state
            .registry()
            .resolve_kind(api_version, kind)
            .ok_or_else(|| FixtureError::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })?;
        Ok(self.state.get(&res, namespace, name).ok())
    }

    /// Creates every object of a manifest file or directory, in order; returns how many.
    pub fn create_from(&self, path: &Path) -> Result<usize, FixtureError> {
        let objects = load_manifests(path)?;
        let count = objects.len();
        for object in objects {
            self.create_object(object)?;
        }
        Ok(count)
    }

    /// Sends one HTTP request (JSON body if any) and returns the raw answer.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Option<&Value>,
    ) -> Result<RawResponse, FixtureError> {
        let mut builder = hyper::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        if let Some(accept) = accept {
            builder = builder.header("accept", accept);
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let request = builder
            .body(kube::client::Body::from(bytes))
            .map_err(|e| FixtureError::Http(e.to_string()))?;
        let response = self
            .client()
            .send(request)
            .await
            .map_err(|e| FixtureError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| FixtureError::Http(e.to_string()))?;
        Ok(RawResponse {
            status,
            content_type,
            body,
        })
    }
}
