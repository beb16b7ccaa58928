//! The CEL rules (`x-kubernetes-validations`) of a structural schema: compiled when a CRD is
//! written, so that a rule kubesim cannot evaluate refuses the CRD (naming the field path and the
//! rule, as the API server refuses a rule that does not compile), and evaluated on every write of
//! a custom resource, where a rule that does not hold, or fails to evaluate, refuses the object.
//! Pure; no I/O.

use serde_json::Value;

use super::cel;
use super::error::Cause;
use super::schema::{child_path, type_name};

/// The rules of `schema` that do not compile: (path of the rule inside the schema, e.g.
/// `properties[spec].x-kubernetes-validations[0].rule`, the rule, why).
pub fn compile_errors(schema: &Value) -> Vec<(String, String, cel::CelError)> {
    let mut errors = Vec::new();
    compile_at(schema, "", &mut errors);
    errors
}

fn compile_at(schema: &Value, path: &str, errors: &mut Vec<(String, String, cel::CelError)>) {
    for (i, rule) in rules_of(schema).enumerate() {
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        if let Err(e) = cel::compile(text) {
            let at = join(path, &format!("x-kubernetes-validations[{i}].rule"));
            errors.push((at, text.to_owned(), e));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, sub) in props {
            compile_at(sub, &join(path, &format!("properties[{key}]")), errors);
        }
    }
    for key in ["additionalProperties", "items"] {
        if let Some(sub) = schema.get(key).filter(|s| s.is_object()) {
            compile_at(sub, &join(path, key), errors);
        }
    }
}

fn join(path: &str, next: &str) -> String {
    if path.is_empty() {
        next.to_owned()
    } else {
        format!("{path}.{next}")
    }
}

fn rules_of(schema: &Value) -> impl Iterator<Item = &Value> {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Runs the rules on `value`; transition rules (those using `oldSelf`) only where `old` has a
/// value at the same path. Returns a cause per rule that does not hold or cannot be evaluated.
pub fn validate(schema: &Value, value: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    rules_at(schema, value, old, "", &mut causes);
    causes
}

fn rules_at(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if value.is_null() {
        return;
    }
    for rule in rules_of(schema) {
        if let Some(cause) = check(rule, value, old, path) {
            causes.push(cause);
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                if path.is_empty() && key == "metadata" {
                    continue;
                }
                let old_child = old.and_then(|o| o.get(key));
                if let Some(sub) = props.and_then(|p| p.get(key)) {
                    rules_at(sub, child, old_child, &child_path(path, key), causes);
                } else if let Some(sub) = additional {
                    rules_at(sub, child, old_child, &format!("{path}[{key}]"), causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    rules_at(item_schema, item, None, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

/// One rule on one value: `None` when it holds (or is a transition rule with nothing to compare).
fn check(rule: &Value, value: &Value, old: Option<&Value>, path: &str) -> Option<Cause> {
    let text = rule.get("rule").and_then(Value::as_str)?;
    let invalid = |message: String| Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {:?}: {message}", type_name(value)),
        field: path.to_owned(),
    };
    // Compiled when the CRD was written; refused here too, should one have slipped through.
    let program = match cel::compile(text) {
        Ok(program) => program,
        Err(e) => return Some(invalid(format!("{e} compiling rule: {text}"))),
    };
    if program.is_transition() && old.is_none_or(Value::is_null) {
        return None;
    }
    match program.evaluate(value, old) {
        Ok(true) => None,
        Ok(false) => {
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| format!("failed rule: {text}"), str::to_owned);
            let reason = match rule.get("reason").and_then(Value::as_str) {
                Some("FieldValueForbidden") => "FieldValueForbidden",
                Some("FieldValueRequired") => "FieldValueRequired",
                Some("FieldValueDuplicate") => "FieldValueDuplicate",
                _ => "FieldValueInvalid",
            };
            Some(Cause {
                reason,
                ..invalid(message)
            })
        }
        // As the API server words it: "<error> evaluating rule: <rule>".
        Err(e) => Some(invalid(format!("{e} evaluating rule: {text}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "!has(self.b) || self.b > self.a", "message": "b above a"}],
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "integer"},
            "fixed": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "fixed"}]},
            "tags": {"type": "array", "items": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self.all(t, size(t) > 0)"}]}}
        }}}})
    }

    #[test]
    fn a_rule_kubesim_cannot_evaluate_is_reported_with_its_schema_path() {
        let errors = compile_errors(&schema());
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (path, rule, error) = &errors[0];
        assert_eq!(
            path,
            "properties[spec].properties[tags].items.x-kubernetes-validations[0].rule"
        );
        assert_eq!(rule, "self.all(t, size(t) > 0)");
        assert_eq!(error, &cel::CelError::Unsupported("function all".into()));
    }

    #[test]
    fn a_false_rule_or_an_evaluation_error_refuses_the_value() {
        let causes = validate(&schema(), &json!({"spec": {"a": 2, "b": 1}}), None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec");
        assert_eq!(causes[0].message, "Invalid value: \"object\": b above a");
        assert!(validate(&schema(), &json!({"spec": {"a": 2}}), None).is_empty());
        let causes = validate(&schema(), &json!({"spec": {"b": 1}}), None);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"object\": no such key: a evaluating rule: !has(self.b) || self.b > self.a"
        );
    }

    #[test]
    fn transition_rules_run_only_against_an_old_value() {
        let new = json!({"spec": {"fixed": "b"}});
        assert!(validate(&schema(), &new, None).is_empty());
        let old = json!({"spec": {"fixed": "a"}});
        let causes = validate(&schema(), &new, Some(&old));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.fixed");
    }

    #[test]
    fn a_rule_that_slipped_past_compilation_is_refused_not_skipped() {
        let causes = validate(&schema(), &json!({"spec": {"tags": ["x"]}}), None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.tags[0]");
        assert!(causes[0].message.contains("function all"), "{causes:?}");
    }
}
