//! Structural-schema handling for custom resources, in the order the API server applies it:
//! pruning of unknown fields (and of nulls in non-nullable fields), `default`s, then validation of
//! `type`, `required`, `enum`, `minimum`/`maximum`, lengths and item counts. Pure; no I/O.
//!
//! CEL `x-kubernetes-validations` rules are [`rules`](super::rules)' job. Not handled (yet):
//! `pattern`, `format`, `oneOf`/`anyOf`/`allOf`/`not`, list-type uniqueness,
//! `messageExpression`.

use serde_json::{Map, Value};

use super::error::Cause;

fn schema_type(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn is_embedded(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

pub(crate) fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes fields the schema does not declare and nulls in non-nullable fields; returns the
/// paths of the unknown fields it removed (for `fieldValidation=Strict`). `metadata`, `kind` and
/// `apiVersion` at the root are left to the caller.
pub fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_at(schema, object, "", true, &mut unknown);
    unknown
}

fn prune_at(schema: &Value, value: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = preserves_unknown(schema) || is_embedded(schema);
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if root && matches!(key.as_str(), "metadata" | "kind" | "apiVersion") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&key)).or(additional);
                let child = child_path(path, &key);
                match sub {
                    Some(sub) => {
                        let nullable = sub
                            .get("nullable")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        if map.get(&key).is_some_and(Value::is_null) && !nullable {
                            map.remove(&key);
                        } else if let Some(v) = map.get_mut(&key) {
                            prune_at(sub, v, &child, false, unknown);
                        }
                    }
                    None if keep_unknown || props.is_none() && schema_type(schema).is_none() => {}
                    None => {
                        map.remove(&key);
                        unknown.push(child);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(item_schema, item, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s: a missing property with a default gets it, recursively (defaults inside a
/// defaulted object apply too).
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    if !map.contains_key(key)
                        && let Some(default) = sub.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                    if let Some(v) = map.get_mut(key) {
                        apply_defaults(sub, v);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(additional, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// The Go-style type name the API server prints for a JSON value.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        _ => true,
    }
}

/// How the API server quotes a value inside a message: strings in quotes, others as JSON.
fn shown(value: &Value) -> String {
    value.to_string()
}

fn number_text(value: &Value) -> String {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => value.to_string(),
    }
}

/// Validates `value` against `schema`; returns every violation with its field path.
pub fn validate(schema: &Value, value: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_at(schema, value, "", &mut causes);
    causes
}

fn validate_at(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        return;
    }
    if let Some(cause) = type_mismatch(schema, value, path) {
        causes.push(cause);
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(shown).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                list.join(", ")
            ),
            field: path.to_owned(),
        });
    }
    if let Some(n) = value.as_f64() {
        check_bounds(schema, value, n, path, causes);
    }
    match value {
        Value::String(s) => check_length(schema, value, s.chars().count() as u64, path, causes),
        Value::Array(items) => {
            check_item_count(schema, items.len() as u64, path, causes);
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        Value::Object(map) => validate_object(schema, map, path, causes),
        _ => {}
    }
}

/// The cause when `value` is not of the schema's type (`x-kubernetes-int-or-string` allows both).
fn type_mismatch(schema: &Value, value: &Value, path: &str) -> Option<Cause> {
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let expected = if int_or_string {
        if value.is_string() || type_matches("integer", value) {
            return None;
        }
        "integer,string"
    } else {
        let expected = schema_type(schema)?;
        if type_matches(expected, value) {
            return None;
        }
        expected
    };
    Some(Cause {
        reason: "FieldValueTypeInvalid",
        message: format!(
            "Invalid value: {:?}: {path} in body must be of type {expected}: {:?}",
            type_name(value),
            type_name(value)
        ),
        field: path.to_owned(),
    })
}

/// `minLength`/`maxLength` of a string of `len` characters.
fn check_length(schema: &Value, value: &Value, len: u64, path: &str, causes: &mut Vec<Cause>) {
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} bytes"),
            field: path.to_owned(),
        });
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!(
                "Invalid value: {}: {path} in body should be at least {min} chars long",
                shown(value)
            ),
            field: path.to_owned(),
        });
    }
}

/// `minItems`/`maxItems` of a list of `count` items.
fn check_item_count(schema: &Value, count: u64, path: &str, causes: &mut Vec<Cause>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && count > max
    {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            message: format!("Too many: {count}: must have at most {max} items"),
            field: path.to_owned(),
        });
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && count < min
    {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!(
                "Invalid value: {count}: {path} in body should have at least {min} items"
            ),
            field: path.to_owned(),
        });
    }
}

fn check_bounds(schema: &Value, value: &Value, n: f64, path: &str, causes: &mut Vec<Cause>) {
    let flag = |key: &str| schema.get(key).and_then(Value::as_bool).unwrap_or(false);
    if let Some(min) = schema.get("minimum").filter(|m| m.is_number()) {
        let bound = min.as_f64().unwrap_or(f64::MIN);
        let exclusive = flag("exclusiveMinimum");
        if n < bound || (exclusive && n == bound) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {}: {path} in body should be {relation} {}",
                    shown(value),
                    number_text(min)
                ),
                field: path.to_owned(),
            });
        }
    }
    if let Some(max) = schema.get("maximum").filter(|m| m.is_number()) {
        let bound = max.as_f64().unwrap_or(f64::MAX);
        let exclusive = flag("exclusiveMaximum");
        if n > bound || (exclusive && n == bound) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {}: {path} in body should be {relation} {}",
                    shown(value),
                    number_text(max)
                ),
                field: path.to_owned(),
            });
        }
    }
}

fn validate_object(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if map.get(key).is_none_or(Value::is_null) {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field: child_path(path, key),
                });
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, v) in map {
        if path.is_empty() && matches!(key.as_str(), "metadata" | "kind" | "apiVersion") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(key)) {
            validate_at(sub, v, &child_path(path, key), causes);
        } else if let Some(sub) = additional {
            validate_at(sub, v, &format!("{path}[{key}]"), causes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["port"], "properties": {
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "opts": {"type": "object", "properties": {"x": {"type": "boolean", "default": true}}, "default": {}}
            }}
        }})
    }

    #[test]
    fn defaults_fill_missing_fields_recursively() {
        let mut obj = json!({"spec": {"port": 1}});
        apply_defaults(&schema(), &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"port": 1, "mode": "a", "opts": {"x": true}}})
        );
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let mut obj =
            json!({"metadata": {"name": "x"}, "spec": {"port": 1, "bogus": 2}, "extra": 1});
        let unknown = prune(&schema(), &mut obj);
        assert_eq!(unknown, vec!["extra".to_owned(), "spec.bogus".to_owned()]);
        assert_eq!(obj, json!({"metadata": {"name": "x"}, "spec": {"port": 1}}));
    }

    #[test]
    fn violations_name_the_field_with_the_api_server_reason() {
        let causes = validate(
            &schema(),
            &json!({"spec": {"mode": "c", "opts": {"x": "no"}}}),
        );
        let summary: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.reason, c.field.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("FieldValueRequired", "spec.port"),
                ("FieldValueNotSupported", "spec.mode"),
                ("FieldValueTypeInvalid", "spec.opts.x"),
            ]
        );
        let too_big = validate(&schema(), &json!({"spec": {"port": 70000}}));
        assert_eq!(
            too_big[0].message,
            "Invalid value: 70000: spec.port in body should be less than or equal to 65535"
        );
    }
}
