//! Agent labels: what selectors match against.
//!
//! An agent's labels are, in increasing precedence:
//! 1. its **non-identifying** description attributes,
//! 2. its **identifying** description attributes (they win over non-identifying ones with
//!    the same key),
//! 3. the **operator-set** labels (they win over both: an operator can always re-label an
//!    agent, e.g. move it to another `env` whatever it reports).
//!
//! Attribute values that are strings are taken as they are; booleans and numbers in their
//! JSON spelling (`true`, `4`); null, array and map values are not labels.

use std::collections::BTreeMap;

use opamp_store::{AgentDescription, scalar_label};

/// The labels of an agent with this description and these operator labels.
pub fn effective_labels(
    description: &AgentDescription,
    operator: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for attrs in [
        &description.non_identifying_attributes,
        &description.identifying_attributes,
    ] {
        for (k, v) in attrs {
            if let Some(s) = scalar_label(v) {
                out.insert(k.clone(), s);
            }
        }
    }
    for (k, v) in operator {
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operator_labels_win_then_identifying_attributes() {
        let d = AgentDescription {
            identifying_attributes: [
                ("service.name".to_owned(), json!("checkout")),
                ("host.name".to_owned(), json!("id")),
            ]
            .into(),
            non_identifying_attributes: [
                ("host.name".to_owned(), json!("non-id")),
                ("cores".to_owned(), json!(8)),
                ("list".to_owned(), json!([1])),
            ]
            .into(),
        };
        let op = [("service.name".to_owned(), "cart".to_owned())].into();
        let l = effective_labels(&d, &op);
        assert_eq!(l["service.name"], "cart");
        assert_eq!(l["host.name"], "id");
        assert_eq!(l["cores"], "8");
        assert!(!l.contains_key("list"));
    }
}
