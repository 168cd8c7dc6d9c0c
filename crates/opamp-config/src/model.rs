//! Config maps, files and their canonical hash.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use opamp_proto::v1;

/// One configuration file: raw bytes plus an optional MIME type (EFF-6).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    /// MIME type such as `text/yaml`; empty when unknown.
    #[serde(default)]
    pub content_type: String,
    /// The file content. In JSON it is a string when the bytes are UTF-8, else
    /// `{"base64": "..."}`.
    #[serde(with = "body_serde")]
    pub body: Vec<u8>,
}

impl ConfigFile {
    /// A file from text and a content type.
    pub fn new(content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            content_type: content_type.into(),
            body: body.into(),
        }
    }

    /// The body as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// The format a file is parsed in for validation and per-key diffs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML (content type containing `yaml`/`yml`, or a `.yaml`/`.yml` name).
    Yaml,
    /// JSON (content type containing `json`, or a `.json` name).
    Json,
    /// Anything else: compared line by line only.
    Text,
}

impl Format {
    /// Detects the format from the content type first, then the file name's extension.
    pub fn detect(file_name: &str, content_type: &str) -> Self {
        let ct = content_type.to_ascii_lowercase();
        if ct.contains("yaml") || ct.contains("yml") {
            return Format::Yaml;
        }
        if ct.contains("json") {
            return Format::Json;
        }
        if !ct.is_empty() && !ct.starts_with("text/plain") && ct != "application/octet-stream" {
            return Format::Text;
        }
        let name = file_name.to_ascii_lowercase();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            Format::Yaml
        } else if name.ends_with(".json") {
            Format::Json
        } else {
            Format::Text
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Text => "text",
        }
    }
}

/// Parses `body` as `format` into a JSON value; `Ok(None)` for [`Format::Text`].
pub(crate) fn parse_structured(
    file: &str,
    format: Format,
    body: &[u8],
) -> Result<Option<serde_json::Value>, Error> {
    let err = |reason: String| Error::Parse {
        file: file.to_owned(),
        format: format.name(),
        reason,
    };
    match format {
        Format::Text => Ok(None),
        Format::Json => serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| err(e.to_string())),
        Format::Yaml => {
            let text = std::str::from_utf8(body).map_err(|e| err(e.to_string()))?;
            // An empty YAML document is valid and means "nothing".
            if text.trim().is_empty() {
                return Ok(Some(serde_json::Value::Null));
            }
            let yaml: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| err(e.to_string()))?;
            Ok(Some(yaml_to_json(yaml)))
        }
    }
}

fn yaml_to_json(v: serde_norway::Value) -> serde_json::Value {
    use serde_json::Value as J;
    use serde_norway::Value as Y;
    match v {
        Y::Null => J::Null,
        Y::Bool(b) => J::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                J::from(i)
            } else if let Some(u) = n.as_u64() {
                J::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(J::Null, J::Number)
            }
        }
        Y::String(s) => J::String(s),
        Y::Sequence(items) => J::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_norway::to_string(&other)
                            .map(|s| s.trim_end().to_owned())
                            .unwrap_or_default(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

/// A set of named configuration files (`AgentConfigMap`). Names are unique by construction
/// (EFF-4); a single-file config may use the name `""` (EFF-5).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigMap {
    /// File name to file, sorted by name.
    pub files: BTreeMap<String, ConfigFile>,
}

impl ConfigMap {
    /// An empty config map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A config map with a single file.
    pub fn single(name: impl Into<String>, file: ConfigFile) -> Self {
        let mut files = BTreeMap::new();
        files.insert(name.into(), file);
        Self { files }
    }

    /// Adds or replaces a file (builder style).
    pub fn with_file(mut self, name: impl Into<String>, file: ConfigFile) -> Self {
        self.files.insert(name.into(), file);
        self
    }

    /// The canonical SHA-256 hash: equal maps hash equally, whatever order they were built
    /// in or arrived in on the wire. See [`ConfigHash`] for the encoding.
    pub fn hash(&self) -> ConfigHash {
        let mut h = Sha256::new();
        h.update(b"opamp-rs config-map v1\n");
        h.update((self.files.len() as u64).to_be_bytes());
        for (name, file) in &self.files {
            for part in [name.as_bytes(), file.content_type.as_bytes(), &file.body] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
        }
        ConfigHash(h.finalize().into())
    }

    /// Total size of all bodies in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.body.len() as u64).sum()
    }

    /// Checks that every YAML or JSON file parses (format from content type or name).
    /// Returns every failure, not only the first.
    pub fn validate(&self) -> Result<(), Vec<Error>> {
        let errors: Vec<Error> = self
            .files
            .iter()
            .filter_map(|(name, file)| {
                parse_structured(name, Format::detect(name, &file.content_type), &file.body).err()
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// From the wire type.
    pub fn from_wire(map: &v1::AgentConfigMap) -> Self {
        Self {
            files: map
                .config_map
                .iter()
                .map(|(name, f)| {
                    (
                        name.clone(),
                        ConfigFile {
                            content_type: f.content_type.clone(),
                            body: f.body.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// To the wire type.
    pub fn to_wire(&self) -> v1::AgentConfigMap {
        v1::AgentConfigMap {
            config_map: self
                .files
                .iter()
                .map(|(name, f)| {
                    (
                        name.clone(),
                        v1::AgentConfigFile {
                            body: f.body.clone(),
                            content_type: f.content_type.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// A remote config offer carrying this map and its hash (RCFG-2).
    pub fn to_remote_config(&self) -> v1::AgentRemoteConfig {
        v1::AgentRemoteConfig {
            config: Some(self.to_wire()),
            config_hash: self.hash().to_vec(),
        }
    }

    /// An effective config report of this map (EFF-2).
    pub fn to_effective_config(&self) -> v1::EffectiveConfig {
        v1::EffectiveConfig {
            config_map: Some(self.to_wire()),
        }
    }
}

/// SHA-256 of a [`ConfigMap`]'s canonical encoding; shown as 64 lowercase hex digits.
///
/// The encoding: the ASCII line `opamp-rs config-map v1\n`, the number of files as a
/// big-endian u64, then for each file in byte order of its name: name, content type and
/// body, each preceded by its length as a big-endian u64. Lengths make the encoding
/// unambiguous (no two maps share one), and sorting makes it independent of order. SHA-256
/// has no known collisions, as RCFG-2 asks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigHash(pub [u8; 32]);

impl ConfigHash {
    /// The 32 bytes as a `Vec`, for a protobuf `bytes` field.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// From wire bytes; `None` unless exactly 32 bytes (hashes from other servers may have
    /// other lengths: compare those as raw bytes instead).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigHash({self})")
    }
}

impl FromStr for ConfigHash {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidHash(s.chars().take(80).collect());
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(chunk).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for ConfigHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

mod body_serde {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Text(String),
        Binary { base64: String },
    }

    pub(super) fn serialize<S: serde::Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "base64",
                    &base64::engine::general_purpose::STANDARD.encode(body),
                )?;
                m.end()
            }
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Body::deserialize(d)? {
            Body::Text(t) => Ok(t.into_bytes()),
            Body::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConfigMap {
        ConfigMap::new()
            .with_file("a.yaml", ConfigFile::new("text/yaml", "x: 1\n"))
            .with_file("b.conf", ConfigFile::new("text/plain", "LoadPlugin cpu\n"))
    }

    #[test]
    fn hash_is_order_independent_and_content_sensitive() {
        let a = sample();
        let b = ConfigMap::new()
            .with_file("b.conf", ConfigFile::new("text/plain", "LoadPlugin cpu\n"))
            .with_file("a.yaml", ConfigFile::new("text/yaml", "x: 1\n"));
        assert_eq!(a.hash(), b.hash());
        let changed_ct =
            sample().with_file("a.yaml", ConfigFile::new("application/yaml", "x: 1\n"));
        assert_ne!(a.hash(), changed_ct.hash());
        let changed_body = sample().with_file("a.yaml", ConfigFile::new("text/yaml", "x: 2\n"));
        assert_ne!(a.hash(), changed_body.hash());
    }

    #[test]
    fn hash_encoding_is_unambiguous() {
        // Moving bytes between name and body must change the hash.
        let one = ConfigMap::single("ab", ConfigFile::new("", "c"));
        let two = ConfigMap::single("a", ConfigFile::new("", "bc"));
        assert_ne!(one.hash(), two.hash());
        assert_ne!(
            ConfigMap::new().hash(),
            ConfigMap::single("", ConfigFile::default()).hash()
        );
    }

    #[test]
    fn hash_string_round_trips() {
        let h = sample().hash();
        let s = h.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<ConfigHash>().unwrap(), h);
        assert!("xyz".parse::<ConfigHash>().is_err());
        assert!("zz".repeat(32).parse::<ConfigHash>().is_err());
        assert_eq!(ConfigHash::from_slice(&h.to_vec()), Some(h));
        assert_eq!(ConfigHash::from_slice(&[1, 2, 3]), None);
    }

    #[test]
    fn wire_round_trip_keeps_hash() {
        let m = sample();
        let remote = m.to_remote_config();
        assert_eq!(remote.config_hash, m.hash().to_vec());
        assert_eq!(ConfigMap::from_wire(remote.config.as_ref().unwrap()), m);
    }

    #[test]
    fn format_detection() {
        assert_eq!(Format::detect("x", "text/yaml"), Format::Yaml);
        assert_eq!(Format::detect("x", "application/x-yaml"), Format::Yaml);
        assert_eq!(Format::detect("x", "application/json"), Format::Json);
        assert_eq!(Format::detect("c.yml", ""), Format::Yaml);
        assert_eq!(Format::detect("c.json", "text/plain"), Format::Json);
        assert_eq!(Format::detect("collectd.conf", ""), Format::Text);
        assert_eq!(Format::detect("c.yaml", "text/x-collectd"), Format::Text);
    }

    #[test]
    fn validate_reports_every_broken_file() {
        let m = ConfigMap::new()
            .with_file("ok.yaml", ConfigFile::new("text/yaml", "a: [1, 2]\n"))
            .with_file("bad.yaml", ConfigFile::new("text/yaml", "a: [1, 2\n"))
            .with_file("bad.json", ConfigFile::new("application/json", "{\"a\": }"))
            .with_file("free.conf", ConfigFile::new("", "{{{ not checked"));
        let errors = m.validate().unwrap_err();
        assert_eq!(errors.len(), 2);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("bad.yaml") && e.contains("YAML")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("bad.json") && e.contains("JSON")),
            "{text:?}"
        );
        assert!(sample().validate().is_ok());
    }

    #[test]
    fn json_bodies_are_text_or_base64() {
        let m = ConfigMap::new()
            .with_file("t", ConfigFile::new("text/plain", "hello"))
            .with_file("b", ConfigFile::new("", vec![0xff, 0x00, 0x80]));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["t"]["body"], "hello");
        assert_eq!(json["b"]["body"]["base64"], "/wCA");
        let back: ConfigMap = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }
}
