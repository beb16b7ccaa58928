//! `events.k8s.io/v1` Events and core `v1` Events are two views of one stored object, as in the
//! real API server: kubesim stores the core/v1 shape (group `""`, resource `events`) and converts
//! at the edge of every `events.k8s.io/v1` request, so an Event written through either API is
//! got, listed, selected and watched through both. Field names follow the real conversion
//! (kubernetes `pkg/apis/events/v1/conversion.go`): `reportingController` is the core
//! `reportingComponent`, and the core `source` is `deprecatedSource` (kubectl's "From" column
//! falls back from one to the other). Pure: values in, values out.

use serde_json::{Map, Value};

use super::error::Cause;
use super::validation::is_qualified_name;

/// `(events.k8s.io/v1 field, core/v1 field)` for the fields whose names differ. `metadata`,
/// `reason`, `type`, `action`, `related`, `eventTime`, `series` and `reportingInstance` keep
/// their names.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// True for `events.events.k8s.io`, the view whose objects are converted.
pub fn is_events_view(group: &str, plural: &str) -> bool {
    group == "events.k8s.io" && plural == "events"
}

/// The group an object of `group`/`plural` is stored under: core for both Event views.
pub fn storage_group<'a>(group: &'a str, plural: &str) -> &'a str {
    if is_events_view(group, plural) {
        ""
    } else {
        group
    }
}

fn rename(object: &Value, from_events: bool) -> Value {
    let Some(fields) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::with_capacity(fields.len());
    for (name, value) in fields {
        let renamed = RENAMED.iter().find_map(|(events, core)| {
            let (from, to) = if from_events {
                (events, core)
            } else {
                (core, events)
            };
            (*from == name.as_str()).then_some(*to)
        });
        out.insert(renamed.unwrap_or(name).to_owned(), value.clone());
    }
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in its stored (core/v1) shape.
pub fn to_core(event: &Value) -> Value {
    rename(event, true)
}

/// A stored (core/v1) Event as `events.k8s.io/v1` shows it.
pub fn to_events(event: &Value) -> Value {
    rename(event, false)
}

/// The longest `reportingInstance`, `action` and `reason` the API server accepts.
const FIELD_LIMIT: usize = 128;
/// The longest `note`.
const NOTE_LIMIT: usize = 1024;

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        message: "Required value".into(),
        field: field.to_owned(),
    }
}

fn invalid(field: &str, why: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: \"\": {why}"),
        field: field.to_owned(),
    }
}

/// The checks the API server makes on an Event created through `events.k8s.io/v1`, given in
/// its stored (core) shape; field names are the server's (kubernetes
/// `pkg/apis/core/validation/events.go`). Core/v1 creates keep the legacy, looser rules.
pub fn validate_create(core: &Value) -> Vec<Cause> {
    let text = |field: &str| core.get(field).and_then(Value::as_str).unwrap_or("");
    let mut causes = Vec::new();
    if text("eventTime").is_empty() {
        causes.push(required("eventTime"));
    }
    if !matches!(text("type"), "Normal" | "Warning") {
        causes.push(invalid(
            "type",
            format!("has invalid value: {}", text("type")),
        ));
    }
    let controller = text("reportingComponent");
    if controller.is_empty() {
        causes.push(required("reportingController"));
    } else if !is_qualified_name(controller) {
        causes.push(invalid(
            "reportingController",
            "must be a qualified name".into(),
        ));
    }
    for field in ["reportingInstance", "action", "reason"] {
        if text(field).is_empty() {
            causes.push(required(field));
        } else if text(field).len() > FIELD_LIMIT {
            causes.push(invalid(
                field,
                format!("can have at most {FIELD_LIMIT} characters"),
            ));
        }
    }
    if text("message").len() > NOTE_LIMIT {
        causes.push(invalid(
            "message",
            format!("can have at most {NOTE_LIMIT} characters"),
        ));
    }
    for deprecated in ["firstTimestamp", "lastTimestamp", "count", "source"] {
        let set = core.get(deprecated).is_some_and(|v| {
            !v.is_null() && v != &Value::from(0) && v != &Value::Object(Map::new())
        });
        if set {
            causes.push(invalid(deprecated, "needs to be unset".into()));
        }
    }
    if let Some(series) = core.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            causes.push(invalid("series.count", "should be at least 2".into()));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            causes.push(required("series.lastObservedTime"));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events_view() -> Value {
        json!({
            "metadata": {"name": "svc-a.1", "namespace": "default"},
            "regarding": {"kind": "Service", "name": "a", "namespace": "default"},
            "note": "assigned IP 192.0.2.1",
            "reason": "IPAllocated",
            "type": "Normal",
            "action": "Allocate",
            "reportingController": "ferrolb.io/controller",
            "reportingInstance": "controller-0",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"},
            "deprecatedCount": 2,
        })
    }

    #[test]
    fn an_events_k8s_io_event_becomes_its_core_twin_and_back() {
        let core = to_core(&events_view());
        assert_eq!(core["involvedObject"]["name"], "a");
        assert_eq!(core["message"], "assigned IP 192.0.2.1");
        assert_eq!(core["reportingComponent"], "ferrolb.io/controller");
        assert_eq!(core["count"], 2);
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        assert_eq!(to_events(&core), events_view());
    }

    #[test]
    fn a_core_event_shows_its_source_as_deprecated_source() {
        let core = json!({"source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": "t"});
        assert_eq!(
            to_events(&core),
            json!({"deprecatedSource": {"component": "kubelet", "host": "n1"}, "deprecatedFirstTimestamp": "t"})
        );
    }

    #[test]
    fn an_events_k8s_io_create_needs_the_new_fields_and_no_deprecated_ones() {
        let mut valid = events_view();
        if let Some(map) = valid.as_object_mut() {
            map.remove("deprecatedCount");
        }
        assert_eq!(validate_create(&to_core(&valid)), vec![]);
        let legacy =
            json!({"message": "m", "type": "Normal", "count": 1, "source": {"component": "x"}});
        let fields: Vec<String> = validate_create(&legacy)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "eventTime",
                "reportingController",
                "reportingInstance",
                "action",
                "reason",
                "count",
                "source",
            ]
        );
    }

    #[test]
    fn only_events_k8s_io_events_are_stored_elsewhere() {
        assert_eq!(storage_group("events.k8s.io", "events"), "");
        assert_eq!(storage_group("", "events"), "");
        assert_eq!(
            storage_group("discovery.k8s.io", "endpointslices"),
            "discovery.k8s.io"
        );
    }
}
