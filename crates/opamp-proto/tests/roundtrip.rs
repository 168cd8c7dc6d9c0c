//! Property tests: any AgentToServer / ServerToAgent survives encode → decode, both as
//! plain protobuf and as a WebSocket message; arbitrary bytes never panic the decoders.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use opamp_proto::prost::Message;
use opamp_proto::v1::*;
use opamp_proto::{Limits, Value, framing, limits};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        ".{0,12}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        // NaN != NaN would break equality; finite doubles only.
        (-1e12f64..1e12).prop_map(Value::Double),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z.]{1,8}", inner), 0..4).prop_map(Value::Map),
        ]
    })
}

fn key_values() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(("[a-z.]{1,12}", value()), 0..4)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn config_map() -> impl Strategy<Value = AgentConfigMap> {
    proptest::collection::btree_map(".{0,8}", (bytes(32), "[a-z/]{0,10}"), 0..3).prop_map(|m| {
        AgentConfigMap {
            config_map: m
                .into_iter()
                .map(|(k, (body, content_type))| (k, AgentConfigFile { body, content_type }))
                .collect(),
        }
    })
}

fn health() -> impl Strategy<Value = ComponentHealth> {
    let leaf = (
        any::<bool>(),
        any::<u64>(),
        ".{0,8}",
        ".{0,8}",
        any::<u64>(),
        key_values(),
    )
        .prop_map(
            |(healthy, start, last_error, status, at, attributes)| ComponentHealth {
                healthy,
                start_time_unix_nano: start,
                last_error,
                status,
                status_time_unix_nano: at,
                component_health_map: Default::default(),
                attributes,
            },
        );
    leaf.prop_recursive(2, 8, 3, |inner| {
        (
            inner.clone(),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..3),
        )
            .prop_map(|(mut h, children)| {
                h.component_health_map = children;
                h
            })
    })
}

fn headers() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(("[A-Za-z-]{1,8}", ".{0,8}"), 0..3).prop_map(|hs| Headers {
        headers: hs
            .into_iter()
            .map(|(key, value)| Header { key, value })
            .collect(),
    })
}

prop_compose! {
    fn agent_to_server()(
        instance_uid in bytes(17),
        sequence_num in any::<u64>(),
        capabilities in any::<u64>(),
        flags in any::<u64>(),
        description in proptest::option::of((key_values(), key_values())),
        health in proptest::option::of(health()),
        effective in proptest::option::of(config_map()),
        rcs in proptest::option::of((bytes(32), 0i32..5, ".{0,10}")),
        packages in proptest::option::of(proptest::collection::btree_map("[a-z]{0,6}", (".{0,6}", bytes(8), 0i32..6, any::<Option<(f64, f64)>>()), 0..3)),
        disconnect in any::<bool>(),
        csr in proptest::option::of(bytes(40)),
        custom in proptest::option::of(proptest::collection::vec("[a-z.]{1,10}(/v[0-9])?", 0..3)),
        custom_message in proptest::option::of(("[a-z.]{1,10}", "[a-z]{0,6}", bytes(16))),
        components in proptest::option::of((bytes(32), proptest::collection::btree_map("[a-z]{1,6}", key_values(), 0..3))),
        css in proptest::option::of((bytes(32), 0i32..4, ".{0,10}")),
    ) -> AgentToServer {
        AgentToServer {
            instance_uid,
            sequence_num,
            capabilities,
            flags,
            agent_description: description.map(|(identifying_attributes, non_identifying_attributes)| AgentDescription { identifying_attributes, non_identifying_attributes }),
            health,
            effective_config: effective.map(|m| EffectiveConfig { config_map: Some(m) }),
            remote_config_status: rcs.map(|(last_remote_config_hash, status, error_message)| RemoteConfigStatus { last_remote_config_hash, status, error_message }),
            package_statuses: packages.map(|p| PackageStatuses {
                packages: p.into_iter().map(|(name, (version, hash, status, details))| {
                    let st = PackageStatus {
                        name: name.clone(),
                        agent_has_version: version.clone(),
                        agent_has_hash: hash.clone(),
                        server_offered_version: version,
                        server_offered_hash: hash,
                        status,
                        error_message: String::new(),
                        download_details: details.filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(download_percent, download_bytes_per_second)| PackageDownloadDetails { download_percent, download_bytes_per_second }),
                    };
                    (name, st)
                }).collect(),
                server_provided_all_packages_hash: vec![1, 2, 3],
                error_message: String::new(),
            }),
            agent_disconnect: disconnect.then_some(AgentDisconnect {}),
            connection_settings_request: csr.map(|csr| ConnectionSettingsRequest { opamp: Some(OpAmpConnectionSettingsRequest { certificate_request: Some(CertificateRequest { csr }) }) }),
            custom_capabilities: custom.map(|capabilities| CustomCapabilities { capabilities }),
            custom_message: custom_message.map(|(capability, r#type, data)| CustomMessage { capability, r#type, data }),
            available_components: components.map(|(hash, comps)| AvailableComponents {
                hash,
                components: comps.into_iter().map(|(k, metadata)| (k, ComponentDetails { metadata, sub_component_map: Default::default() })).collect(),
            }),
            connection_settings_status: css.map(|(last_connection_settings_hash, status, error_message)| ConnectionSettingsStatus { last_connection_settings_hash, status, error_message }),
        }
    }
}

prop_compose! {
    fn telemetry()(endpoint in "https://[a-z]{1,8}/v1/metrics", headers in proptest::option::of(headers()), cert in proptest::option::of((bytes(16), bytes(16), bytes(16)))) -> TelemetryConnectionSettings {
        TelemetryConnectionSettings {
            destination_endpoint: endpoint,
            headers,
            certificate: cert.map(|(cert, private_key, ca_cert)| TlsCertificate { cert, private_key, ca_cert }),
            tls: Some(TlsConnectionSettings { ca_pem_contents: "pem".into(), include_system_ca_certs_pool: true, insecure_skip_verify: false, min_version: "1.2".into(), max_version: String::new(), cipher_suites: vec!["TLS_AES_128_GCM_SHA256".into()] }),
            proxy: Some(ProxyConnectionSettings { url: "proxy:3128".into(), connect_headers: None }),
        }
    }
}

prop_compose! {
    fn server_to_agent()(
        instance_uid in bytes(17),
        error in proptest::option::of((0i32..4, ".{0,10}", proptest::option::of(any::<u64>()))),
        remote in proptest::option::of((config_map(), bytes(32))),
        settings in proptest::option::of((bytes(32), proptest::option::of(("wss://[a-z]{1,8}:4320/v1/opamp", any::<u64>())), proptest::option::of(telemetry()), proptest::collection::btree_map("[a-z]{1,6}", ("[a-z:0-9]{1,10}", proptest::collection::btree_map("[a-z]{1,4}", "[a-z]{0,4}", 0..2)), 0..2))),
        packages in proptest::option::of((proptest::collection::btree_map("[a-z]{0,6}", (0i32..3, ".{0,6}", "https://[a-z]{1,8}/p", bytes(32), bytes(16)), 0..3), bytes(32))),
        flags in any::<u64>(),
        capabilities in any::<u64>(),
        new_uid in proptest::option::of(bytes(17)),
        command in proptest::option::of(0i32..3),
        custom in proptest::option::of(proptest::collection::vec("[a-z.]{1,10}", 0..3)),
        custom_message in proptest::option::of(("[a-z.]{1,10}", "[a-z]{0,6}", bytes(16))),
    ) -> ServerToAgent {
        ServerToAgent {
            instance_uid,
            error_response: error.map(|(t, m, retry)| ServerErrorResponse { r#type: t, error_message: m, details: retry.map(|n| server_error_response::Details::RetryInfo(RetryInfo { retry_after_nanoseconds: n })) }),
            remote_config: remote.map(|(config, config_hash)| AgentRemoteConfig { config: Some(config), config_hash }),
            connection_settings: settings.map(|(hash, opamp, metrics, others)| ConnectionSettingsOffers {
                hash,
                opamp: opamp.map(|(destination_endpoint, hb)| OpAmpConnectionSettings { destination_endpoint, headers: None, certificate: None, heartbeat_interval_seconds: hb, tls: None, proxy: None }),
                own_metrics: metrics.clone(),
                own_traces: None,
                own_logs: metrics,
                other_connections: others.into_iter().map(|(k, (endpoint, other_settings))| (k, OtherConnectionSettings { destination_endpoint: endpoint, headers: None, certificate: None, other_settings, tls: None, proxy: None })).collect(),
            }),
            packages_available: packages.map(|(p, all)| PackagesAvailable {
                packages: p.into_iter().map(|(name, (t, version, url, content_hash, signature))| (name, PackageAvailable { r#type: t, version, file: Some(DownloadableFile { download_url: url, content_hash: content_hash.clone(), signature, headers: None }), hash: content_hash })).collect(),
                all_packages_hash: all,
            }),
            flags,
            capabilities,
            agent_identification: new_uid.map(|new_instance_uid| AgentIdentification { new_instance_uid }),
            command: command.map(|t| ServerToAgentCommand { r#type: t }),
            custom_capabilities: custom.map(|capabilities| CustomCapabilities { capabilities }),
            custom_message: custom_message.map(|(capability, r#type, data)| CustomMessage { capability, r#type, data }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn agent_to_server_round_trips(msg in agent_to_server()) {
        let wire = msg.encode_to_vec();
        prop_assert_eq!(&AgentToServer::decode(wire.as_slice()).unwrap(), &msg);
        let frame = framing::encode(&msg);
        prop_assert_eq!(frame[0], 0);
        let back: AgentToServer = framing::decode(&frame, Limits::default()).unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn server_to_agent_round_trips(msg in server_to_agent()) {
        let wire = msg.encode_to_vec();
        prop_assert_eq!(&ServerToAgent::decode(wire.as_slice()).unwrap(), &msg);
        let frame = framing::encode(&msg);
        let back: ServerToAgent = framing::decode(&frame, Limits::default()).unwrap();
        prop_assert_eq!(&back, &msg);
        // Through gzip, as an HTTP body would travel.
        let unzipped = limits::gunzip(&limits::gzip(&wire), wire.len()).unwrap();
        prop_assert_eq!(ServerToAgent::decode(unzipped.as_slice()).unwrap(), msg);
    }

    #[test]
    fn any_value_round_trips(v in value()) {
        let any = AnyValue::from(v.clone());
        let back = Value::from(AnyValue::decode(any.encode_to_vec().as_slice()).unwrap());
        prop_assert_eq!(back, v);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(data in bytes(256)) {
        let _ = framing::decode::<AgentToServer>(&data, Limits::default());
        let _ = framing::decode::<ServerToAgent>(&data, Limits::new(128));
        let _ = limits::gunzip(&data, 1024);
        let _ = AgentToServer::decode(data.as_slice());
    }
}
