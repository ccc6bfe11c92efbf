//! Label and field selectors, parsed with the grammar of
//! `k8s.io/apimachinery/pkg/labels` and `.../fields` and matched against the
//! stored JSON objects.

use serde_json::Value;

use crate::control::store::Kind;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<(String, LabelOp)>,
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_label_term(term)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// True when the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|(key, op)| match op {
            LabelOp::Equals(v) => get(key) == Some(v.as_str()),
            LabelOp::NotEquals(v) => get(key) != Some(v.as_str()),
            LabelOp::In(vs) => get(key).is_some_and(|g| vs.iter().any(|v| v == g)),
            LabelOp::NotIn(vs) => get(key).is_none_or(|g| vs.iter().all(|v| v != g)),
            LabelOp::Exists => get(key).is_some(),
            LabelOp::DoesNotExist => get(key).is_none(),
        })
    }
}

/// Splits on commas that are not inside a `( … )` value set.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn valid_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key.len() <= 316
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key {key:?}"
        ))
    }
}

fn valid_value(value: &str) -> Result<String, String> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value {value:?}"
        ))
    }
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{rest}', expected: '(' value set ')'"))?;
    inner.split(',').map(|v| valid_value(v.trim())).collect()
}

fn parse_label_term(term: &str) -> Result<(String, LabelOp), String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok((valid_key(key.trim())?, LabelOp::DoesNotExist));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok((
            valid_key(k.trim())?,
            LabelOp::NotEquals(valid_value(v.trim())?),
        ));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok((
            valid_key(k.trim())?,
            LabelOp::Equals(valid_value(v.trim())?),
        ));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok((
            valid_key(k.trim())?,
            LabelOp::Equals(valid_value(v.trim())?),
        ));
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    match words.next().map(str::trim_start) {
        None => Ok((valid_key(key)?, LabelOp::Exists)),
        Some(rest) => {
            if let Some(set) = rest.strip_prefix("notin") {
                Ok((valid_key(key)?, LabelOp::NotIn(parse_set(set)?)))
            } else if let Some(set) = rest.strip_prefix("in") {
                Ok((valid_key(key)?, LabelOp::In(parse_set(set)?)))
            } else {
                Err(format!("unable to parse requirement: {term:?}"))
            }
        }
    }
}

/// A parsed `fieldSelector` (`spec.nodeName=n,status.phase!=Failed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// (JSON pointer, wanted value, equal?)
    requirements: Vec<(String, String, bool)>,
}

impl FieldSelector {
    /// Parses a field selector, accepting only the fields the real API
    /// server supports for `kind` (else `field label not supported`).
    pub fn parse(kind: Kind, text: &str) -> Result<Self, String> {
        Self::parse_with(text, |field| field_pointer(kind, field))
    }

    /// Parses a field selector over an explicit list of field labels.
    pub fn parse_fields(text: &str, allowed: &[&str]) -> Result<Self, String> {
        Self::parse_with(text, |field| {
            allowed
                .contains(&field)
                .then(|| format!("/{}", field.replace('.', "/")))
        })
    }

    fn parse_with(text: &str, pointer_of: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            let pointer =
                pointer_of(field).ok_or_else(|| format!("field label not supported: {field}"))?;
            requirements.push((pointer, value.trim().to_string(), equal));
        }
        Ok(FieldSelector { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(pointer, want, equal)| {
            let got = match object.pointer(pointer) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            (got == *want) == *equal
        })
    }
}

/// The JSON pointer of a field selector label, for the labels each kind's
/// real registry supports.
fn field_pointer(kind: Kind, field: &str) -> Option<String> {
    let common = matches!(field, "metadata.name" | "metadata.namespace");
    let specific: &[&str] = match kind {
        Kind::Pod => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Event => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Node => &["spec.unschedulable"],
        Kind::Namespace => &["status.phase"],
        _ => &[],
    };
    if !common && !specific.contains(&field) {
        return None;
    }
    let path = match (kind, field) {
        (Kind::Event, "source") => "source.component",
        (Kind::Node, "spec.unschedulable") => "spec.unschedulable",
        _ => field,
    };
    Some(format!("/{}", path.replace('.', "/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value, node: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "labels": labels}, "spec": {"nodeName": node}})
    }

    #[test]
    fn label_selector_grammar() {
        let p = pod(json!({"app": "web", "tier": "front"}), "n1");
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("app in (api,web),tier notin (back)", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&p),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn label_selector_rejects_garbage() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
        assert!(LabelSelector::parse("app=(x)").is_err());
    }

    #[test]
    fn field_selector_node_name_and_unsupported_field() {
        let p = pod(json!({}), "n1");
        assert!(FieldSelector::parse(Kind::Pod, "spec.nodeName=n1")
            .unwrap()
            .matches(&p));
        assert!(!FieldSelector::parse(Kind::Pod, "spec.nodeName=n2")
            .unwrap()
            .matches(&p));
        assert!(
            FieldSelector::parse(Kind::Pod, "spec.nodeName!=n2,metadata.name=p")
                .unwrap()
                .matches(&p)
        );
        assert!(FieldSelector::parse(Kind::Pod, "status.phase=")
            .unwrap()
            .matches(&p));
        let err = FieldSelector::parse(Kind::EndpointSlice, "spec.nodeName=n1").unwrap_err();
        assert_eq!(err, "field label not supported: spec.nodeName");
    }
}
