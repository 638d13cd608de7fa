//! Just enough of the protobuf wire format to read an ONNX model and write a changed copy.
//!
//! An ONNX file is one protobuf message (`ModelProto`). The wake word's streaming rewrite
//! (`wake::streaming`) and the Piper decoder split (`tts::split`) read a model's nodes and
//! initializers and write new graphs from them. Fields are kept as raw wire bytes, so everything
//! that is not changed is copied exactly, including fields this module knows nothing about.

/// One field as it was on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: a string, bytes, a nested message or a packed repeated scalar.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// A field number and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub(crate) number: u32,
    pub(crate) value: Value<'a>,
}

/// Splits a message into its fields, in wire order.
///
/// # Errors
/// Truncated or malformed input.
pub(crate) fn parse(mut buf: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let number = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        let value = match key & 7 {
            0 => Value::Varint(read_varint(&mut buf)?),
            1 => {
                let (bytes, rest) = buf.split_first_chunk::<8>().ok_or("truncated fixed64")?;
                buf = rest;
                Value::Fixed64(u64::from_le_bytes(*bytes))
            }
            2 => {
                let len = usize::try_from(read_varint(&mut buf)?).map_err(|_| "length overflow")?;
                if len > buf.len() {
                    return Err("truncated length-delimited field".into());
                }
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                Value::Bytes(bytes)
            }
            5 => {
                let (bytes, rest) = buf.split_first_chunk::<4>().ok_or("truncated fixed32")?;
                buf = rest;
                Value::Fixed32(u32::from_le_bytes(*bytes))
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        fields.push(Field { number, value });
    }
    Ok(fields)
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

/// The first field `number` that is a string.
pub(crate) fn string<'a>(fields: &[Field<'a>], number: u32) -> Option<&'a str> {
    strings(fields, number).next()
}

/// Every field `number` that is a string (repeated string fields).
pub(crate) fn strings<'a, 'f>(
    fields: &'f [Field<'a>],
    number: u32,
) -> impl Iterator<Item = &'a str> + 'f {
    fields.iter().filter_map(move |field| match field.value {
        Value::Bytes(bytes) if field.number == number => std::str::from_utf8(bytes).ok(),
        _ => None,
    })
}

/// Every field `number` that holds bytes (nested messages, repeated).
pub(crate) fn messages<'a, 'f>(
    fields: &'f [Field<'a>],
    number: u32,
) -> impl Iterator<Item = &'a [u8]> + 'f {
    fields.iter().filter_map(move |field| match field.value {
        Value::Bytes(bytes) if field.number == number => Some(bytes),
        _ => None,
    })
}

/// A repeated integer field, packed or not (proto2 files write them unpacked), as `i64`.
///
/// # Errors
/// A malformed packed field.
pub(crate) fn ints(fields: &[Field<'_>], number: u32) -> Result<Vec<i64>, String> {
    let mut out = Vec::new();
    for field in fields.iter().filter(|f| f.number == number) {
        match field.value {
            Value::Varint(v) => out.push(v as i64),
            Value::Bytes(mut packed) => {
                while !packed.is_empty() {
                    out.push(read_varint(&mut packed)? as i64);
                }
            }
            _ => return Err(format!("field {number} is not an integer")),
        }
    }
    Ok(out)
}

/// The last value of an integer field (protobuf's rule for a repeated non-repeated field).
pub(crate) fn int(fields: &[Field<'_>], number: u32) -> Option<i64> {
    fields.iter().rev().find_map(|field| match field.value {
        Value::Varint(v) if field.number == number => Some(v as i64),
        _ => None,
    })
}

/// Builds a message field by field.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The encoded message.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn key(&mut self, number: u32, wire: u8) {
        put_varint(&mut self.buf, (u64::from(number) << 3) | u64::from(wire));
    }

    /// Copies a field as it was read.
    pub(crate) fn field(&mut self, field: &Field<'_>) -> &mut Self {
        match field.value {
            Value::Varint(v) => self.varint(field.number, v),
            Value::Fixed64(v) => {
                self.key(field.number, 1);
                self.buf.extend_from_slice(&v.to_le_bytes());
                self
            }
            Value::Bytes(bytes) => self.bytes(field.number, bytes),
            Value::Fixed32(v) => {
                self.key(field.number, 5);
                self.buf.extend_from_slice(&v.to_le_bytes());
                self
            }
        }
    }

    /// An integer field (negative values as ten-byte varints, as protobuf writes `int64`).
    pub(crate) fn varint(&mut self, number: u32, value: u64) -> &mut Self {
        self.key(number, 0);
        put_varint(&mut self.buf, value);
        self
    }

    /// A signed integer field.
    pub(crate) fn int(&mut self, number: u32, value: i64) -> &mut Self {
        self.varint(number, value as u64)
    }

    /// A string, bytes or nested message field.
    pub(crate) fn bytes(&mut self, number: u32, bytes: &[u8]) -> &mut Self {
        self.key(number, 2);
        put_varint(&mut self.buf, bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
        self
    }

    /// The key and length of a length-delimited field whose `len` bytes the caller writes next
    /// (to write a large message without copying it).
    pub(crate) fn length_prefix(&mut self, number: u32, len: usize) -> &mut Self {
        self.key(number, 2);
        put_varint(&mut self.buf, len as u64);
        self
    }

    /// A string field.
    pub(crate) fn string(&mut self, number: u32, text: &str) -> &mut Self {
        self.bytes(number, text.as_bytes())
    }
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_byte_for_byte() {
        let mut w = Writer::new();
        w.varint(1, 300)
            .int(2, -2)
            .string(3, "Conv")
            .bytes(4, &[1, 2, 3]);
        w.field(&Field {
            number: 5,
            value: Value::Fixed32(0x3f80_0000),
        });
        w.field(&Field {
            number: 6,
            value: Value::Fixed64(7),
        });
        let bytes = w.finish();
        let fields = parse(&bytes).unwrap();
        assert_eq!(fields.len(), 6);
        assert_eq!(int(&fields, 1), Some(300));
        assert_eq!(int(&fields, 2), Some(-2));
        assert_eq!(string(&fields, 3), Some("Conv"));
        let mut again = Writer::new();
        for field in &fields {
            again.field(field);
        }
        assert_eq!(again.finish(), bytes);
    }

    #[test]
    fn repeated_ints_are_read_packed_and_unpacked() {
        let mut w = Writer::new();
        w.int(8, 3).int(8, -1);
        let mut packed = Vec::new();
        put_varint(&mut packed, 5);
        put_varint(&mut packed, 6);
        w.bytes(8, &packed);
        let bytes = w.finish();
        assert_eq!(ints(&parse(&bytes).unwrap(), 8).unwrap(), vec![3, -1, 5, 6]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut w = Writer::new();
        w.string(1, "hello");
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let _ = parse(&bytes[..cut]);
        }
        assert!(parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse(&[0xff; 11]).is_err());
        assert!(parse(&[0x0b]).is_err(), "wire type 3 (groups) is refused");
    }
}
