//! Wire types → store domain types, in one place (STYLE.md: conversion at the boundary).
//!
//! Only this module reads `AgentToServer` sub-messages field by field; the rest of the
//! crate speaks `opamp_store` types.

use opamp_config::ConfigMap;
use opamp_proto::v1::{
    self, AgentDescription as WireDescription, AvailableComponents, ComponentHealth,
    PackageStatuses, RemoteConfigStatuses,
};
use opamp_proto::{InstanceUid, Value};
use opamp_store::{AgentDescription, Attributes, RemoteConfigState, RemoteConfigStatus};
use serde_json::{Map, Value as Json, json};

/// `AnyValue` → JSON: strings, booleans, numbers as they are, bytes as hex, arrays and
/// key/value lists as arrays and objects.
pub fn any_value_to_json(v: &v1::AnyValue) -> Json {
    value_to_json(Value::from(v))
}

fn value_to_json(v: Value) -> Json {
    match v {
        Value::String(s) => Json::String(s),
        Value::Bool(b) => Json::Bool(b),
        Value::Int(i) => Json::from(i),
        Value::Double(d) => serde_json::Number::from_f64(d).map_or(Json::Null, Json::Number),
        Value::Bytes(b) => Json::String(hex_string(&b)),
        Value::Array(items) => Json::Array(items.into_iter().map(value_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, value_to_json(v)))
                .collect(),
        ),
        _ => Json::Null,
    }
}

fn hex_string(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

fn attributes(kvs: &[v1::KeyValue]) -> Attributes {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Json::Null, any_value_to_json),
            )
        })
        .collect()
}

/// The agent description (DESC-1): both attribute lists as JSON objects.
pub fn description(d: &WireDescription) -> AgentDescription {
    AgentDescription {
        identifying_attributes: attributes(&d.identifying_attributes),
        non_identifying_attributes: attributes(&d.non_identifying_attributes),
    }
}

/// The component health tree as JSON (`healthy`, `status`, `last_error`, times, nested
/// `component_health_map`, `attributes`).
pub fn health(h: &ComponentHealth) -> Json {
    let mut o = Map::new();
    o.insert("healthy".into(), Json::Bool(h.healthy));
    if !h.status.is_empty() {
        o.insert("status".into(), Json::String(h.status.clone()));
    }
    if !h.last_error.is_empty() {
        o.insert("last_error".into(), Json::String(h.last_error.clone()));
    }
    if h.start_time_unix_nano != 0 {
        o.insert(
            "start_time_unix_nano".into(),
            Json::from(h.start_time_unix_nano),
        );
    }
    if h.status_time_unix_nano != 0 {
        o.insert(
            "status_time_unix_nano".into(),
            Json::from(h.status_time_unix_nano),
        );
    }
    if !h.component_health_map.is_empty() {
        o.insert(
            "component_health_map".into(),
            Json::Object(
                h.component_health_map
                    .iter()
                    .map(|(k, v)| (k.clone(), health(v)))
                    .collect(),
            ),
        );
    }
    if !h.attributes.is_empty() {
        o.insert(
            "attributes".into(),
            Json::Object(attributes(&h.attributes).into_iter().collect()),
        );
    }
    Json::Object(o)
}

/// The remote config status (RCFG-3).
pub fn remote_config_status(s: &v1::RemoteConfigStatus) -> RemoteConfigStatus {
    let status = match RemoteConfigStatuses::try_from(s.status) {
        Ok(RemoteConfigStatuses::Applied) => RemoteConfigState::Applied,
        Ok(RemoteConfigStatuses::Applying) => RemoteConfigState::Applying,
        Ok(RemoteConfigStatuses::Failed) => RemoteConfigState::Failed,
        _ => RemoteConfigState::Unset,
    };
    RemoteConfigStatus {
        status,
        last_remote_config_hash: s.last_remote_config_hash.clone(),
        error_message: s.error_message.clone(),
    }
}

/// The effective config (EFF-1); an absent map is an empty one.
pub fn effective_config(e: &v1::EffectiveConfig) -> ConfigMap {
    e.config_map
        .as_ref()
        .map(ConfigMap::from_wire)
        .unwrap_or_default()
}

/// Package statuses as JSON.
pub fn package_statuses(p: &PackageStatuses) -> Json {
    let packages: Map<String, Json> = p
        .packages
        .iter()
        .map(|(name, s)| {
            let status = v1::PackageStatusEnum::try_from(s.status)
                .map(|e| e.as_str_name().to_owned())
                .unwrap_or_else(|_| s.status.to_string());
            let mut o = json!({
                "name": s.name,
                "agent_has_version": s.agent_has_version,
                "agent_has_hash": hex_string(&s.agent_has_hash),
                "server_offered_version": s.server_offered_version,
                "server_offered_hash": hex_string(&s.server_offered_hash),
                "status": status,
                "error_message": s.error_message,
            });
            if let (Some(d), Some(obj)) = (s.download_details.as_ref(), o.as_object_mut()) {
                obj.insert(
                    "download_details".into(),
                    json!({
                        "download_percent": d.download_percent,
                        "download_bytes_per_second": d.download_bytes_per_second,
                    }),
                );
            }
            (name.clone(), o)
        })
        .collect();
    json!({
        "packages": packages,
        "server_provided_all_packages_hash": hex_string(&p.server_provided_all_packages_hash),
        "error_message": p.error_message,
    })
}

/// Available components as JSON (`hash` and a nested `components` tree with metadata).
pub fn available_components(a: &AvailableComponents) -> Json {
    fn details(d: &v1::ComponentDetails) -> Json {
        let mut o = Map::new();
        if !d.metadata.is_empty() {
            o.insert(
                "metadata".into(),
                Json::Object(attributes(&d.metadata).into_iter().collect()),
            );
        }
        if !d.sub_component_map.is_empty() {
            o.insert(
                "sub_component_map".into(),
                Json::Object(
                    d.sub_component_map
                        .iter()
                        .map(|(k, v)| (k.clone(), details(v)))
                        .collect(),
                ),
            );
        }
        Json::Object(o)
    }
    json!({
        "hash": hex_string(&a.hash),
        "components": a.components.iter().map(|(k, v)| (k.clone(), details(v))).collect::<Map<_, _>>(),
    })
}

/// The uid as shown in the API and logs (UUID text form).
pub fn uid_text(uid: &InstanceUid) -> String {
    uid.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use opamp_proto::v1::KeyValue;

    #[test]
    fn description_attributes_become_json_desc_1() {
        let d = WireDescription {
            identifying_attributes: vec![
                KeyValue::new("service.name", "checkout"),
                KeyValue::new("n", 3i64),
            ],
            non_identifying_attributes: vec![KeyValue::new("os.type", "linux")],
        };
        let d = description(&d);
        assert_eq!(d.identifying_attributes["service.name"], "checkout");
        assert_eq!(d.identifying_attributes["n"], 3);
        assert_eq!(d.non_identifying_attributes["os.type"], "linux");
    }

    #[test]
    fn health_tree_nests() {
        let mut h = ComponentHealth {
            healthy: false,
            last_error: "boom".into(),
            ..Default::default()
        };
        h.component_health_map.insert(
            "receiver".into(),
            ComponentHealth {
                healthy: true,
                ..Default::default()
            },
        );
        let j = health(&h);
        assert_eq!(j["healthy"], false);
        assert_eq!(j["last_error"], "boom");
        assert_eq!(j["component_health_map"]["receiver"]["healthy"], true);
    }

    #[test]
    fn remote_config_status_maps_every_state_rcfg_3() {
        for (wire, st) in [
            (RemoteConfigStatuses::Applied, RemoteConfigState::Applied),
            (RemoteConfigStatuses::Applying, RemoteConfigState::Applying),
            (RemoteConfigStatuses::Failed, RemoteConfigState::Failed),
            (RemoteConfigStatuses::Unset, RemoteConfigState::Unset),
        ] {
            let s = remote_config_status(&v1::RemoteConfigStatus {
                last_remote_config_hash: vec![1, 2],
                status: wire as i32,
                error_message: "e".into(),
            });
            assert_eq!(s.status, st);
            assert_eq!(s.last_remote_config_hash, vec![1, 2]);
        }
        let s = remote_config_status(&v1::RemoteConfigStatus {
            status: 99,
            ..Default::default()
        });
        assert_eq!(s.status, RemoteConfigState::Unset);
    }
}
