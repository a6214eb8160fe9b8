//! Kubernetes manifests in tests: checked against Kubernetes' own schemas by
//! `kubernetes-validate` (PyPI, pinned in the Makefile, installed into `.venv` by
//! `make setup`), and a PodTemplate's pieces merged into a workload as
//! `kubectl patch --type strategic` merges them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_yaml_ng::{Mapping, Value};

/// The Kubernetes version manifests are checked against: the oldest minor still supported
/// upstream when this was written (1.35 to 1.37), so that what passes is served by every
/// supported cluster. `kubernetes-validate` 1.37.0 bundles the schemas of 1.25 to 1.37.
pub const KUBERNETES_VERSION: &str = "1.35.0";

/// `kubernetes-validate` in the workspace's `.venv`.
pub fn kubernetes_validate_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/kubernetes-validate")
}

/// Checks every document of `yaml` against [`KUBERNETES_VERSION`]'s schemas, strictly
/// (an unknown field is an error). A kind without a schema is an error too: nothing of it
/// was checked. Err holds `kubernetes-validate`'s own lines (the resource and the field).
pub fn validate_manifests(yaml: &str) -> Result<(), String> {
    validate_with(&kubernetes_validate_binary(), yaml)
}

fn validate_with(binary: &Path, yaml: &str) -> Result<(), String> {
    if !binary.is_file() {
        return Err(format!(
            "{} is missing: run `make setup` in the workspace root (installs the pinned \
             kubernetes-validate into .venv)",
            binary.display()
        ));
    }
    let mut child = Command::new(binary)
        .args(["--kubernetes-version", KUBERNETES_VERSION, "--strict", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(yaml.as_bytes())
            .map_err(|e| format!("writing to kubernetes-validate: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    validation_verdict(out.status.success(), &report)
}

/// What a run of `kubernetes-validate` says: Err with its complaints, unless it succeeded,
/// warned of nothing and passed at least one resource.
fn validation_verdict(success: bool, report: &str) -> Result<(), String> {
    let complaints: Vec<&str> = report.lines().filter(|l| !l.starts_with("INFO ")).collect();
    let passed = report.lines().any(|l| l.contains(" passed for resource "));
    match (success, complaints.is_empty(), passed) {
        (true, true, true) => Ok(()),
        (true, true, false) => Err("no Kubernetes resource in the manifests".to_string()),
        _ => Err(complaints.join("\n")),
    }
}

/// `workload` (a Deployment, say) with a PodTemplate's `template` merged into its
/// `spec.template`, as `kubectl patch --type strategic -p '{"spec":{"template": ...}}'` does:
/// maps merged key by key (the template's scalars win), lists of containers, init
/// containers, volumes, env, ports and mounts merged by their merge key, other lists
/// replaced. Patch directives (`$patch`, null to delete) are not supported.
/// Panics when `template` has no `template`.
pub fn merge_pod_pieces(workload: &Value, template: &Value) -> Value {
    let pod = template
        .get("template")
        .unwrap_or_else(|| panic!("the PodTemplate has no `template`: {template:?}"));
    let patch = mapping("spec", mapping("template", pod.clone()));
    merge(workload, &patch)
}

fn mapping(key: &str, value: Value) -> Value {
    let mut m = Mapping::new();
    m.insert(Value::from(key), value);
    Value::Mapping(m)
}

/// Kubernetes' `patchMergeKey` of the pod spec's lists that strategic merge merges, by the
/// field's name.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        _ => None,
    }
}

fn merge(original: &Value, patch: &Value) -> Value {
    let (Value::Mapping(original), Value::Mapping(patch)) = (original, patch) else {
        return patch.clone();
    };
    let mut merged = original.clone();
    for (field, new) in patch {
        let value = match (merged.get(field), field.as_str().and_then(merge_key), new) {
            (Some(Value::Sequence(old)), Some(key), Value::Sequence(new)) => {
                Value::Sequence(merge_list(old, new, key))
            }
            (Some(old), _, _) => merge(old, new),
            (None, _, _) => new.clone(),
        };
        merged.insert(field.clone(), value);
    }
    Value::Mapping(merged)
}

/// Strategic merge of a list by `key`: an item of both is merged in place; the order is
/// kubectl's: the patch's items in the patch's order, interleaved with the original's other
/// items by their original positions, an item new to the list going before the original
/// item it meets.
fn merge_list(original: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let position = |item: &Value| {
        original
            .iter()
            .position(|o| o.get(key).is_some() && o.get(key) == item.get(key))
    };
    let in_patch = |item: &Value| patch.iter().any(|p| p.get(key) == item.get(key));
    let patched: Vec<Value> = patch
        .iter()
        .map(|p| match position(p) {
            Some(i) => merge(&original[i], p),
            None => p.clone(),
        })
        .collect();
    let original_only: Vec<&Value> = original.iter().filter(|o| !in_patch(o)).collect();

    let mut out = Vec::with_capacity(patched.len() + original_only.len());
    let (mut left, mut right) = (original_only.into_iter().peekable(), patched.into_iter());
    let mut next_right = right.next();
    loop {
        match (left.peek(), &next_right) {
            (Some(l), Some(r)) => {
                let left_first = matches!((position(l), position(r)), (Some(a), Some(b)) if a < b);
                if left_first {
                    out.extend(left.next().cloned());
                } else {
                    out.extend(next_right.take());
                    next_right = right.next();
                }
            }
            (Some(_), None) => out.extend(left.next().cloned()),
            (None, Some(_)) => {
                out.extend(next_right.take());
                next_right = right.next();
            }
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn pod_pieces_merge_by_name_as_strategic_merge_does() {
        let workload = yaml(
            "apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web:1
        env: [{name: A, value: '1'}, {name: B, value: '2'}]
        args: [--old]
      - name: log
        image: log:1
      volumes:
      - {name: data, emptyDir: {}}
",
        );
        let template = yaml(
            "apiVersion: v1
kind: PodTemplate
metadata: {name: sidecar}
template:
  metadata: {annotations: {kuma.io/sidecar: extsvc}}
  spec:
    initContainers:
    - {name: redirect, image: extsvc:1}
    containers:
    - name: envoy
      image: envoy:1.40
    - name: web
      env: [{name: B, value: two}, {name: HTTP_PROXY, value: 'http://127.0.0.1:15001'}]
      args: [--new]
    volumes:
    - {name: xds, configMap: {name: xds}}
",
        );
        let expected = yaml(
            "apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {kuma.io/sidecar: extsvc}
    spec:
      containers:
      - name: envoy
        image: envoy:1.40
      - name: web
        image: web:1
        env: [{name: A, value: '1'}, {name: B, value: two}, {name: HTTP_PROXY, value: 'http://127.0.0.1:15001'}]
        args: [--new]
      - name: log
        image: log:1
      volumes:
      - {name: xds, configMap: {name: xds}}
      - {name: data, emptyDir: {}}
      initContainers:
      - {name: redirect, image: extsvc:1}
",
        );
        assert_eq!(merge_pod_pieces(&workload, &template), expected);
    }

    #[test]
    fn list_order_is_kubectls() {
        let item = |n: &str| yaml(&format!("{{name: {n}}}"));
        let list = |names: &[&str]| names.iter().map(|n| item(n)).collect::<Vec<_>>();
        // An item of both keeps its original place among the original's; a new one goes
        // before the original item it meets.
        assert_eq!(
            merge_list(&list(&["a", "b", "c"]), &list(&["b", "x"]), "name"),
            list(&["a", "b", "x", "c"])
        );
        assert_eq!(
            merge_list(&list(&["a"]), &list(&["x", "y"]), "name"),
            list(&["x", "y", "a"])
        );
    }

    #[test]
    fn a_run_that_passed_nothing_or_complained_fails_with_its_words() {
        let pass = "INFO - passed for resource configmap/x against version 1.35\n";
        assert_eq!(validation_verdict(true, pass), Ok(()));
        assert_eq!(
            validation_verdict(true, ""),
            Err("no Kubernetes resource in the manifests".to_string())
        );
        let warn = "WARN - Couldn't find schema for kind Nope with api version v1";
        assert_eq!(
            validation_verdict(true, &format!("{pass}{warn}\n")),
            Err(warn.to_string())
        );
        let error = "ERROR - did not validate for resource deployment/a: spec: 'selector' is a required property";
        assert_eq!(
            validation_verdict(false, &format!("{pass}{error}\n")),
            Err(error.to_string())
        );
    }

    /// The kinds `extsvc generate --format kubernetes` makes, each valid.
    const VALID: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: egress, namespace: kuma-system}
spec:
  replicas: 1
  selector: {matchLabels: {app: egress}}
  template:
    metadata: {labels: {app: egress}}
    spec:
      containers:
      - name: envoy
        image: envoyproxy/envoy:v1.40.0
        args: [-c, /etc/envoy/bootstrap/envoy.yaml]
        volumeMounts: [{name: xds, mountPath: /etc/envoy/xds}]
      volumes:
      - {name: xds, configMap: {name: egress-xds, defaultMode: 0644}}
      - {name: keys, secret: {secretName: egress-keys, defaultMode: 0400}}
---
apiVersion: v1
kind: Service
metadata: {name: egress}
spec:
  selector: {app: egress}
  ports: [{name: egress, port: 10002, targetPort: 10002}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: egress-xds}
data: {lds.yaml: 'resources: []'}
binaryData: {filter.wasm: AGFzbQEAAAA=}
---
apiVersion: v1
kind: Secret
metadata: {name: egress-keys}
type: Opaque
data: {tls.key: LS0tLS1CRUdJTg==}
---
apiVersion: v1
kind: PodTemplate
metadata: {name: sidecar}
template:
  spec:
    initContainers: [{name: redirect, image: extsvc:latest}]
    containers: [{name: envoy, image: envoyproxy/envoy:v1.40.0}]
    volumes: [{name: xds, configMap: {name: sidecar-xds}}]
";

    fn deployment(spec: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: broken}}\nspec:\n{spec}")
    }

    const POD: &str = "  template:
    metadata: {labels: {app: egress}}
    spec:
      containers: [{name: envoy, image: envoy}]
";

    #[test]
    fn without_kubernetes_validate_the_error_says_how_to_install_it() {
        let e = validate_with(Path::new("/nonexistent/kubernetes-validate"), VALID).unwrap_err();
        assert!(
            e.contains("/nonexistent/kubernetes-validate is missing"),
            "{e}"
        );
        assert!(e.contains("make setup"), "{e}");
    }

    #[test]
    fn the_kinds_of_the_generated_manifests_pass() {
        assert_eq!(validate_manifests(VALID), Ok(()));
    }

    #[test]
    fn an_unknown_field_fails_naming_it() {
        let yaml = deployment(&format!(
            "  selector: {{matchLabels: {{app: egress}}}}\n  replica: 1\n{POD}"
        ));
        let e = validate_manifests(&yaml).unwrap_err();
        assert!(e.contains("deployment/broken"), "{e}");
        assert!(e.contains("'replica' was unexpected"), "{e}");
    }

    #[test]
    fn a_deployment_without_selector_fails_naming_it() {
        let e = validate_manifests(&deployment(POD)).unwrap_err();
        assert!(e.contains("deployment/broken"), "{e}");
        assert!(e.contains("'selector' is a required property"), "{e}");
    }

    #[test]
    fn one_bad_document_among_good_ones_fails() {
        let yaml = format!("{VALID}---\n{}", deployment(POD));
        let e = validate_manifests(&yaml).unwrap_err();
        assert!(e.contains("'selector' is a required property"), "{e}");
    }
}
