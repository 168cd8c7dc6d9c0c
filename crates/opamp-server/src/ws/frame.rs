//! A sans-IO RFC 6455 codec for the server side of a WebSocket connection.
//!
//! The [`Decoder`] takes bytes as they arrive, in pieces of any size, and turns them into
//! [`Event`]s. It keeps no read buffer: a frame header is collected in a 14-byte array, a
//! data message's payload is unmasked straight into a `Vec` that exists only while that
//! message is in flight (it is handed over, capacity and all, when the message completes),
//! and a control frame's payload likewise. An idle connection's decoder therefore owns no
//! heap memory at all.
//!
//! Rules enforced (RFC 6455 §5):
//! - every client frame must be masked (§5.1), reserved bits must be clear (no extension is
//!   negotiated, §5.2), the opcode must be known (§5.2): otherwise a protocol fault (1002);
//! - control frames have at most 125 bytes of payload and are never fragmented (§5.5);
//! - fragmentation: a continuation frame needs a message in progress, a new data frame must
//!   not start while one is (§5.4); control frames may come between fragments;
//! - a data message (all its fragments together) over the limit is a [`Fault::TooBig`]
//!   (1009, WSL-3): its payload is skipped, not buffered, and decoding goes on so that the
//!   peer's close frame can still be seen;
//! - text messages are reported as [`Event::Text`] without their payload (OpAMP is binary,
//!   WS-1); their size counts towards the limit;
//! - a close frame has no payload or a valid status code and a UTF-8 reason (§5.5.1, §7.4):
//!   otherwise 1002, or 1007 for the reason. Nothing after a close frame is decoded.
//!
//! The encoding side writes unmasked server frames (§5.1) with FIN set: [`header`] for a
//! message whose payload the caller already has, [`close_payload`] for a close frame.

use std::collections::VecDeque;

/// Frame opcodes (RFC 6455 §5.2).
pub(crate) mod opcode {
    pub(crate) const CONTINUATION: u8 = 0x0;
    pub(crate) const TEXT: u8 = 0x1;
    pub(crate) const BINARY: u8 = 0x2;
    pub(crate) const CLOSE: u8 = 0x8;
    pub(crate) const PING: u8 = 0x9;
    pub(crate) const PONG: u8 = 0xA;
}

/// The largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// At most this much is reserved up front for a message, whatever length its header
/// claims: a peer announcing a large frame and sending nothing must not cost memory.
const MAX_PREALLOCATION: usize = 64 * 1024;

/// Something decoded from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A complete binary message (all fragments joined).
    Binary(Vec<u8>),
    /// A complete text message; its payload is not kept (WS-1).
    Text,
    /// A ping with its payload, to be answered with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The peer's close frame, with its status code when it gave one.
    Close(Option<u16>),
    /// The peer broke the protocol or the size limit: the connection must be closed with
    /// [`Fault::close_code`].
    Fault(Fault),
}

/// Why the peer's input cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A frame breaks RFC 6455 (close code 1002).
    Protocol(&'static str),
    /// A close frame's reason is not UTF-8 (close code 1007).
    InvalidUtf8,
    /// A message is over the size limit (close code 1009, WSL-3).
    TooBig,
}

impl Fault {
    /// The close code to send (RFC 6455 §7.4.1).
    pub(crate) fn close_code(self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::InvalidUtf8 => 1007,
            Self::TooBig => 1009,
        }
    }

    /// The close reason to send.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Protocol(reason) => reason,
            Self::InvalidUtf8 => "close reason is not UTF-8",
            Self::TooBig => "message too big",
        }
    }
}

/// Where the payload of the frame being read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Appended to the binary message in progress.
    Message,
    /// Counted, not kept (text, or a message over the limit).
    Discard,
    /// The control frame buffer.
    Control,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: u8,
    fin: bool,
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes read so far, modulo 4: the phase of the mask.
    phase: usize,
    sink: Sink,
}

/// The data message in progress, across fragments.
#[derive(Debug, Default)]
enum Message {
    #[default]
    None,
    Binary(Vec<u8>),
    Text {
        len: usize,
    },
    /// Over the limit: the rest of its fragments are skipped.
    Skipped,
}

/// The decoding side of a server's WebSocket connection (see the module docs).
#[derive(Debug)]
pub(crate) struct Decoder {
    max_message: usize,
    header: [u8; 14],
    header_len: u8,
    frame: Option<Frame>,
    message: Message,
    control: Vec<u8>,
    /// After a protocol fault or the peer's close frame: nothing more is decoded.
    done: bool,
}

impl Decoder {
    /// A decoder accepting data messages of at most `max_message` bytes.
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            max_message,
            header: [0; 14],
            header_len: 0,
            frame: None,
            message: Message::None,
            control: Vec::new(),
            done: false,
        }
    }

    /// Whether a message or frame is partly received (a read in the middle of one).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.header_len == 0 && self.frame.is_none() && matches!(self.message, Message::None)
    }

    /// Heap memory the decoder holds right now.
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        let message = match &self.message {
            Message::Binary(data) => data.capacity(),
            _ => 0,
        };
        message + self.control.capacity()
    }

    /// Decodes all of `input`, appending complete events to `events` in order. A
    /// [`Event::Fault`] is followed by nothing after a protocol fault; after
    /// [`Fault::TooBig`] decoding goes on (the oversized message is skipped).
    pub(crate) fn decode(&mut self, mut input: &[u8], events: &mut VecDeque<Event>) {
        while !input.is_empty() && !self.done {
            match self.frame {
                None => {
                    let used = self.read_header(input, events);
                    input = &input[used..];
                }
                Some(ref mut frame) => {
                    let take = usize::try_from(frame.remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let (chunk, rest) = input.split_at(take);
                    input = rest;
                    let sink = match frame.sink {
                        Sink::Message => match &mut self.message {
                            Message::Binary(data) => Some(data),
                            _ => None,
                        },
                        Sink::Control => Some(&mut self.control),
                        Sink::Discard => None,
                    };
                    if let Some(out) = sink {
                        let start = out.len();
                        out.extend_from_slice(chunk);
                        unmask(&mut out[start..], frame.mask, frame.phase);
                    }
                    frame.phase = (frame.phase + take) % 4;
                    frame.remaining -= take as u64;
                    if frame.remaining == 0 {
                        let frame = *frame;
                        self.frame = None;
                        self.finish(frame, events);
                    }
                }
            }
        }
    }

    /// Collects header bytes; once the header is complete, validates it and starts the
    /// frame. Returns how many bytes of `input` were used.
    fn read_header(&mut self, input: &[u8], events: &mut VecDeque<Event>) -> usize {
        let mut used = 0;
        loop {
            let have = usize::from(self.header_len);
            let need = header_len(&self.header[..have]);
            if have == need {
                break;
            }
            let Some(&byte) = input.get(used) else {
                return used;
            };
            self.header[have] = byte;
            self.header_len += 1;
            used += 1;
        }
        let len = usize::from(self.header_len);
        self.header_len = 0;
        let header = self.header;
        if let Err(fault) = self.start_frame(&header[..len]) {
            self.fault(fault, events);
        }
        if self.frame.is_some_and(|f| f.remaining == 0) {
            // An empty frame is complete as soon as its header is.
            if let Some(frame) = self.frame.take() {
                self.finish(frame, events);
            }
        }
        used
    }

    /// Validates a complete header and sets up the frame that follows.
    fn start_frame(&mut self, h: &[u8]) -> Result<(), Fault> {
        let fin = h[0] & 0x80 != 0;
        if h[0] & 0x70 != 0 {
            return Err(Fault::Protocol("reserved bits set"));
        }
        let opcode = h[0] & 0x0F;
        if h[1] & 0x80 == 0 {
            return Err(Fault::Protocol("unmasked client frame"));
        }
        let (len, mask_at) = match h[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return Err(Fault::Protocol("frame length over 2^63"));
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&h[mask_at..mask_at + 4]);
        let mut too_big = false;
        let sink = match opcode {
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                if !fin {
                    return Err(Fault::Protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(Fault::Protocol("control frame over 125 bytes"));
                }
                self.control = Vec::with_capacity(len as usize);
                Sink::Control
            }
            opcode::TEXT | opcode::BINARY | opcode::CONTINUATION => {
                match self.start_data(opcode, len) {
                    Ok(sink) => sink,
                    Err(Fault::TooBig) => {
                        too_big = true;
                        Sink::Discard
                    }
                    Err(fault) => return Err(fault),
                }
            }
            _ => return Err(Fault::Protocol("unknown opcode")),
        };
        self.frame = Some(Frame {
            opcode,
            fin,
            remaining: len,
            mask,
            phase: 0,
            sink,
        });
        if too_big { Err(Fault::TooBig) } else { Ok(()) }
    }

    /// Fragmentation and size rules for a data frame of `len` bytes.
    fn start_data(&mut self, opcode: u8, len: u64) -> Result<Sink, Fault> {
        let in_progress = !matches!(self.message, Message::None);
        if opcode == opcode::CONTINUATION && !in_progress {
            return Err(Fault::Protocol("continuation frame without a message"));
        }
        if opcode != opcode::CONTINUATION && in_progress {
            return Err(Fault::Protocol("new message before the last one ended"));
        }
        let so_far = match &self.message {
            Message::Binary(data) => data.len(),
            Message::Text { len } => *len,
            Message::None | Message::Skipped => 0,
        };
        let total = usize::try_from(len)
            .ok()
            .and_then(|len| len.checked_add(so_far));
        let fits = total.is_some_and(|total| total <= self.max_message);
        match (&mut self.message, fits) {
            (Message::Skipped, _) => Ok(Sink::Discard),
            (_, false) => {
                self.message = Message::Skipped;
                Err(Fault::TooBig)
            }
            (Message::None, true) => {
                let reserve = (len as usize).min(MAX_PREALLOCATION);
                if opcode == opcode::BINARY {
                    self.message = Message::Binary(Vec::with_capacity(reserve));
                    Ok(Sink::Message)
                } else {
                    self.message = Message::Text { len: len as usize };
                    Ok(Sink::Discard)
                }
            }
            (Message::Binary(data), true) => {
                data.reserve((len as usize).min(MAX_PREALLOCATION));
                Ok(Sink::Message)
            }
            (Message::Text { len: so_far }, true) => {
                *so_far += len as usize;
                Ok(Sink::Discard)
            }
        }
    }

    /// A fault: reported once. A message over the limit is skipped, frame by frame; after
    /// anything else the stream cannot be trusted and nothing more is decoded.
    fn fault(&mut self, fault: Fault, events: &mut VecDeque<Event>) {
        events.push_back(Event::Fault(fault));
        if fault == Fault::TooBig {
            // start_data marked the message skipped; the frame's payload is discarded.
            return;
        }
        self.done = true;
        self.frame = None;
        self.message = Message::None;
        self.control = Vec::new();
    }

    /// A frame's payload is complete.
    fn finish(&mut self, frame: Frame, events: &mut VecDeque<Event>) {
        match frame.opcode {
            opcode::CLOSE => {
                let payload = std::mem::take(&mut self.control);
                match parse_close(&payload) {
                    Ok(code) => {
                        events.push_back(Event::Close(code));
                        self.done = true;
                        self.message = Message::None;
                    }
                    Err(fault) => self.fault(fault, events),
                }
            }
            opcode::PING => events.push_back(Event::Ping(std::mem::take(&mut self.control))),
            opcode::PONG => {
                self.control = Vec::new();
                events.push_back(Event::Pong);
            }
            _ if frame.fin => match std::mem::take(&mut self.message) {
                Message::Binary(data) => events.push_back(Event::Binary(data)),
                Message::Text { .. } => events.push_back(Event::Text),
                Message::None | Message::Skipped => {}
            },
            _ => {}
        }
    }
}

/// How long a frame header is, judging by the bytes seen so far (at least 2).
fn header_len(seen: &[u8]) -> usize {
    let Some(&second) = seen.get(1) else {
        return 2;
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    match second & 0x7F {
        126 => 4 + mask,
        127 => 10 + mask,
        _ => 2 + mask,
    }
}

fn unmask(data: &mut [u8], mask: [u8; 4], phase: usize) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= mask[(phase + i) % 4];
    }
}

/// The status code of a close frame's payload (RFC 6455 §5.5.1, §7.4).
fn parse_close(payload: &[u8]) -> Result<Option<u16>, Fault> {
    match payload {
        [] => Ok(None),
        [_] => Err(Fault::Protocol("close frame with a 1-byte payload")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(Fault::Protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(Fault::InvalidUtf8);
            }
            Ok(Some(code))
        }
    }
}

/// The header of an unmasked server frame with FIN set carrying `len` bytes, and how many
/// bytes of the array it uses.
pub(crate) fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | (opcode & 0x0F);
    let used = if len < 126 {
        h[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, used)
}

/// The payload of a close frame: the code and as much of `reason` as fits in a control
/// frame (cut at a character boundary).
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2): base64 of the SHA-1
/// of the key followed by the protocol's GUID.
pub(crate) fn accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    base64(ctx.finish().as_ref())
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 0x3F]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A masked client frame, as a client would send it (tests).
#[cfg(test)]
pub(crate) fn client_frame(fin: bool, op: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | op];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Vec<Event> {
        let mut events = VecDeque::new();
        decoder.decode(input, &mut events);
        events.into()
    }

    fn decode_in_pieces(input: &[u8], cuts: &[usize], max: usize) -> Vec<Event> {
        let mut decoder = Decoder::new(max);
        let mut events = VecDeque::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            decoder.decode(&input[start..cut], &mut events);
            start = cut;
        }
        events.into()
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_pads_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn masked_binary_message_decodes_and_frees_its_buffer() {
        let mut d = Decoder::new(1024);
        let events = decode_all(&mut d, &client_frame(true, opcode::BINARY, b"Hello", MASK));
        assert_eq!(events, vec![Event::Binary(b"Hello".to_vec())]);
        assert!(d.is_idle());
        assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn rfc_6455_section_5_7_masked_hello() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut d = Decoder::new(1024);
        assert_eq!(decode_all(&mut d, &frame), vec![Event::Text]);
    }

    #[test]
    fn fragments_are_joined_with_control_frames_between() {
        let mut input = client_frame(false, opcode::BINARY, b"Hel", MASK);
        input.extend(client_frame(true, opcode::PING, b"p", MASK));
        input.extend(client_frame(false, opcode::CONTINUATION, b"", MASK));
        input.extend(client_frame(
            true,
            opcode::CONTINUATION,
            b"lo",
            [1, 2, 3, 4],
        ));
        let mut d = Decoder::new(1024);
        assert_eq!(
            decode_all(&mut d, &input),
            vec![Event::Ping(b"p".to_vec()), Event::Binary(b"Hello".to_vec())]
        );
        assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn empty_binary_message_ws_6() {
        let mut d = Decoder::new(1024);
        let events = decode_all(&mut d, &client_frame(true, opcode::BINARY, b"", MASK));
        assert_eq!(events, vec![Event::Binary(Vec::new())]);
    }

    #[test]
    fn unmasked_frame_is_a_protocol_fault_and_ends_decoding() {
        let mut input = vec![0x82, 0x01, 0xAA];
        input.extend(client_frame(true, opcode::BINARY, b"x", MASK));
        let mut d = Decoder::new(1024);
        assert_eq!(
            decode_all(&mut d, &input),
            vec![Event::Fault(Fault::Protocol("unmasked client frame"))]
        );
        assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn protocol_faults_close_with_1002() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                {
                    let mut f = client_frame(true, opcode::BINARY, b"x", MASK);
                    f[0] |= 0x40;
                    f
                },
                "reserved bits set",
            ),
            (client_frame(true, 0x3, b"x", MASK), "unknown opcode"),
            (
                client_frame(false, opcode::PING, b"x", MASK),
                "fragmented control frame",
            ),
            (
                client_frame(true, opcode::PING, &[0; 126], MASK),
                "control frame over 125 bytes",
            ),
            (
                client_frame(true, opcode::CONTINUATION, b"x", MASK),
                "continuation frame without a message",
            ),
            (
                [
                    client_frame(false, opcode::BINARY, b"x", MASK),
                    client_frame(true, opcode::BINARY, b"y", MASK),
                ]
                .concat(),
                "new message before the last one ended",
            ),
            (
                client_frame(true, opcode::CLOSE, &[3], MASK),
                "close frame with a 1-byte payload",
            ),
            (
                client_frame(true, opcode::CLOSE, &1005u16.to_be_bytes(), MASK),
                "invalid close code",
            ),
        ];
        for (input, reason) in cases {
            let mut d = Decoder::new(1024);
            let events = decode_all(&mut d, &input);
            assert_eq!(
                events,
                vec![Event::Fault(Fault::Protocol(reason))],
                "{reason}"
            );
            assert_eq!(Fault::Protocol(reason).close_code(), 1002);
        }
    }

    #[test]
    fn close_frame_codes_and_reason() {
        let mut d = Decoder::new(1024);
        let mut input = client_frame(true, opcode::CLOSE, &close_payload(1001, "bye"), MASK);
        input.extend(client_frame(true, opcode::BINARY, b"after close", MASK));
        assert_eq!(decode_all(&mut d, &input), vec![Event::Close(Some(1001))]);
        let mut d = Decoder::new(1024);
        let empty = client_frame(true, opcode::CLOSE, b"", MASK);
        assert_eq!(decode_all(&mut d, &empty), vec![Event::Close(None)]);
        let mut d = Decoder::new(1024);
        let bad = client_frame(true, opcode::CLOSE, &[0x03, 0xE8, 0xFF, 0xFE], MASK);
        assert_eq!(
            decode_all(&mut d, &bad),
            vec![Event::Fault(Fault::InvalidUtf8)]
        );
        assert_eq!(Fault::InvalidUtf8.close_code(), 1007);
    }

    #[test]
    fn oversized_message_is_skipped_and_decoding_goes_on_wsl_3() {
        let mut input = client_frame(false, opcode::BINARY, &[1; 8], MASK);
        input.extend(client_frame(true, opcode::CONTINUATION, &[2; 8], MASK));
        input.extend(client_frame(true, opcode::BINARY, &[3; 4], MASK));
        input.extend(client_frame(
            true,
            opcode::CLOSE,
            &close_payload(1000, ""),
            MASK,
        ));
        let mut d = Decoder::new(10);
        assert_eq!(
            decode_all(&mut d, &input),
            vec![
                Event::Fault(Fault::TooBig),
                Event::Binary(vec![3; 4]),
                Event::Close(Some(1000)),
            ]
        );
        assert_eq!(Fault::TooBig.close_code(), 1009);
    }

    #[test]
    fn text_counts_towards_the_limit_but_is_not_kept_ws_1() {
        let mut d = Decoder::new(4);
        let input = [
            client_frame(true, opcode::TEXT, b"abcd", MASK),
            client_frame(true, opcode::TEXT, b"abcde", MASK),
        ]
        .concat();
        assert_eq!(
            decode_all(&mut d, &input),
            vec![Event::Text, Event::Fault(Fault::TooBig)]
        );
        assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn huge_declared_length_does_not_preallocate() {
        let mut d = Decoder::new(usize::MAX);
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        header.extend_from_slice(&MASK);
        assert!(decode_all(&mut d, &header).is_empty());
        assert!(d.buffered_capacity() <= MAX_PREALLOCATION);
        let mut d = Decoder::new(usize::MAX);
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&u64::MAX.to_be_bytes());
        header.extend_from_slice(&MASK);
        assert_eq!(
            decode_all(&mut d, &header),
            vec![Event::Fault(Fault::Protocol("frame length over 2^63"))]
        );
    }

    #[test]
    fn server_headers_use_the_shortest_length() {
        assert_eq!(header(opcode::BINARY, 5).0[..2], [0x82, 5]);
        let (h, n) = header(opcode::BINARY, 300);
        assert_eq!(&h[..n], &[0x82, 126, 0x01, 0x2C]);
        let (h, n) = header(opcode::PING, 70_000);
        assert_eq!(&h[..n], &[0x89, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn close_payload_is_cut_to_fit_a_control_frame() {
        let long = "é".repeat(100);
        let payload = close_payload(1001, &long);
        assert!(payload.len() <= 125);
        assert_eq!(payload[..2], 1001u16.to_be_bytes());
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    /// Any valid stream of frames.
    fn arb_stream() -> impl Strategy<Value = Vec<(bool, u8, Vec<u8>, [u8; 4])>> {
        let frame = (
            prop_oneof![
                Just(opcode::BINARY),
                Just(opcode::TEXT),
                Just(opcode::PING),
                Just(opcode::PONG)
            ],
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<[u8; 4]>(),
            0usize..3,
        );
        proptest::collection::vec(frame, 0..12).prop_map(|frames| {
            let mut out = Vec::new();
            for (op, payload, mask, fragments) in frames {
                if op >= opcode::CLOSE {
                    let len = payload.len().min(125);
                    out.push((true, op, payload[..len].to_vec(), mask));
                    continue;
                }
                let parts = fragments + 1;
                let step = payload.len().div_ceil(parts).max(1);
                let chunks: Vec<&[u8]> = if payload.is_empty() {
                    vec![&[]]
                } else {
                    payload.chunks(step).collect()
                };
                let n = chunks.len();
                for (i, chunk) in chunks.into_iter().enumerate() {
                    let op = if i == 0 { op } else { opcode::CONTINUATION };
                    out.push((i + 1 == n, op, chunk.to_vec(), mask));
                }
            }
            out
        })
    }

    proptest! {
        #[test]
        fn any_split_of_a_valid_stream_decodes_identically(
            frames in arb_stream(),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let input: Vec<u8> = frames
                .iter()
                .flat_map(|(fin, op, payload, mask)| client_frame(*fin, *op, payload, *mask))
                .collect();
            let whole = decode_in_pieces(&input, &[], usize::MAX);
            let split = decode_in_pieces(&input, &cuts, usize::MAX);
            prop_assert_eq!(&whole, &split);
            let bytewise = {
                let mut d = Decoder::new(usize::MAX);
                let mut events = VecDeque::new();
                for b in &input {
                    d.decode(std::slice::from_ref(b), &mut events);
                }
                prop_assert!(d.is_idle());
                prop_assert_eq!(d.buffered_capacity(), 0);
                Vec::from(events)
            };
            prop_assert_eq!(&whole, &bytewise);
            // Every binary message comes out as sent.
            let mut expected = Vec::new();
            let mut current: Option<(u8, Vec<u8>)> = None;
            for (fin, op, payload, _) in &frames {
                match *op {
                    opcode::PING => expected.push(Event::Ping(payload.clone())),
                    opcode::PONG => expected.push(Event::Pong),
                    _ => {
                        let (kind, mut data) = current.take().unwrap_or((*op, Vec::new()));
                        data.extend_from_slice(payload);
                        if *fin {
                            expected.push(if kind == opcode::BINARY {
                                Event::Binary(data)
                            } else {
                                Event::Text
                            });
                        } else {
                            current = Some((kind, data));
                        }
                    }
                }
            }
            prop_assert_eq!(whole, expected);
        }

        #[test]
        fn garbage_never_panics_and_stays_bounded(
            input in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            max in 0usize..512,
        ) {
            let events = decode_in_pieces(&input, &cuts, max);
            // Nothing is decoded after a protocol fault or a close frame.
            if let Some(end) = events.iter().position(|e| {
                matches!(e, Event::Close(_) | Event::Fault(Fault::Protocol(_) | Fault::InvalidUtf8))
            }) {
                prop_assert_eq!(end + 1, events.len());
            }
            for event in &events {
                if let Event::Binary(data) = event {
                    prop_assert!(data.len() <= max);
                }
            }
        }
    }
}
