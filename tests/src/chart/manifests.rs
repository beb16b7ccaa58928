//! The objects a chart rendered, parsed from Helm's YAML into JSON values, with lookups by kind
//! and name. Pure: text in, values out.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ChartError;

/// Rendered objects, in template order, and the NOTES.txt text.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub objects: Vec<Value>,
    pub notes: String,
    /// File names of the CRDs Helm would install (chart and subcharts), from a render answer.
    pub crd_files: Vec<String>,
}

impl Manifests {
    /// From the driver's `render` answer (`{"manifests": {template: text}, "crds": [...]}`).
    pub fn from_render(answer: &Value) -> Result<Self, ChartError> {
        let mut out = Manifests::default();
        let mut templates: Vec<(&String, &Value)> = answer["manifests"]
            .as_object()
            .map(|m| m.iter().collect())
            .unwrap_or_default();
        templates.sort_by(|a, b| a.0.cmp(b.0));
        for (template, text) in templates {
            let text = text.as_str().unwrap_or_default();
            if template.ends_with("NOTES.txt") {
                out.notes = text.to_owned();
                continue;
            }
            out.objects.extend(parse(template, text)?);
        }
        out.crd_files = answer["crds"]
            .as_array()
            .map(|crds| {
                crds.iter()
                    .filter_map(|c| c["filename"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(out)
    }

    /// From a release's `manifest` text (what Helm applied).
    pub fn from_release(release: &Value) -> Result<Self, ChartError> {
        let text = release["manifest"].as_str().unwrap_or_default();
        Ok(Manifests {
            objects: parse("release manifest", text)?,
            notes: release["info"]["notes"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            crd_files: Vec::new(),
        })
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// Every object of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// `(kind, name)` of every object.
    pub fn kinds_and_names(&self) -> BTreeSet<(String, String)> {
        self.objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or_default().to_owned(),
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// The kinds rendered.
    pub fn kinds(&self) -> BTreeSet<String> {
        self.kinds_and_names().into_iter().map(|(k, _)| k).collect()
    }
}

/// The one container of a workload's Pod template named `name`.
pub fn container<'a>(workload: &'a Value, name: &str) -> Option<&'a Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// A container's args as strings.
pub fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A container's env entry `name` (the whole entry: `value` or `valueFrom`).
pub fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// Splits a multi-document YAML text into objects (empty documents dropped).
pub fn parse(template: &str, text: &str) -> Result<Vec<Value>, ChartError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ChartError::Yaml {
        template: template.to_owned(),
        error: e.to_string(),
    })?;
    Ok(docs.into_iter().filter(Value::is_object).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_render_answer_splits_into_objects_and_notes() {
        let answer = json!({
            "manifests": {
                "c/templates/b.yaml": "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n# only a comment\n",
                "c/templates/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n",
                "c/templates/NOTES.txt": "hello",
            },
            "crds": [{"name": "crds/x.yaml", "filename": "charts/crds/crds/x.yaml", "data": "..."}]
        });
        let manifests = Manifests::from_render(&answer).expect("parses");
        assert_eq!(
            manifests.kinds_and_names().into_iter().collect::<Vec<_>>(),
            vec![
                ("ConfigMap".to_owned(), "m".to_owned()),
                ("Service".to_owned(), "s".to_owned())
            ]
        );
        assert_eq!(manifests.notes, "hello");
        assert_eq!(manifests.crd_files, vec!["charts/crds/crds/x.yaml"]);
        assert!(manifests.get("Service", "s").is_some());
        assert!(manifests.get("Service", "m").is_none());
    }

    #[test]
    fn broken_yaml_names_its_template() {
        let answer = json!({"manifests": {"c/templates/bad.yaml": "a: [1,\n"}});
        let error = Manifests::from_render(&answer).expect_err("refused");
        assert!(
            error.to_string().contains("c/templates/bad.yaml"),
            "{error}"
        );
    }
}
