//! The OpAMP WebSocket message format (WS-2..WS-7).
//!
//! One WebSocket binary message carries one protobuf message, preceded by a header:
//!
//! ```text
//! +-----------------------------+----------------------------------------+
//! | header: varint, must be 0   | data: AgentToServer or ServerToAgent   |
//! | (on the wire: one byte 0x00)| (0 or more bytes, up to the message end)|
//! +-----------------------------+----------------------------------------+
//! ```
//!
//! Encoding always writes the single byte `0x00` (WS-3). Decoding:
//!
//! - a header that decodes to 0 (in any varint length) is skipped and the rest is the
//!   protobuf data (WS-5); an empty remainder is a valid empty message (WS-6);
//! - a header of 1 to 7 cannot start a protobuf message (field number 0), so it is a
//!   non-zero header and the message is malformed (WS-4): [`Error::NonZeroHeader`];
//! - a first varint of 8 or more is what a protobuf tag looks like: such a message is a
//!   legacy header-less frame from a pre-2023 peer and is decoded whole (WS-7). If it is
//!   not valid protobuf either, the error is [`Error::Protobuf`];
//! - a message that ends inside its varint is [`Error::TruncatedHeader`]; a varint longer
//!   than 10 bytes is [`Error::InvalidHeader`].
//!
//! Size limits cover header plus data (WSL-1); receivers check before decoding.

use prost::Message;

use crate::{Error, Limits};

/// The header every OpAMP WebSocket message starts with (varint 0).
pub const HEADER: u8 = 0x00;

/// Encodes `msg` as a WebSocket message: `0x00` followed by the protobuf bytes.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + msg.encoded_len());
    buf.push(HEADER);
    // Encoding into a Vec only fails when the buffer cannot grow, which Vec always can.
    let _ = msg.encode(&mut buf);
    buf
}

/// Like [`encode`], but refuses to produce a message over the limit (WSL-5, WSL-6):
/// the caller must not send it and should record the discard.
pub fn encode_checked<M: Message>(msg: &M, limits: Limits) -> Result<Vec<u8>, Error> {
    limits.check_outgoing(1 + msg.encoded_len())?;
    Ok(encode(msg))
}

/// Returns the protobuf data of a WebSocket message, after validating its header.
///
/// See the [module documentation](self) for the exact rules.
pub fn payload(message: &[u8]) -> Result<&[u8], Error> {
    let Some(&first) = message.first() else {
        // Zero bytes: a header-less empty message. Decodes as an empty protobuf (WS-6, WS-7).
        return Ok(message);
    };
    if first == HEADER {
        return Ok(&message[1..]);
    }
    let (header, len) = read_varint(message)?;
    if header == 0 {
        // A non-minimal encoding of 0 (e.g. 0x80 0x00) is still header 0.
        return Ok(&message[len..]);
    }
    if header < 8 {
        return Err(Error::NonZeroHeader(header));
    }
    // Looks like a protobuf tag: a legacy header-less frame (WS-7).
    Ok(message)
}

/// Decodes a WebSocket message into a protobuf message, enforcing `limits` on the whole
/// message (header plus data) first (WSL-2, WSL-4).
pub fn decode<M: Message + Default>(message: &[u8], limits: Limits) -> Result<M, Error> {
    limits.check_incoming(message.len())?;
    let data = payload(message)?;
    Ok(M::decode(data)?)
}

/// Reads an unsigned LEB128 varint of at most 10 bytes; returns value and length.
fn read_varint(buf: &[u8]) -> Result<(u64, usize), Error> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if i == 10 {
            return Err(Error::InvalidHeader);
        }
        let low = u64::from(byte & 0x7F);
        if i == 9 && low > 1 {
            return Err(Error::InvalidHeader);
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 10 {
        Err(Error::InvalidHeader)
    } else {
        Err(Error::TruncatedHeader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{AgentToServer, ServerToAgent};

    fn msg() -> AgentToServer {
        AgentToServer {
            instance_uid: vec![1; 16],
            sequence_num: 3,
            capabilities: 1,
            ..Default::default()
        }
    }

    #[test]
    fn encode_writes_a_single_zero_header_ws_3() {
        let frame = encode(&msg());
        assert_eq!(frame[0], 0x00);
        assert_eq!(&frame[1..], msg().encode_to_vec().as_slice());
    }

    #[test]
    fn decode_round_trip_ws_2_ws_5() {
        let back: AgentToServer = decode(&encode(&msg()), Limits::default()).unwrap();
        assert_eq!(back, msg());
    }

    #[test]
    fn header_only_is_an_empty_message_ws_6() {
        let m: ServerToAgent = decode(&[0x00], Limits::default()).unwrap();
        assert_eq!(m, ServerToAgent::default());
        let m: ServerToAgent = decode(&[], Limits::default()).unwrap();
        assert_eq!(m, ServerToAgent::default());
    }

    #[test]
    fn non_zero_header_is_malformed_ws_4() {
        for header in 1u8..8 {
            let mut frame = vec![header];
            frame.extend(msg().encode_to_vec());
            let err = decode::<AgentToServer>(&frame, Limits::default()).unwrap_err();
            assert!(
                matches!(err, Error::NonZeroHeader(h) if h == u64::from(header)),
                "{err}"
            );
        }
        // A multi-byte varint header of 5 (non-minimal).
        let err = payload(&[0x85, 0x00, 0x0a]).unwrap_err();
        assert!(matches!(err, Error::NonZeroHeader(5)), "{err}");
    }

    #[test]
    fn non_minimal_zero_header_is_accepted() {
        let mut frame = vec![0x80, 0x80, 0x00];
        frame.extend(msg().encode_to_vec());
        let back: AgentToServer = decode(&frame, Limits::default()).unwrap();
        assert_eq!(back, msg());
    }

    #[test]
    fn legacy_headerless_frames_are_accepted_ws_7() {
        let frame = msg().encode_to_vec();
        assert_ne!(frame[0], 0);
        let back: AgentToServer = decode(&frame, Limits::default()).unwrap();
        assert_eq!(back, msg());
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        assert!(matches!(payload(&[0x80]), Err(Error::TruncatedHeader)));
        assert!(matches!(
            payload(&[0xFF, 0xFF, 0xFF]),
            Err(Error::TruncatedHeader)
        ));
        assert!(matches!(payload(&[0x80; 11]), Err(Error::InvalidHeader)));
        let mut overflow = vec![0xFF; 9];
        overflow.push(0x7F);
        assert!(matches!(payload(&overflow), Err(Error::InvalidHeader)));
    }

    #[test]
    fn garbage_after_the_header_is_a_protobuf_error() {
        let err = decode::<AgentToServer>(&[0x00, 0x0a, 0xFF], Limits::default()).unwrap_err();
        assert!(matches!(err, Error::Protobuf(_)), "{err}");
        // Legacy-looking garbage too.
        let err = decode::<AgentToServer>(&[0x0a, 0x05, 0x01], Limits::default()).unwrap_err();
        assert!(matches!(err, Error::Protobuf(_)), "{err}");
    }

    #[test]
    fn limits_cover_header_plus_data_wsl_1() {
        let frame = encode(&msg());
        let exact = Limits::new(frame.len());
        assert!(decode::<AgentToServer>(&frame, exact).is_ok());
        let err = decode::<AgentToServer>(&frame, Limits::new(frame.len() - 1)).unwrap_err();
        assert!(err.is_too_large());
        assert!(encode_checked(&msg(), exact).is_ok());
        assert!(matches!(
            encode_checked(&msg(), Limits::new(frame.len() - 1)),
            Err(Error::OutgoingTooLarge { .. })
        ));
    }
}
