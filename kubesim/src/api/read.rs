//! Reads: one object (as JSON, a Table or metadata only), lists with selectors and
//! limit/continue, and watches from a resourceVersion.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ApiState, Reply, present};
use crate::error::ApiError;
use crate::meta::meta_str;
use crate::request::{ResourceRequest, decode_continue, encode_continue};
use crate::routing::Query;
use crate::selectors::{FieldSelector, LabelSelector, Selectors};
use crate::tables::{self, View};
use crate::watch::{self, WatchRequest};

impl ApiState {
    /// GET of one object, in the view the client asked for.
    pub(super) fn get_one(&self, req: &ResourceRequest<'_>, name: &str) -> Result<Reply, ApiError> {
        let t = &req.target;
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

    pub(super) fn selectors(query: &Query) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?,
        })
    }

    pub(super) fn list(&self, req: &ResourceRequest<'_>) -> Result<Reply, ApiError> {
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

    pub(super) fn watch(&self, req: &ResourceRequest<'_>) -> Result<Reply, ApiError> {
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
}
