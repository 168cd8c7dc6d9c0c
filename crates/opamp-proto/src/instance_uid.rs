//! The agent instance identifier: exactly 16 bytes on the wire, a UUID in text.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// An agent instance uid (`AgentToServer.instance_uid`, `ServerToAgent.instance_uid`,
/// `AgentIdentification.new_instance_uid`).
///
/// The specification requires exactly 16 bytes and recommends a UUIDv7 (UID-3, UID-7).
/// Construction from bytes rejects any other length, so a value of this type is always
/// valid on the wire. `Display` writes the canonical lowercase hyphenated UUID string that
/// the `OpAMP-Instance-UID` HTTP header carries (HTTP-11); `FromStr` parses it back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceUid([u8; 16]);

impl InstanceUid {
    /// The length of an instance uid on the wire.
    pub const LEN: usize = 16;

    /// A fresh UUIDv7 from the system clock and the operating system's random source
    /// (UID-1). Protocol cores that must stay deterministic use
    /// [`InstanceUid::from_v7_parts`] instead.
    pub fn new_v7() -> Self {
        Self(*uuid::Uuid::now_v7().as_bytes())
    }

    /// A UUIDv7 built from a Unix time in milliseconds and 10 random bytes supplied by the
    /// caller (only the low 74 bits of randomness are used, as UUIDv7 prescribes).
    pub fn from_v7_parts(unix_millis: u64, random: [u8; 10]) -> Self {
        Self(
            *uuid::Builder::from_unix_timestamp_millis(unix_millis, &random)
                .into_uuid()
                .as_bytes(),
        )
    }

    /// Wraps 16 raw bytes.
    pub const fn from_array(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses wire bytes; anything but exactly 16 bytes is [`Error::InstanceUidLength`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 16]>::try_from(bytes)
            .map(Self)
            .map_err(|_| Error::InstanceUidLength { len: bytes.len() })
    }

    /// The 16 wire bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The 16 wire bytes as a `Vec`, ready for a prost `bytes` field.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// The UUID version nibble (7 for a UUIDv7). Other versions are valid uids too.
    pub fn uuid_version(&self) -> u8 {
        self.0[6] >> 4
    }
}

impl fmt::Display for InstanceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_bytes(self.0).hyphenated(), f)
    }
}

impl fmt::Debug for InstanceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceUid({self})")
    }
}

impl FromStr for InstanceUid {
    type Err = Error;

    /// Accepts the canonical hyphenated form (as sent in `OpAMP-Instance-UID`), and also
    /// the simple (32 hex digits), braced and `urn:uuid:` forms; case-insensitive.
    fn from_str(s: &str) -> Result<Self, Error> {
        uuid::Uuid::parse_str(s.trim())
            .map(|u| Self(*u.as_bytes()))
            .map_err(|e| Error::InstanceUidString {
                input: s.chars().take(64).collect(),
                reason: e.to_string(),
            })
    }
}

impl From<[u8; 16]> for InstanceUid {
    fn from(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl From<InstanceUid> for [u8; 16] {
    fn from(uid: InstanceUid) -> Self {
        uid.0
    }
}

impl From<InstanceUid> for Vec<u8> {
    fn from(uid: InstanceUid) -> Self {
        uid.0.to_vec()
    }
}

impl TryFrom<&[u8]> for InstanceUid {
    type Error = Error;
    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for InstanceUid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for InstanceUid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lengths_are_rejected_uid_3() {
        for len in [0usize, 1, 10, 15, 17, 26, 32] {
            let err = InstanceUid::from_bytes(&vec![7u8; len]).unwrap_err();
            assert!(
                matches!(err, Error::InstanceUidLength { len: l } if l == len),
                "{err}"
            );
            assert!(err.to_string().contains("16 bytes"));
        }
        assert!(InstanceUid::from_bytes(&[7u8; 16]).is_ok());
    }

    #[test]
    fn canonical_string_round_trips_http_11() {
        let s = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
        let uid: InstanceUid = s.parse().unwrap();
        assert_eq!(uid.to_string(), s);
        assert_eq!(uid.uuid_version(), 1);
        // Upper case and simple form parse to the same uid; Display is always canonical.
        let upper: InstanceUid = s.to_uppercase().parse().unwrap();
        assert_eq!(upper, uid);
        let simple: InstanceUid = s.replace('-', "").parse().unwrap();
        assert_eq!(simple, uid);
    }

    #[test]
    fn bad_strings_are_rejected_with_the_input() {
        for bad in [
            "",
            "not-a-uuid",
            "f81d4fae-7dec-11d0-a765",
            "g81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ] {
            let err = bad.parse::<InstanceUid>().unwrap_err();
            assert!(
                matches!(err, Error::InstanceUidString { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn v7_generation_is_uuid_v7_and_unique_uid_1() {
        let a = InstanceUid::new_v7();
        let b = InstanceUid::new_v7();
        assert_ne!(a, b);
        assert_eq!(a.uuid_version(), 7);
        assert_eq!(a.as_bytes()[8] & 0xC0, 0x80, "RFC 4122 variant");
    }

    #[test]
    fn v7_from_parts_is_deterministic_and_time_ordered() {
        let a = InstanceUid::from_v7_parts(1_700_000_000_000, [1; 10]);
        let b = InstanceUid::from_v7_parts(1_700_000_000_000, [1; 10]);
        let later = InstanceUid::from_v7_parts(1_700_000_000_001, [0; 10]);
        assert_eq!(a, b);
        assert!(later > a);
        assert_eq!(a.uuid_version(), 7);
    }
}
