//! Step 4 of kubesim: watches — events after a resourceVersion, selector transitions,
//! bookmarks, streaming lists ending in the initial-events-end bookmark, 410 Expired for RVs that
//! left the window, timeoutSeconds — and kube-runtime reflectors converging and re-listing after
//! a 410.

use std::time::Duration;

use ferrolb_kubesim::{KubeSim, Options};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, DeleteParams, PartialObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use serde_json::{Value, json};

fn config_map(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .expect("a valid ConfigMap")
}

fn rv_of(cm: &ConfigMap) -> String {
    cm.metadata.resource_version.clone().expect("has an RV")
}

/// Lines of a watch answer that ends by itself (timeoutSeconds set).
async fn watch_lines(sim: &KubeSim, query: &str) -> (u16, Vec<Value>) {
    let path = format!("/api/v1/namespaces/default/configmaps?watch=1&{query}");
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        sim.raw("GET", &path, None, None, None),
    )
    .await
    .expect("the watch ends by its timeout")
    .expect("request");
    let lines = response
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
        .collect();
    (response.status, lines)
}

fn summary(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_watch_from_a_resource_version_streams_the_later_changes_in_order() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let first = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let stream = cms
        .watch(
            &WatchParams::default().timeout(5).disable_bookmarks(),
            &rv_of(&first),
        )
        .await
        .expect("watch starts");
    let mut stream = Box::pin(stream);
    cms.create(&PostParams::default(), &config_map("b", json!({})))
        .await
        .expect("create b");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch a");
    cms.delete("b", &DeleteParams::default())
        .await
        .expect("delete b");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("an event in time")
            .expect("a good event")
            .expect("the stream goes on");
        seen.push(match event {
            WatchEvent::Added(o) => ("ADDED", o.metadata.name),
            WatchEvent::Modified(o) => ("MODIFIED", o.metadata.name),
            WatchEvent::Deleted(o) => ("DELETED", o.metadata.name),
            other => panic!("unexpected {other:?}"),
        });
    }
    let b = Some("b".to_owned());
    assert_eq!(
        seen,
        [
            ("ADDED", b.clone()),
            ("MODIFIED", Some("a".to_owned())),
            ("DELETED", b)
        ]
    );
}

#[tokio::test]
async fn leaving_a_label_selection_is_seen_as_deleted_and_entering_it_as_added() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    let created = cms
        .create(
            &PostParams::default(),
            &config_map("a", json!({"app": "web"})),
        )
        .await
        .expect("create");
    let start = rv_of(&created);
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .expect("relabel");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .expect("relabel back");
    let (_, lines) = watch_lines(
        &sim,
        &format!("resourceVersion={start}&labelSelector=app%3Dweb&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(
        summary(&lines),
        [
            ("DELETED".to_owned(), "a".to_owned()),
            ("ADDED".to_owned(), "a".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_watch_without_a_resource_version_starts_with_the_current_objects() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    sim.create_object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .expect("create");
    let (_, lines) = watch_lines(&sim, "timeoutSeconds=1").await;
    assert_eq!(summary(&lines), [("ADDED".to_owned(), "x".to_owned())]);
    assert_eq!(lines[0]["object"]["apiVersion"], "v1");
    assert_eq!(lines[0]["object"]["kind"], "ConfigMap");
}

#[tokio::test]
async fn streaming_lists_end_the_initial_events_with_an_annotated_bookmark() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    for name in ["a", "b"] {
        sim.create_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
        )
        .expect("create");
    }
    let (_, lines) = watch_lines(
        &sim,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    .await;
    let types: Vec<String> = summary(&lines).into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["ADDED", "ADDED", "BOOKMARK"]);
    let bookmark = &lines[2]["object"];
    assert_eq!(
        bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(
        bookmark["metadata"]["resourceVersion"],
        sim.resource_version().to_string()
    );
}

#[tokio::test]
async fn bookmarks_arrive_periodically_when_allowed() {
    let options = Options {
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kubesim starts");
    let rv = sim.resource_version();
    let (_, lines) = watch_lines(
        &sim,
        &format!("resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"),
    )
    .await;
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l["type"] == "BOOKMARK"),
        "{lines:?}"
    );
    let (_, without) = watch_lines(&sim, &format!("resourceVersion={rv}&timeoutSeconds=1")).await;
    assert!(without.is_empty());
}

#[tokio::test]
async fn a_resource_version_older_than_the_window_gets_410_expired() {
    let options = Options {
        event_window: 5,
        ..Options::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kubesim starts");
    let start = sim.resource_version();
    for i in 0..10 {
        sim.create_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}}),
        )
        .expect("create");
    }
    let (status, lines) =
        watch_lines(&sim, &format!("resourceVersion={start}&timeoutSeconds=1")).await;
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "ERROR");
    let error = &lines[0]["object"];
    assert_eq!(
        (
            error["kind"].as_str(),
            error["code"].as_u64(),
            error["reason"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"))
    );
}

#[tokio::test]
async fn timeout_seconds_ends_the_watch() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let began = std::time::Instant::now();
    let rv = sim.resource_version();
    watch_lines(&sim, &format!("resourceVersion={rv}&timeoutSeconds=1")).await;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn names(store: &reflector::Store<ConfigMap>) -> Vec<String> {
    let mut names: Vec<String> = store
        .state()
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_reflector_store_converges_on_the_server_state() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let (store, writer) = reflector::store();
    let stream =
        reflector(writer, watcher(cms.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    eventually("the initial list is in the store", || {
        names(&store) == ["a"]
    })
    .await;
    cms.create(&PostParams::default(), &config_map("b", json!({})))
        .await
        .expect("create b");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch a");
    cms.delete("b", &DeleteParams::default())
        .await
        .expect("delete b");
    cms.create(&PostParams::default(), &config_map("c", json!({})))
        .await
        .expect("create c");
    eventually("the store follows the changes", || {
        names(&store) == ["a", "c"]
            && store
                .state()
                .iter()
                .any(|c| c.data.as_ref().and_then(|d| d.get("k")).map(String::as_str) == Some("2"))
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_streaming_list_reflector_converges_too() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().streaming_lists()),
    );
    let task = tokio::spawn(stream.for_each(|_| async {}));
    eventually("the initial events are in the store", || {
        names(&store) == ["a"]
    })
    .await;
    cms.create(&PostParams::default(), &config_map("b", json!({})))
        .await
        .expect("create b");
    eventually("the store follows the changes", || {
        names(&store) == ["a", "b"]
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_reflector_relists_after_its_resource_version_expires() {
    let options = Options {
        event_window: 4,
        ..Options::default()
    };
    let sim = KubeSim::start_with(options).await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let (store, writer) = reflector::store();
    // Short watches without bookmarks: each reconnect resumes from the last ConfigMap RV seen.
    let config = watcher::Config::default().timeout(1).disable_bookmarks();
    let stream = reflector(writer, watcher(cms.clone(), config));
    let task = tokio::spawn(stream.for_each(|_| async {}));
    eventually("the initial list is in the store", || {
        names(&store) == ["a"]
    })
    .await;
    // Writes to another resource push the reflector's RV out of the window.
    let secrets: Api<Secret> = Api::default_namespaced(sim.client());
    for i in 0..8 {
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}}))
            .expect("valid secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }
    let expired_then_relisted = |requests: &[ferrolb_kubesim::api::RequestRecord]| {
        let configmaps = |r: &&ferrolb_kubesim::api::RequestRecord| r.path.ends_with("/configmaps");
        let expired = requests
            .iter()
            .filter(configmaps)
            .position(|r| r.status == 410);
        expired.is_some_and(|at| {
            requests
                .iter()
                .filter(configmaps)
                .skip(at + 1)
                .any(|r| !r.query.contains("watch"))
        })
    };
    eventually("a watch got 410 and the reflector listed again", || {
        expired_then_relisted(&sim.requests())
    })
    .await;
    cms.create(&PostParams::default(), &config_map("b", json!({})))
        .await
        .expect("create b");
    eventually("the store follows the changes after the re-list", || {
        names(&store) == ["a", "b"]
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn metadata_only_reads_and_watches_return_partial_object_metadata() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client());
    cms.create(
        &PostParams::default(),
        &config_map("a", json!({"app": "web"})),
    )
    .await
    .expect("create");
    let meta = cms.get_metadata("a").await.expect("get_metadata");
    assert_eq!(
        meta.metadata
            .labels
            .and_then(|l| l.get("app").cloned())
            .as_deref(),
        Some("web")
    );
    let list = cms
        .list_metadata(&kube::api::ListParams::default())
        .await
        .expect("list_metadata");
    assert_eq!(list.items.len(), 1);
    let metadata_api: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(sim.client());
    let mut events = Box::pin(watcher(metadata_api, watcher::Config::default()).applied_objects());
    let first = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .expect("an object in time")
        .expect("a good event")
        .expect("the stream goes on");
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
}
