//! Events through both APIs: kube-rs's `Recorder` writes `events.k8s.io/v1` Events, older
//! clients (and `kubectl describe`) use core `v1`. As on a real API server they are two views of
//! one object: whatever is written through one is got, selected and watched through the other.

use std::time::Duration;

use ferrolb_kubesim::KubeSim;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;

async fn service(client: &kube::Client, name: &str) -> Service {
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let svc = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }))
    .expect("a valid Service");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("the Service is created")
}

#[tokio::test]
async fn a_recorded_event_is_listed_and_watched_as_a_core_event() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let client = sim.client();
    let svc = service(&client, "web").await;
    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let mut watch = core
        .watch(&WatchParams::default(), "0")
        .await
        .expect("a core/v1 watch")
        .boxed();

    let recorder = Recorder::new(client.clone(), Reporter::from("ferrolb-controller"));
    let allocated = RecordedEvent {
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        note: Some("Assigned IP 192.0.2.10 from pool lan".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    // The second publish of the same event is a merge patch that adds `series`.
    for _ in 0..2 {
        recorder
            .publish(&allocated, &svc.object_ref(&()))
            .await
            .expect("the Recorder publishes");
    }

    let selected = core
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind=Service,involvedObject.name=web,involvedObject.uid={}",
            svc.uid().unwrap_or_default()
        )))
        .await
        .expect("core/v1 list with describe's field selector");
    assert_eq!(selected.items.len(), 1, "{:?}", selected.items);
    let event = &selected.items[0];
    assert_eq!(
        event.message.as_deref(),
        Some("Assigned IP 192.0.2.10 from pool lan")
    );
    assert_eq!(event.reason.as_deref(), Some("IPAllocated"));
    assert_eq!(
        event.reporting_component.as_deref(),
        Some("ferrolb-controller")
    );
    assert_eq!(event.series.as_ref().and_then(|s| s.count), Some(2));

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(5), watch.try_next())
            .await
            .expect("watch events arrive")
            .expect("the watch stays healthy")
            .expect("the watch stays open");
        match next {
            WatchEvent::Added(e) => seen.push(("ADDED", e.message)),
            WatchEvent::Modified(e) => seen.push(("MODIFIED", e.message)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let note = Some("Assigned IP 192.0.2.10 from pool lan".to_owned());
    assert_eq!(seen, vec![("ADDED", note.clone()), ("MODIFIED", note)]);
}

#[tokio::test]
async fn a_core_event_is_listed_through_events_k8s_io() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let client = sim.client();
    service(&client, "db").await;
    let mut watch = Api::<Event>::default_namespaced(client.clone())
        .watch(&WatchParams::default().fields("regarding.name=db"), "0")
        .await
        .expect("an events.k8s.io watch selected on regarding")
        .boxed();
    let core_event = serde_json::from_value(json!({
        "metadata": {"name": "db.legacy"},
        "involvedObject": {"kind": "Service", "name": "db", "namespace": "default"},
        "reason": "Sync",
        "message": "written by an old client",
        "type": "Warning",
        "source": {"component": "legacy-controller"},
        "count": 3,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:01:00Z",
    }))
    .expect("a valid core Event");
    Api::<CoreEvent>::default_namespaced(client.clone())
        .create(&PostParams::default(), &core_event)
        .await
        .expect("the core Event is created");

    let events: Api<Event> = Api::default_namespaced(client);
    let listed = events
        .list(&ListParams::default().fields("regarding.name=db"))
        .await
        .expect("events.k8s.io list selected on regarding");
    assert_eq!(listed.items.len(), 1);
    let event = events
        .get("db.legacy")
        .await
        .expect("got through events.k8s.io");
    assert_eq!(event.note.as_deref(), Some("written by an old client"));
    assert_eq!(
        event.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("db")
    );
    assert_eq!(event.deprecated_count, Some(3));
    assert_eq!(
        event
            .deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("legacy-controller")
    );
    assert_eq!(Event::api_version(&()), "events.k8s.io/v1");
    let added = tokio::time::timeout(Duration::from_secs(5), watch.try_next())
        .await
        .expect("the watch sees it")
        .expect("the watch stays healthy");
    match added {
        Some(WatchEvent::Added(e)) => {
            assert_eq!(e.note.as_deref(), Some("written by an old client"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        events
            .list(&ListParams::default().fields("regarding.name=other"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn an_events_k8s_io_event_without_the_new_fields_is_invalid() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let reply = sim
        .raw(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/default/events",
            Some("application/json"),
            None,
            Some(&json!({
                "metadata": {"name": "bare"},
                "regarding": {"kind": "Service", "name": "web", "namespace": "default"},
                "note": "no reporter",
                "type": "Normal",
                "deprecatedCount": 1,
            })),
        )
        .await
        .expect("request");
    assert_eq!(reply.status, 422, "{}", reply.text());
    let status = reply.json();
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        vec![
            "eventTime",
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "count"
        ]
    );
    assert!(
        status["message"].as_str().is_some_and(|m| m
            .starts_with("Event.events.k8s.io \"bare\" is invalid: [eventTime: Required value")),
        "{status}"
    );
}
