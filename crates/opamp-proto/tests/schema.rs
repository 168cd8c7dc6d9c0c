//! The schema in `proto/` matches the OpAMP specification field for field.
//!
//! `tests/data/schema.tsv` and `tests/data/enums.tsv` are transcribed from the
//! specification's proto files. This test compiles our `proto/` with protox and requires
//! the two to agree exactly: same messages, field names, numbers and types; same enums and
//! values; nothing missing, nothing extra. Together with `cargo xtask codegen --check`
//! (generated code matches `proto/`) this ties the Rust types to the specification.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compile() -> FileDescriptorSet {
    let proto = root().join("proto");
    protox::compile(
        [
            proto.join("opamp/v1/opamp.proto"),
            proto.join("opamp/v1/anyvalue.proto"),
        ],
        [&proto],
    )
    .expect("proto/ compiles")
}

fn table(name: &str) -> Vec<Vec<String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(|c| c.replace(' ', "")).collect())
        .collect()
}

fn short(type_name: &str) -> String {
    type_name.rsplit('.').next().unwrap_or(type_name).to_owned()
}

fn scalar(t: Type) -> &'static str {
    match t {
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Bool => "bool",
        Type::Uint64 => "uint64",
        Type::Int64 => "int64",
        Type::Double => "double",
        Type::Fixed64 => "fixed64",
        Type::Uint32 => "uint32",
        Type::Int32 => "int32",
        Type::Float => "float",
        Type::Fixed32 => "fixed32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        other => panic!("unexpected type {other:?}"),
    }
}

/// (message, field) -> (number, type) for every field of every message, map entries folded
/// into `map<K,V>`.
fn fields_of(msg: &DescriptorProto, out: &mut BTreeMap<(String, String), (String, String)>) {
    let entries: BTreeMap<String, &DescriptorProto> = msg
        .nested_type
        .iter()
        .filter(|n| n.options.as_ref().is_some_and(|o| o.map_entry()))
        .map(|n| (n.name().to_owned(), n))
        .collect();
    for f in &msg.field {
        let base = match f.r#type() {
            Type::Message | Type::Enum => short(f.type_name()),
            t => scalar(t).to_owned(),
        };
        let ty = if f.label() == Label::Repeated {
            if let Some(entry) = entries.get(&base) {
                let kv: Vec<String> = entry
                    .field
                    .iter()
                    .map(|e| match e.r#type() {
                        Type::Message | Type::Enum => short(e.type_name()),
                        t => scalar(t).to_owned(),
                    })
                    .collect();
                format!("map<{},{}>", kv[0], kv[1])
            } else {
                format!("repeated{base}")
            }
        } else {
            base
        };
        out.insert(
            (msg.name().to_owned(), f.name().to_owned()),
            (f.number().to_string(), ty),
        );
    }
    for nested in &msg.nested_type {
        if !entries.contains_key(nested.name()) {
            fields_of(nested, out);
        }
    }
}

#[test]
fn every_field_matches_the_specification() {
    let fds = compile();
    let mut ours = BTreeMap::new();
    for file in &fds.file {
        assert_eq!(file.package(), "opamp.proto.v1", "{}", file.name());
        for msg in &file.message_type {
            fields_of(msg, &mut ours);
        }
    }
    let spec: BTreeMap<(String, String), (String, String)> = table("schema.tsv")
        .into_iter()
        .map(|r| ((r[0].clone(), r[1].clone()), (r[2].clone(), r[3].clone())))
        .collect();
    assert_eq!(spec.len(), 135, "the transcribed table has every field");
    let mut problems = Vec::new();
    for (key, want) in &spec {
        match ours.get(key) {
            None => problems.push(format!("missing field {}.{}", key.0, key.1)),
            Some(got) if got != want => {
                problems.push(format!("{}.{}: spec {want:?}, ours {got:?}", key.0, key.1))
            }
            Some(_) => {}
        }
    }
    for key in ours.keys().filter(|k| !spec.contains_key(*k)) {
        problems.push(format!("extra field {}.{}", key.0, key.1));
    }
    assert!(
        problems.is_empty(),
        "schema drift:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_enum_value_matches_the_specification() {
    let fds = compile();
    let mut ours = BTreeSet::new();
    for file in &fds.file {
        for e in &file.enum_type {
            for v in &e.value {
                ours.insert((
                    e.name().to_owned(),
                    v.name().to_owned(),
                    v.number().to_string(),
                ));
            }
        }
    }
    let spec: BTreeSet<(String, String, String)> = table("enums.tsv")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(spec.len(), 49);
    assert_eq!(ours, spec);
}

#[test]
fn oneofs_match_the_specification() {
    let fds = compile();
    let mut oneofs = BTreeMap::new();
    for file in &fds.file {
        for msg in &file.message_type {
            for (i, o) in msg.oneof_decl.iter().enumerate() {
                let members: Vec<String> = msg
                    .field
                    .iter()
                    .filter(|f| f.oneof_index == Some(i as i32))
                    .map(|f| f.name().to_owned())
                    .collect();
                oneofs.insert(format!("{}.{}", msg.name(), o.name()), members);
            }
        }
    }
    assert_eq!(oneofs.len(), 2);
    assert_eq!(
        oneofs["AnyValue.value"],
        [
            "string_value",
            "bool_value",
            "int_value",
            "double_value",
            "array_value",
            "kvlist_value",
            "bytes_value"
        ]
    );
    assert_eq!(oneofs["ServerErrorResponse.Details"], ["retry_info"]);
}
