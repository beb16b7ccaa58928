//! Request routing: which endpoint a path names (discovery, OpenAPI, or a resource path with
//! its namespace, name and subresource), and the query parameters. Pure.

use std::collections::HashMap;

use super::error::ApiError;
use super::resources::{Registry, Resolved};

/// The endpoint a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/GROUP`
    Group(String),
    /// `/api/v1` or `/apis/GROUP/VERSION` (an APIResourceList)
    Resources {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3 {
        group: String,
        version: String,
    },
    /// A path below a group-version, resolved against the registry by [`resolve`].
    Object {
        group: String,
        version: String,
        rest: Vec<String>,
    },
    Unknown,
}

/// Splits a path into its route.
pub fn route(path: &str) -> Route {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group((*g).into()),
        ["api", v] => Route::Resources {
            group: String::new(),
            version: (*v).into(),
        },
        ["apis", g, v] => Route::Resources {
            group: (*g).into(),
            version: (*v).into(),
        },
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", "api", v] => Route::OpenApiV3 {
            group: String::new(),
            version: (*v).into(),
        },
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3 {
            group: (*g).into(),
            version: (*v).into(),
        },
        ["api", v, rest @ ..] => Route::Object {
            group: String::new(),
            version: (*v).into(),
            rest: rest.iter().map(|x| (*x).to_owned()).collect(),
        },
        ["apis", g, v, rest @ ..] => Route::Object {
            group: (*g).into(),
            version: (*v).into(),
            rest: rest.iter().map(|x| (*x).to_owned()).collect(),
        },
        _ => Route::Unknown,
    }
}

/// A resource path resolved against the registry.
#[derive(Debug, Clone)]
pub struct Target {
    pub res: Resolved,
    /// Set for namespaced paths; None for cluster-scoped kinds and all-namespace lists.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Resolves `/…/[namespaces/NS/]PLURAL[/NAME[/SUB]]`.
pub fn resolve(
    registry: &Registry,
    group: &str,
    version: &str,
    rest: &[String],
) -> Result<Target, ApiError> {
    let namespaced = match rest {
        [ns_word, ns, plural, tail @ ..] if ns_word == "namespaces" && tail.len() <= 2 => registry
            .resolve(group, version, plural)
            .filter(|r| r.info.namespaced)
            .map(|res| Target {
                res,
                namespace: Some(ns.clone()),
                name: tail.first().cloned(),
                subresource: tail.get(1).cloned(),
            }),
        _ => None,
    };
    if let Some(target) = namespaced {
        return Ok(target);
    }
    match rest {
        [plural, tail @ ..] if tail.len() <= 2 => {
            let res = registry
                .resolve(group, version, plural)
                .ok_or(ApiError::NoSuchPath)?;
            if res.info.namespaced && !tail.is_empty() {
                return Err(ApiError::NoSuchPath);
            }
            Ok(Target {
                res,
                namespace: None,
                name: tail.first().cloned(),
                subresource: tail.get(1).cloned(),
            })
        }
        _ => Err(ApiError::NoSuchPath),
    }
}

/// Query parameters, last value wins.
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Sets one parameter (e.g. `dryRun=All` for an admission dry run).
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_owned(), value.to_owned());
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true" | "True"))
    }

    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid {key} {v:?}: not a number")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_and_cluster_paths_resolve() {
        let reg = Registry::with_builtins();
        let Route::Object {
            group,
            version,
            rest,
        } = route("/api/v1/namespaces/ns/services/web/status")
        else {
            panic!("expected an object route");
        };
        let t = resolve(&reg, &group, &version, &rest).expect("resolves");
        assert_eq!(
            (
                t.res.info.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("services", Some("ns"), Some("web"), Some("status"))
        );
        let Route::Object {
            group,
            version,
            rest,
        } = route("/api/v1/namespaces/ns")
        else {
            panic!("expected an object route");
        };
        let t = resolve(&reg, &group, &version, &rest).expect("resolves");
        assert_eq!(
            (t.res.info.plural.as_str(), t.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        assert!(resolve(&reg, "", "v1", &["nothing".into()]).is_err());
    }
}
