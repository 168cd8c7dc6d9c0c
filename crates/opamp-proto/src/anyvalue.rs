//! Conversions between Rust values and `AnyValue` / `KeyValue`.

use crate::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};

/// A Rust view of [`AnyValue`]: one attribute value of any kind.
///
/// Convert with `From` in both directions. An `AnyValue` with no member set is
/// [`Value::Null`]; a key-value list keeps its order and duplicate keys, as the wire does.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Value {
    /// No value set.
    #[default]
    Null,
    /// A UTF-8 string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of values.
    Array(Vec<Value>),
    /// An ordered list of key/value pairs.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The string, if this is [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<AnyValue> for Value {
    fn from(v: AnyValue) -> Self {
        match v.value {
            None => Value::Null,
            Some(any_value::Value::StringValue(s)) => Value::String(s),
            Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
            Some(any_value::Value::IntValue(i)) => Value::Int(i),
            Some(any_value::Value::DoubleValue(d)) => Value::Double(d),
            Some(any_value::Value::BytesValue(b)) => Value::Bytes(b),
            Some(any_value::Value::ArrayValue(a)) => {
                Value::Array(a.values.into_iter().map(Value::from).collect())
            }
            Some(any_value::Value::KvlistValue(kv)) => Value::Map(
                kv.values
                    .into_iter()
                    .map(|kv| (kv.key, kv.value.map(Value::from).unwrap_or_default()))
                    .collect(),
            ),
        }
    }
}

impl From<&AnyValue> for Value {
    fn from(v: &AnyValue) -> Self {
        Value::from(v.clone())
    }
}

impl From<Value> for AnyValue {
    fn from(v: Value) -> Self {
        let value = match v {
            Value::Null => None,
            Value::String(s) => Some(any_value::Value::StringValue(s)),
            Value::Bool(b) => Some(any_value::Value::BoolValue(b)),
            Value::Int(i) => Some(any_value::Value::IntValue(i)),
            Value::Double(d) => Some(any_value::Value::DoubleValue(d)),
            Value::Bytes(b) => Some(any_value::Value::BytesValue(b)),
            Value::Array(items) => Some(any_value::Value::ArrayValue(ArrayValue {
                values: items.into_iter().map(AnyValue::from).collect(),
            })),
            Value::Map(entries) => Some(any_value::Value::KvlistValue(KeyValueList {
                values: entries
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, v))
                    .collect(),
            })),
        };
        AnyValue { value }
    }
}

macro_rules! value_from {
    ($($t:ty => |$x:ident| $e:expr),* $(,)?) => {
        $(
            impl From<$t> for Value {
                fn from($x: $t) -> Self { $e }
            }
            impl From<$t> for AnyValue {
                fn from($x: $t) -> Self { AnyValue::from(Value::from($x)) }
            }
        )*
    };
}

value_from! {
    &str => |s| Value::String(s.to_owned()),
    String => |s| Value::String(s),
    bool => |b| Value::Bool(b),
    i64 => |i| Value::Int(i),
    i32 => |i| Value::Int(i64::from(i)),
    u32 => |i| Value::Int(i64::from(i)),
    f64 => |d| Value::Double(d),
    Vec<u8> => |b| Value::Bytes(b),
    &[u8] => |b| Value::Bytes(b.to_vec()),
    Vec<Value> => |a| Value::Array(a),
    Vec<(String, Value)> => |m| Value::Map(m),
}

impl AnyValue {
    /// The string value, if this holds a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Some(any_value::Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }
}

impl KeyValue {
    /// A key/value pair from anything convertible to [`AnyValue`].
    pub fn new(key: impl Into<String>, value: impl Into<AnyValue>) -> Self {
        KeyValue {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// Finds the value of `key` in a list of attributes (the first, if repeated).
pub fn find_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn scalars_convert_both_ways() {
        let cases: Vec<(Value, AnyValue)> = vec![
            (Value::from("x"), AnyValue::from("x")),
            (Value::from(true), AnyValue::from(true)),
            (Value::from(-5i64), AnyValue::from(-5i64)),
            (Value::from(2.5f64), AnyValue::from(2.5f64)),
            (Value::from(vec![1u8, 2]), AnyValue::from(vec![1u8, 2])),
        ];
        for (value, any) in cases {
            assert_eq!(AnyValue::from(value.clone()), any);
            assert_eq!(Value::from(any), value);
        }
        assert_eq!(Value::from(AnyValue::default()), Value::Null);
        assert_eq!(AnyValue::from(Value::Null), AnyValue::default());
    }

    #[test]
    fn nested_arrays_and_maps_round_trip_through_the_wire() {
        let value = Value::Map(vec![
            ("name".into(), Value::from("collector")),
            (
                "ports".into(),
                Value::Array(vec![Value::Int(4317), Value::Int(4318)]),
            ),
            (
                "nested".into(),
                Value::Map(vec![("deep".into(), Value::Null)]),
            ),
            ("dup".into(), Value::Bool(false)),
            ("dup".into(), Value::Bool(true)),
        ]);
        let any = AnyValue::from(value.clone());
        let bytes = any.encode_to_vec();
        let back = Value::from(AnyValue::decode(bytes.as_slice()).unwrap());
        assert_eq!(back, value);
    }

    #[test]
    fn keyvalue_helpers() {
        let attrs = vec![
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.version", "1.2.3"),
            KeyValue {
                key: "empty".into(),
                value: None,
            },
        ];
        assert_eq!(
            find_attribute(&attrs, "service.name").and_then(AnyValue::as_str),
            Some("checkout")
        );
        assert!(find_attribute(&attrs, "empty").is_none());
        assert!(find_attribute(&attrs, "missing").is_none());
        assert_eq!(
            Value::from(attrs[1].value.clone().unwrap()).as_str(),
            Some("1.2.3")
        );
    }
}
