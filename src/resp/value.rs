//! Session values across the doors (spec/RESP.md §4): a value written over
//! RESP that is valid UTF-8 is stored as a CBOR text string (the HTTP API
//! shows it as a JSON string), any other as a CBOR byte string; a read
//! answers a stored text or byte string byte for byte, and any other value
//! (written as JSON over HTTP, or by the Rust API) as its JSON text.

use redis_protocol::bytes::Bytes;
use serde::{Serialize, Serializer};

use crate::view::decode_value;

/// A value written over RESP, as it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written<'a> {
    /// Valid UTF-8: a CBOR text string.
    Text(&'a str),
    /// Anything else: a CBOR byte string.
    Binary(&'a [u8]),
}

impl<'a> Written<'a> {
    /// How the bytes of a RESP value are stored.
    pub fn of(bytes: &'a [u8]) -> Written<'a> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Written::Text(text),
            Err(_) => Written::Binary(bytes),
        }
    }
}

impl Serialize for Written<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Written::Text(text) => serializer.serialize_str(text),
            Written::Binary(bytes) => serializer.serialize_bytes(bytes),
        }
    }
}

/// The RESP form of a stored value (CBOR): the bytes of a text or byte
/// string, else the JSON text of the value. An error if it has no JSON form
/// either (a map with keys that are not strings, say), saying why.
pub fn read(stored: &[u8]) -> Result<Bytes, String> {
    match decode_value::<ciborium::Value>(stored).map_err(|error| error.to_string())? {
        ciborium::Value::Text(text) => Ok(Bytes::from(text)),
        ciborium::Value::Bytes(bytes) => Ok(Bytes::from(bytes)),
        other => {
            let json: serde_json::Value = other
                .deserialized()
                .map_err(|error| format!("the session value has no JSON form: {error}"))?;
            Ok(Bytes::from(json.to_string()))
        }
    }
}
