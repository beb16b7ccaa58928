//! The metadata checks every object gets on create, whatever its kind: the name's format (RFC
//! 1123 subdomain; RFC 1123 label for namespaces; RFC 1035 label for services) and label keys
//! and values. Messages are the API server's. Pure.

use serde_json::Value;

use super::error::Cause;
use super::meta::meta_str;

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_1123: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.chars().all(|c| is_lower_alnum(c) || c == '-')
        && text.starts_with(is_lower_alnum)
        && text.ends_with(is_lower_alnum)
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

fn is_dns_1035_label(text: &str) -> bool {
    is_dns_label(text) && text.starts_with(|c: char| c.is_ascii_lowercase())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_qualified_part(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && text.starts_with(alnum)
        && text.ends_with(alnum)
}

/// A qualified name (label keys, Event `reportingController`): an optional DNS subdomain
/// prefix and `/`, then a name part.
pub fn is_qualified_name(text: &str) -> bool {
    match text.rsplit_once('/') {
        Some((prefix, part)) => is_dns_subdomain(prefix) && is_qualified_part(part),
        None => is_qualified_part(text),
    }
}

fn invalid(field: &str, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value:?}: {why}"),
        field: field.to_owned(),
    }
}

/// Checks the name and labels of an object of `group/plural`.
pub fn check_metadata(group: &str, plural: &str, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = meta_str(object, "name");
    if !name.is_empty() {
        let (ok, why, max) = match (group, plural) {
            ("", "namespaces") => (is_dns_label(name), LABEL_1123, 63),
            ("", "services") => (is_dns_1035_label(name), LABEL_1035, 63),
            _ => (is_dns_subdomain(name), SUBDOMAIN, 253),
        };
        if name.len() > max {
            causes.push(invalid(
                "metadata.name",
                name,
                &format!("must be no more than {max} characters"),
            ));
        } else if !ok {
            causes.push(invalid("metadata.name", name, why));
        }
    }
    if let Some(labels) = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        for (key, value) in labels {
            if !is_qualified_name(key) {
                causes.push(invalid("metadata.labels", key, QUALIFIED_NAME));
            }
            let text = value.as_str().unwrap_or("");
            if !text.is_empty() && !is_qualified_part(text) {
                causes.push(invalid("metadata.labels", text, LABEL_VALUE));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_rules_of_their_kind() {
        let named = |n: &str| json!({"metadata": {"name": n}});
        assert!(check_metadata("", "configmaps", &named("a.b-c")).is_empty());
        assert_eq!(
            check_metadata("", "configmaps", &named("Bad_Name"))[0].field,
            "metadata.name"
        );
        assert!(!check_metadata("", "namespaces", &named("a.b")).is_empty());
        assert!(!check_metadata("", "services", &named("1web")).is_empty());
        assert!(check_metadata("", "services", &named("web-1")).is_empty());
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        let labeled = |l: Value| json!({"metadata": {"name": "a", "labels": l}});
        assert!(
            check_metadata(
                "",
                "pods",
                &labeled(json!({"app.kubernetes.io/name": "x_1", "e": ""}))
            )
            .is_empty()
        );
        assert_eq!(
            check_metadata("", "pods", &labeled(json!({"bad key": "x"}))).len(),
            1
        );
        assert_eq!(
            check_metadata("", "pods", &labeled(json!({"k": "-x"}))).len(),
            1
        );
    }
}
