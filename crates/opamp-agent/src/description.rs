//! The agent description (DESC-*): attributes from the configuration file plus detected
//! `os.type`, `os.version`, `os.description`, `host.name` and `host.arch`, and
//! `service.instance.id` = the instance uid.

use opamp_proto::v1::{self, AnyValue, KeyValue};

use crate::settings::DescriptionSettings;

/// What was detected about the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detected {
    /// `os.type`, e.g. `linux`.
    pub os_type: String,
    /// `os.version`: `VERSION_ID` from /etc/os-release, else the kernel release.
    pub os_version: Option<String>,
    /// `os.description`: `PRETTY_NAME` from /etc/os-release.
    pub os_description: Option<String>,
    /// `host.name`: the node name.
    pub host_name: Option<String>,
    /// `host.arch` in OpenTelemetry spelling (`amd64`, `arm64`, ...).
    pub host_arch: String,
}

/// Reads a key from /etc/os-release text (values may be quoted).
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        if k.trim() != key {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// The OpenTelemetry `host.arch` value for a Rust `std::env::consts::ARCH`.
pub fn otel_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

impl Detected {
    /// Detects the host (reads /etc/os-release and calls uname).
    pub fn detect() -> Self {
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy().into_owned();
        let node = uname.nodename().to_string_lossy().into_owned();
        Self {
            os_type: std::env::consts::OS.to_owned(),
            os_version: os_release_value(&os_release, "VERSION_ID")
                .or_else(|| (!release.is_empty()).then_some(release)),
            os_description: os_release_value(&os_release, "PRETTY_NAME"),
            host_name: (!node.is_empty()).then_some(node),
            host_arch: otel_arch(std::env::consts::ARCH).to_owned(),
        }
    }
}

fn string(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(v1::any_value::Value::StringValue(s.into())),
    }
}

fn put(list: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    if !list.iter().any(|kv| kv.key == key) {
        list.push(KeyValue {
            key: key.to_owned(),
            value: Some(value),
        });
    }
}

/// Builds the description: configured attributes win over detected ones;
/// `service.instance.id` is the instance uid unless configured.
pub fn build(
    settings: &DescriptionSettings,
    detected: &Detected,
    instance_uid: &str,
) -> v1::AgentDescription {
    let mut identifying: Vec<KeyValue> = settings
        .identifying
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(v.clone()),
        })
        .collect();
    put(
        &mut identifying,
        "service.instance.id",
        string(instance_uid),
    );
    let mut non_identifying: Vec<KeyValue> = settings
        .non_identifying
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(v.clone()),
        })
        .collect();
    put(&mut non_identifying, "os.type", string(&detected.os_type));
    if let Some(v) = &detected.os_version {
        put(&mut non_identifying, "os.version", string(v));
    }
    if let Some(v) = &detected.os_description {
        put(&mut non_identifying, "os.description", string(v));
    }
    if let Some(v) = &detected.host_name {
        put(&mut non_identifying, "host.name", string(v));
    }
    put(
        &mut non_identifying,
        "host.arch",
        string(&detected.host_arch),
    );
    v1::AgentDescription {
        identifying_attributes: identifying,
        non_identifying_attributes: non_identifying,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a str> {
        list.iter().find(|kv| kv.key == key).and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                v1::any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            }
        })
    }

    #[test]
    fn os_release_parsing() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n";
        assert_eq!(os_release_value(text, "VERSION_ID").as_deref(), Some("13"));
        assert_eq!(os_release_value(text, "ID").as_deref(), Some("debian"));
        assert_eq!(
            os_release_value(text, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        assert_eq!(os_release_value(text, "VERSION"), None);
    }

    #[test]
    fn detected_attributes_added_unless_configured_desc_1() {
        let settings = DescriptionSettings {
            identifying: vec![("service.name".into(), string("collectd"))],
            non_identifying: vec![("host.name".into(), string("configured-host"))],
        };
        let detected = Detected {
            os_type: "linux".into(),
            os_version: Some("13".into()),
            os_description: None,
            host_name: Some("detected-host".into()),
            host_arch: "amd64".into(),
        };
        let d = build(&settings, &detected, "0192-uid");
        assert_eq!(
            get(&d.identifying_attributes, "service.name"),
            Some("collectd")
        );
        assert_eq!(
            get(&d.identifying_attributes, "service.instance.id"),
            Some("0192-uid")
        );
        assert_eq!(get(&d.non_identifying_attributes, "os.type"), Some("linux"));
        assert_eq!(get(&d.non_identifying_attributes, "os.version"), Some("13"));
        assert_eq!(
            get(&d.non_identifying_attributes, "host.name"),
            Some("configured-host")
        );
        assert_eq!(
            get(&d.non_identifying_attributes, "host.arch"),
            Some("amd64")
        );
    }

    #[test]
    fn detection_on_this_host_finds_os_and_arch() {
        let d = Detected::detect();
        assert_eq!(d.os_type, std::env::consts::OS);
        assert!(!d.host_arch.is_empty());
        assert!(d.os_version.is_some());
    }
}
