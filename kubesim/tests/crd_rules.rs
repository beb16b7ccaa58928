//! Every CEL rule (`x-kubernetes-validations`) in FerroLB's own CRDs (`crds/*.yaml`) is
//! evaluated by kubesim — none passed silently: each compiles (the CRDs are accepted), each
//! decides both ways on values of its field's type, and through the API each one refuses a write
//! that breaks it, naming the field and the rule's message. A rule kubesim cannot evaluate
//! refuses its CRD instead.
//!
//! The rules are found by walking the manifests here, not by kubesim's own walker, so that a rule
//! kubesim overlooked would still be listed and fail.

use std::path::PathBuf;

use ferrolb_kubesim::KubeSim;
use ferrolb_kubesim::cel::{self, Program};
use ferrolb_kubesim::fixtures::load_manifests;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Map, Value, json};

const NAMESPACE: &str = "ferrolb-system";

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

/// One step from an object into a field.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    /// The (only) element of a list.
    Item,
}

/// One rule of one CRD version, where it sits, and the schema of the value it sees.
#[derive(Debug, Clone)]
struct Site {
    crd: Value,
    version: String,
    path: Vec<Step>,
    schema: Value,
    rule: String,
    message: String,
}

impl Site {
    /// The field path as the API server prints it (`spec.connectTime`, `spec.x[0]`).
    fn field(&self) -> String {
        let mut field = String::new();
        for step in &self.path {
            match step {
                Step::Key(k) if field.is_empty() => field.push_str(k),
                Step::Key(k) => field = format!("{field}.{k}"),
                Step::Item => field.push_str("[0]"),
            }
        }
        field
    }

    fn kind(&self) -> &str {
        self.crd["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {}: {}",
            self.kind(),
            self.version,
            self.field(),
            self.rule
        )
    }
}

/// Every rule of every served version of every CRD.
fn sites() -> Vec<Site> {
    let mut sites = Vec::new();
    for crd in load_manifests(&crds_dir()).expect("CRD manifests") {
        for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
            let name = version["name"].as_str().unwrap_or_default().to_owned();
            let schema = &version["schema"]["openAPIV3Schema"];
            walk(&crd, &name, schema, &mut Vec::new(), &mut sites);
        }
    }
    sites
}

fn walk(crd: &Value, version: &str, schema: &Value, path: &mut Vec<Step>, out: &mut Vec<Site>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push(Site {
            crd: crd.clone(),
            version: version.to_owned(),
            path: path.clone(),
            schema: schema.clone(),
            rule: rule["rule"].as_str().unwrap_or_default().to_owned(),
            message: rule["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    for (key, sub) in schema["properties"].as_object().into_iter().flatten() {
        path.push(Step::Key(key.clone()));
        walk(crd, version, sub, path, out);
        path.pop();
    }
    for (step, key) in [
        (Step::Item, "items"),
        (Step::Key("k".into()), "additionalProperties"),
    ] {
        if schema[key].is_object() {
            path.push(step);
            walk(crd, version, &schema[key], path, out);
            path.pop();
        }
    }
}

/// Values of `schema`'s type to try a rule on: typical and edge values, and for objects each
/// property alone and each pair of properties.
fn candidates(schema: &Value, depth: usize) -> Vec<Value> {
    if let Some(values) = schema["enum"].as_array() {
        return values.clone();
    }
    let strings = || {
        [
            "",
            "x",
            "0s",
            "1s",
            "5s",
            "500ms",
            "1.5s",
            "1m30s",
            "19h",
            "70000s",
            "192.0.2.1",
        ]
        .map(Value::from)
        .to_vec()
    };
    let numbers = || {
        [-1, 0, 1, 24, 32, 64, 128, 64512, 65535, 70000]
            .map(Value::from)
            .to_vec()
    };
    if schema["x-kubernetes-int-or-string"] == true {
        return [strings(), numbers()].concat();
    }
    match schema["type"].as_str() {
        Some("string") => strings(),
        Some("integer" | "number") => numbers(),
        Some("boolean") => vec![json!(true), json!(false)],
        Some("array") => {
            let item = candidates(&schema["items"], depth + 1);
            vec![json!([]), Value::Array(item.into_iter().take(1).collect())]
        }
        Some("object") if depth < 2 => object_candidates(schema, depth),
        _ => vec![json!({})],
    }
}

fn object_candidates(schema: &Value, depth: usize) -> Vec<Value> {
    let props: Vec<(String, Vec<Value>)> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, s)| (k.clone(), candidates(s, depth + 1)))
        .collect();
    let mut out = vec![json!({})];
    for (i, (a, a_values)) in props.iter().enumerate() {
        for av in a_values {
            out.push(json!({ a: av }));
            for (b, b_values) in &props[i + 1..] {
                out.extend(b_values.iter().map(|bv| json!({ a: av, b: bv })));
            }
        }
    }
    out
}

/// A value for `schema` that passes kubesim's structural validation: required fields filled.
fn minimal(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|v| v.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("string") => json!("x".repeat(schema["minLength"].as_u64().unwrap_or(1) as usize)),
        Some("integer" | "number") => json!(schema["minimum"].as_i64().unwrap_or(1).max(1)),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => {
            let mut map = Map::new();
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap_or_default();
                map.insert(key.to_owned(), minimal(&schema["properties"][key]));
            }
            Value::Object(map)
        }
    }
}

/// `value` placed at `path` inside `object`, whose schema is `schema`; levels on the way that
/// are missing are made minimal (their required fields filled).
fn place(object: &mut Value, schema: &Value, path: &[Step], value: Value) {
    let Some((step, rest)) = path.split_first() else {
        *object = value;
        return;
    };
    let (sub, slot) = match step {
        Step::Key(k) => {
            let sub = if schema["properties"][k].is_object() {
                &schema["properties"][k]
            } else {
                &schema["additionalProperties"]
            };
            if !object.is_object() {
                *object = json!({});
            }
            let slot = object
                .as_object_mut()
                .map(|m| m.entry(k.clone()).or_insert_with(|| minimal(sub)));
            (sub, slot)
        }
        Step::Item => {
            *object = json!([minimal(&schema["items"])]);
            (&schema["items"], object.get_mut(0))
        }
    };
    if let Some(slot) = slot {
        place(slot, sub, rest, value);
    }
}

/// Values on which a non-transition rule is false and true.
fn split_on(program: &Program, values: &[Value]) -> (Option<Value>, Option<Value>) {
    let pick = |want: bool| {
        values
            .iter()
            .find(|v| program.evaluate(v, None) == Ok(want))
            .cloned()
    };
    (pick(false), pick(true))
}

/// (old, new) pairs on which a transition rule is false and true.
fn split_transition(program: &Program, values: &[Value]) -> (Option<(Value, Value)>, bool) {
    let mut breaking = None;
    let mut holds = false;
    for old in values {
        for new in values {
            match program.evaluate(new, Some(old)) {
                Ok(false) if breaking.is_none() => breaking = Some((old.clone(), new.clone())),
                Ok(true) => holds = true,
                _ => {}
            }
        }
    }
    (breaking, holds)
}

fn api_for(sim: &KubeSim, site: &Site) -> Api<DynamicObject> {
    let names = &site.crd["spec"]["names"];
    let gvk = GroupVersionKind::gvk(
        site.crd["spec"]["group"].as_str().unwrap_or_default(),
        &site.version,
        site.kind(),
    );
    let plural = names["plural"].as_str().unwrap_or_default();
    Api::namespaced_with(
        sim.client(),
        NAMESPACE,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// The object of `site`'s kind with `value` at the rule's path: the body to create, and the
/// status to write through `/status` when the path is under `status`.
fn object_with(site: &Site, name: &str, value: Value) -> (DynamicObject, Option<Value>) {
    let version = site.crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == site.version.as_str()))
        .cloned()
        .unwrap_or_default();
    let schema = &version["schema"]["openAPIV3Schema"];
    let mut body = minimal(schema);
    place(&mut body, schema, &site.path, value);
    let group = site.crd["spec"]["group"].as_str().unwrap_or_default();
    body["apiVersion"] = json!(format!("{group}/{}", site.version));
    body["kind"] = json!(site.kind());
    body["metadata"] = json!({"name": name, "namespace": NAMESPACE});
    let status = matches!(site.path.first(), Some(Step::Key(k)) if k == "status")
        .then(|| body["status"].take());
    let object = serde_json::from_value(body).expect("an object");
    (object, status)
}

/// Writes `value` at the site's path: creates the object, then its status when the path is there.
async fn write(
    api: &Api<DynamicObject>,
    site: &Site,
    name: &str,
    value: Value,
    create: bool,
) -> Result<(), String> {
    let (object, status) = object_with(site, name, value);
    let params = PatchParams::default();
    let result = match (create, status) {
        (true, None) => api
            .create(&PostParams::default(), &object)
            .await
            .map(|_| ()),
        (false, None) => {
            let spec = serde_json::to_value(&object).expect("json")["spec"].clone();
            api.patch(name, &params, &Patch::Merge(json!({"spec": spec})))
                .await
                .map(|_| ())
        }
        (is_new, Some(status)) => {
            if is_new {
                api.create(&PostParams::default(), &object)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let patch = Patch::Merge(json!({"status": status}));
            api.patch_status(name, &params, &patch).await.map(|_| ())
        }
    };
    result.map_err(|e| match e {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    })
}

/// Through the API: a write that breaks the rule is refused, naming the field and the message.
async fn assert_refused(
    sim: &KubeSim,
    site: &Site,
    index: usize,
    program: &Program,
    values: &[Value],
) {
    let api = api_for(sim, site);
    let name = format!("rule-{index}");
    let refused = if program.is_transition() {
        let (breaking, holds) = split_transition(program, values);
        assert!(holds, "never holds: {}", site.describe());
        let (old, new) = breaking.unwrap_or_else(|| panic!("never fails: {}", site.describe()));
        write(&api, site, &name, old, true)
            .await
            .unwrap_or_else(|e| panic!("{}: the first write is refused: {e}", site.describe()));
        write(&api, site, &name, new, false).await
    } else {
        let (bad, good) = split_on(program, values);
        assert!(good.is_some(), "never holds: {}", site.describe());
        let bad = bad.unwrap_or_else(|| panic!("never fails: {}", site.describe()));
        write(&api, site, &name, bad, true).await
    };
    let said = refused
        .err()
        .unwrap_or_else(|| panic!("accepted a write breaking {}", site.describe()));
    let field = format!("{}: Invalid value", site.field());
    assert!(
        said.contains(&field) && said.contains(&site.message),
        "{}: {said}",
        site.describe()
    );
}

#[tokio::test]
async fn every_cel_rule_of_ferrolb_crds_is_compiled_decides_and_refuses_a_breaking_write() {
    let sites = sites();
    assert!(sites.len() >= 10, "found only {} rules", sites.len());
    let sim = KubeSim::start().await.expect("kubesim starts");
    sim.create_from(&crds_dir())
        .expect("every CRD (every rule) accepted");
    sim.create_object(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    .expect("namespace");
    for (index, site) in sites.iter().enumerate() {
        let program = cel::compile(&site.rule)
            .unwrap_or_else(|e| panic!("kubesim cannot evaluate {}: {e}", site.describe()));
        let values = candidates(&site.schema, 0);
        assert_refused(&sim, site, index, &program, &values).await;
        println!("evaluated and enforced: {}", site.describe());
    }
}

#[tokio::test]
async fn a_crd_rule_kubesim_cannot_evaluate_refuses_the_crd_naming_it_the_field_and_the_rule() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let mut crd = load_manifests(&crds_dir())
        .expect("CRD manifests")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "bgppeers.metallb.io")
        .expect("the BGPPeer CRD");
    let rule = "self.matches('^[0-9]+s$')";
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["connectTime"]
        ["x-kubernetes-validations"][0]["rule"] = json!(rule);
    let err = sim.create_object(crd).expect_err("refused");
    let said = err.to_string();
    for part in [
        "CustomResourceDefinition.apiextensions.k8s.io \"bgppeers.metallb.io\" is invalid",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[connectTime].x-kubernetes-validations[0].rule",
        rule,
        "unsupported CEL (kubesim cannot evaluate it): function matches",
    ] {
        assert!(said.contains(part), "{part:?} missing in: {said}");
    }
}
