//! Kubernetes label selectors: matching, validation and a canonical text form. The one place that
//! knows selector semantics, so controller, speaker and webhook agree. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels of an object, as `metadata.labels` holds them.
pub type Labels = BTreeMap<String, String>;

/// Why a selector is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// An operator other than In, NotIn, Exists, DoesNotExist.
    #[error(
        "matchExpressions[{index}]: operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist"
    )]
    UnknownOperator {
        /// Position of the expression.
        index: usize,
        /// The operator given.
        operator: String,
    },
    /// In/NotIn with no values.
    #[error("matchExpressions[{index}]: operator {operator} needs at least one value")]
    MissingValues {
        /// Position of the expression.
        index: usize,
        /// The operator given.
        operator: String,
    },
    /// Exists/DoesNotExist with values.
    #[error("matchExpressions[{index}]: operator {operator} takes no values")]
    UnexpectedValues {
        /// Position of the expression.
        index: usize,
        /// The operator given.
        operator: String,
    },
    /// A label key that Kubernetes would refuse.
    #[error("invalid label key {0:?}")]
    InvalidKey(String),
    /// A label value that Kubernetes would refuse.
    #[error("invalid label value {0:?}")]
    InvalidValue(String),
    /// The same expression twice.
    #[error("matchExpressions[{index}]: duplicate expression")]
    DuplicateExpression {
        /// Position of the second occurrence.
        index: usize,
    },
    /// The same value twice in one expression.
    #[error("matchExpressions[{index}]: duplicate value {value:?}")]
    DuplicateValue {
        /// Position of the expression.
        index: usize,
        /// The repeated value.
        value: String,
    },
}

/// Whether the selector matches the labels. An empty selector matches everything.
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    labels_match
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|req| requirement_matches(req, labels))
}

fn requirement_matches(req: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let value = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // Validation refuses other operators; matching nothing is the safe reading.
        _ => false,
    }
}

/// Whether any selector of the list matches; an empty list matches everything.
pub fn matches_any(selectors: &[LabelSelector], labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| matches(s, labels))
}

/// Checks a selector as the API server's `LabelSelectorAsSelector` would, and for the duplicates
/// MetalLB refuses.
pub fn validate(selector: &LabelSelector) -> Result<(), SelectorError> {
    for (key, value) in selector.match_labels.iter().flatten() {
        check_key(key)?;
        check_value(value)?;
    }
    let mut seen = BTreeSet::new();
    for (index, req) in selector.match_expressions.iter().flatten().enumerate() {
        check_key(&req.key)?;
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(SelectorError::MissingValues {
                    index,
                    operator: req.operator.clone(),
                });
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(SelectorError::UnexpectedValues {
                    index,
                    operator: req.operator.clone(),
                });
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(SelectorError::UnknownOperator {
                    index,
                    operator: other.to_owned(),
                });
            }
        }
        let mut distinct = BTreeSet::new();
        for value in values {
            check_value(value)?;
            if !distinct.insert(value) {
                return Err(SelectorError::DuplicateValue {
                    index,
                    value: value.clone(),
                });
            }
        }
        if !seen.insert((req.key.as_str(), req.operator.as_str(), distinct)) {
            return Err(SelectorError::DuplicateExpression { index });
        }
    }
    Ok(())
}

/// A text form equal for selectors that mean the same (labels and values sorted): MetalLB's
/// duplicate check compares these.
pub fn canonical(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut expressions: Vec<String> = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|req| {
            let mut values: Vec<&str> = req.values.iter().flatten().map(String::as_str).collect();
            values.sort_unstable();
            format!("{} {} ({})", req.key, req.operator, values.join(","))
        })
        .collect();
    expressions.sort();
    parts.extend(expressions);
    parts.join(";")
}

/// Qualified name: an optional DNS-subdomain prefix and `/`, then a name of 1–63 characters.
fn check_key(key: &str) -> Result<(), SelectorError> {
    let invalid = || SelectorError::InvalidKey(key.to_owned());
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(invalid());
    }
    if name.is_empty() || !is_label_value(name) {
        return Err(invalid());
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), SelectorError> {
    if is_label_value(value) {
        Ok(())
    } else {
        Err(SelectorError::InvalidValue(value.to_owned()))
    }
}

/// Empty, or ≤ 63 characters of `[A-Za-z0-9._-]` starting and ending alphanumeric.
fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let bytes = value.as_bytes();
    value.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// RFC 1123 subdomain: ≤ 253 characters, dot-separated lowercase labels.
fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            let bytes = label.as_bytes();
            !label.is_empty()
                && label.len() <= 63
                && bytes
                    .first()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && bytes
                    .last()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn with_exprs(exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(exprs),
            match_labels: None,
        }
    }

    #[test]
    fn empty_selector_and_empty_list_match_everything() {
        assert!(matches(&LabelSelector::default(), &labels(&[])));
        assert!(matches_any(&[], &labels(&[("a", "b")])));
    }

    #[test]
    fn each_operator_follows_kubernetes_semantics() {
        let zone_a = labels(&[("zone", "a")]);
        let none = labels(&[]);
        let case = |op, values: &[&str], l: &Labels| {
            matches(&with_exprs(vec![expr("zone", op, values)]), l)
        };
        assert!(case("In", &["a", "b"], &zone_a));
        assert!(!case("In", &["b"], &zone_a));
        assert!(!case("In", &["a"], &none));
        assert!(case("NotIn", &["b"], &zone_a));
        assert!(case("NotIn", &["a"], &none));
        assert!(!case("NotIn", &["a"], &zone_a));
        assert!(case("Exists", &[], &zone_a));
        assert!(!case("Exists", &[], &none));
        assert!(case("DoesNotExist", &[], &none));
        assert!(!case("Bogus", &[], &zone_a));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("role", "edge")])),
            match_expressions: Some(vec![expr("zone", "In", &["a"])]),
        };
        assert!(matches(
            &selector,
            &labels(&[("role", "edge"), ("zone", "a")])
        ));
        assert!(!matches(
            &selector,
            &labels(&[("role", "edge"), ("zone", "b")])
        ));
        assert!(!matches(&selector, &labels(&[("zone", "a")])));
    }

    #[test]
    fn invalid_selectors_are_refused_with_the_reason() {
        assert!(matches!(
            validate(&with_exprs(vec![expr("k", "Near", &["x"])])),
            Err(SelectorError::UnknownOperator { .. })
        ));
        assert!(matches!(
            validate(&with_exprs(vec![expr("k", "In", &[])])),
            Err(SelectorError::MissingValues { .. })
        ));
        assert!(matches!(
            validate(&with_exprs(vec![expr("k", "Exists", &["x"])])),
            Err(SelectorError::UnexpectedValues { .. })
        ));
        assert!(matches!(
            validate(&with_exprs(vec![expr("k", "In", &["x", "x"])])),
            Err(SelectorError::DuplicateValue { .. })
        ));
        assert!(matches!(
            validate(&with_exprs(vec![
                expr("k", "In", &["x", "y"]),
                expr("k", "In", &["y", "x"])
            ])),
            Err(SelectorError::DuplicateExpression { index: 1 })
        ));
        assert!(matches!(
            validate(&with_exprs(vec![expr("bad key", "Exists", &[])])),
            Err(SelectorError::InvalidKey(_))
        ));
        let bad_value = LabelSelector {
            match_labels: Some(labels(&[("k", "-x")])),
            match_expressions: None,
        };
        assert!(matches!(
            validate(&bad_value),
            Err(SelectorError::InvalidValue(_))
        ));
        let prefixed = LabelSelector {
            match_labels: Some(labels(&[("kubernetes.io/hostname", "node-1")])),
            match_expressions: None,
        };
        assert_eq!(validate(&prefixed), Ok(()));
    }

    #[test]
    fn canonical_form_ignores_value_and_expression_order() {
        let a = with_exprs(vec![expr("k", "In", &["x", "y"]), expr("j", "Exists", &[])]);
        let b = with_exprs(vec![expr("j", "Exists", &[]), expr("k", "In", &["y", "x"])]);
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(
            canonical(&a),
            canonical(&with_exprs(vec![expr("k", "In", &["x"])]))
        );
    }
}
