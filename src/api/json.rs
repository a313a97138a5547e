//! JSON plumbing for the hot path: an order-preserving view of one JSON object whose
//! values stay raw slices of the input, a writer that builds frames around such slices,
//! and the output styles of `ws_transport.json`.
//!
//! Nothing here builds a `serde_json::Value`: SDPs and plugin bodies are copied byte for
//! byte from input to output, never re-serialised.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One JSON object as an ordered list of `(key, raw value)` pairs borrowing the input.
#[derive(Debug, Default)]
pub struct RawObject<'a> {
    pub fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Parses `text`, which must hold exactly one JSON object.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The raw value of the first field called `key`.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(RawObject { fields })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Whether `text` nests arrays and objects deeper than `max` anywhere. One pass over the
/// bytes, strings skipped, no allocation: run it before parsing input from the network,
/// so that no later step (parse, relay, re-indent) ever sees pathological nesting.
/// Malformed text is not judged here; the parser rejects it.
pub fn too_deep(text: &[u8], max: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// What a raw JSON value is, judged from its first byte (serde_json already validated it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

pub fn kind(v: &RawValue) -> Kind {
    match v.get().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't') | Some(b'f') => Kind::Bool,
        Some(b'n') => Kind::Null,
        _ => Kind::Number,
    }
}

/// The string a raw JSON string holds, unescaped only when it has escapes.
pub fn as_str(v: &RawValue) -> Option<Cow<'_, str>> {
    if kind(v) != Kind::String {
        return None;
    }
    let s = v.get();
    let inner = &s[1..s.len() - 1];
    if inner.contains('\\') {
        serde_json::from_str::<String>(s).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// True for `{}`, `[]`, `""` and `null`: Janus treats those as "not given" in a few places.
pub fn is_empty(v: &RawValue) -> bool {
    let s = v.get().trim();
    matches!(kind(v), Kind::Null)
        || (s.len() >= 2 && matches!(kind(v), Kind::Object | Kind::Array | Kind::String) && {
            s[1..s.len() - 1].trim().is_empty()
        })
}

/// Builds one compact JSON object field by field.
///
/// ```
/// use janus_cloud::api::json::ObjectWriter;
/// let mut w = ObjectWriter::new();
/// w.str("janus", "ack");
/// w.u64("session_id", 7);
/// assert_eq!(w.finish(), br#"{"janus":"ack","session_id":7}"#);
/// ```
pub struct ObjectWriter {
    buf: Vec<u8>,
    first: bool,
}

impl Default for ObjectWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectWriter {
    pub fn new() -> Self {
        Self::with_capacity(128)
    }

    pub fn with_capacity(cap: usize) -> Self {
        let mut buf = Vec::with_capacity(cap);
        buf.push(b'{');
        ObjectWriter { buf, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        // Keys are our own literals or keys copied from valid input: write them escaped.
        write_json_str(&mut self.buf, key);
        self.buf.push(b':');
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_json_str(&mut self.buf, value);
        self
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(itoa_u64(value).as_bytes());
        self
    }

    pub fn i64(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(value.to_string().as_bytes());
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// Writes an already valid JSON value (a raw slice of some input, or our own JSON).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(json.as_bytes());
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

fn itoa_u64(v: u64) -> String {
    v.to_string()
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let needs_escape = s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
    if needs_escape {
        // serde_json cannot fail writing a str into a Vec.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

pub use crate::config::JsonStyle;

/// Output styles: the re-formatting itself (the setting is config's).
impl JsonStyle {
    /// Re-formats a JSON document (ours: valid, possibly with whitespace copied from
    /// raw slices) into this style, in one pass over the bytes: no parse, no allocation
    /// but the output. The result matches serde_json's pretty printer with a 3-space
    /// indent (`indented`) or `", "`/`": "` separators (`plain`).
    pub fn apply(self, json: Vec<u8>) -> Vec<u8> {
        match self {
            JsonStyle::Compact => json,
            JsonStyle::Indented => reformat(&json, true),
            JsonStyle::Plain => reformat(&json, false),
        }
    }
}

fn newline(out: &mut Vec<u8>, depth: usize) {
    out.push(b'\n');
    out.resize(out.len() + depth * 3, b' ');
}

/// Most bytes re-indenting may add beyond the input's own size, as a multiple of it plus a
/// constant: indentation grows with depth, so deep nesting of tiny values could multiply
/// the size. Past this the document is sent compact instead, keeping output linear.
const INDENT_GROWTH: usize = 8;
const INDENT_SLACK: usize = 64 * 1024;

fn reformat(input: &[u8], pretty: bool) -> Vec<u8> {
    let budget = input
        .len()
        .saturating_mul(INDENT_GROWTH)
        .saturating_add(INDENT_SLACK);
    let mut out = Vec::with_capacity(input.len() + input.len() / 2);
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        i += 1;
        if in_str {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b' ' | b'\n' | b'\r' | b'\t' => {}
            b'"' => {
                in_str = true;
                out.push(b);
            }
            b'{' | b'[' | b',' if out.len() > budget => return input.to_vec(),
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                let next = input[i..].iter().position(|c| !c.is_ascii_whitespace());
                if let Some(n) = next.filter(|&n| input[i + n] == close) {
                    // Empty container: stays `{}` / `[]`.
                    out.extend_from_slice(&[b, close]);
                    i += n + 1;
                } else {
                    out.push(b);
                    depth += 1;
                    if pretty {
                        newline(&mut out, depth);
                    }
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if pretty {
                    newline(&mut out, depth);
                }
                out.push(b);
            }
            b',' => {
                out.push(b',');
                if pretty {
                    newline(&mut out, depth);
                } else {
                    out.push(b' ');
                }
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
    }
    out
}

/// The serde_json formatter equivalent of the `plain` style (kept to check `reformat`).
#[cfg(test)]
struct PlainFormatter;

#[cfg(test)]
impl serde_json::ser::Formatter for PlainFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_object_keeps_order_and_raw_values() {
        let o = RawObject::parse(r#"{"b":1,"a":{"x":[1,2]},"s":"q\"x"}"#).unwrap();
        let keys: Vec<_> = o.fields.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["b", "a", "s"]);
        assert_eq!(o.get("a").unwrap().get(), r#"{"x":[1,2]}"#);
        assert_eq!(as_str(o.get("s").unwrap()).unwrap(), "q\"x");
        assert!(RawObject::parse("[1]").is_err());
    }

    #[test]
    fn kinds_and_emptiness() {
        let o = RawObject::parse(r#"{"a":{},"b":[ ],"c":"","d":null,"e":{"x":1},"f":3}"#).unwrap();
        for k in ["a", "b", "c", "d"] {
            assert!(is_empty(o.get(k).unwrap()), "{k}");
        }
        assert!(!is_empty(o.get("e").unwrap()));
        assert_eq!(kind(o.get("f").unwrap()), Kind::Number);
    }

    #[test]
    fn writer_escapes_strings() {
        let mut w = ObjectWriter::new();
        w.str("k", "a\"b\n").raw("r", "[1]").bool("t", true);
        assert_eq!(w.finish(), br#"{"k":"a\"b\n","r":[1],"t":true}"#);
    }

    #[test]
    fn depth_limit_skips_strings() {
        assert!(!too_deep(br#"{"a":[{"b":1}]}"#, 3));
        assert!(too_deep(br#"{"a":[{"b":[1]}]}"#, 3));
        // Brackets inside strings (escaped quotes too) do not count.
        assert!(!too_deep(br#"{"a":"[[[[\"[[[[","b":[]}"#, 2));
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        assert!(too_deep(deep.as_bytes(), 32));
        assert!(!too_deep(deep.as_bytes(), 5000));
    }

    #[test]
    fn indenting_stays_linear_in_size() {
        // Depth 30, thousands of tiny values: fully indented this would be ~50x the input.
        let inner = vec!["0"; 20_000].join(",");
        let doc = "[".repeat(30) + &inner + &"]".repeat(30);
        let out = JsonStyle::Indented.apply(doc.clone().into_bytes());
        assert!(out.len() <= doc.len() * (INDENT_GROWTH + 1) + INDENT_SLACK);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::from_str::<serde_json::Value>(&doc).unwrap());
    }

    #[test]
    fn styles() {
        let c = br#"{"janus":"ack","data":{"id":1,"l":[1,2]}}"#.to_vec();
        assert_eq!(JsonStyle::Compact.apply(c.clone()), c);
        assert_eq!(
            String::from_utf8(JsonStyle::Plain.apply(c.clone())).unwrap(),
            r#"{"janus": "ack", "data": {"id": 1, "l": [1, 2]}}"#
        );
        let ind = String::from_utf8(JsonStyle::Indented.apply(c)).unwrap();
        assert!(ind.starts_with("{\n   \"janus\": \"ack\",\n   \"data\": {\n      \"id\": 1"));
    }

    fn serde_styled<F: serde_json::ser::Formatter>(doc: &str, f: F) -> String {
        let v: serde_json::Value = serde_json::from_str(doc).unwrap();
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, f);
        serde::Serialize::serialize(&v, &mut ser).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reformat_matches_serde_json() {
        let docs = [
            r#"{"janus":"event","session_id":1,"plugindata":{"plugin":"p","data":{"a":[],"b":{},"c":[1,{"d":"x,y:{z}]"}],"e":"q\"}{"}},"jsep":{"type":"answer","sdp":"v=0\r\n"}}"#,
            "{ \"a\" : [ 1 , 2 ] ,\n   \"b\": { } }",
            r#"[]"#,
            r#"{"s":"\\"}"#,
        ];
        for d in docs {
            let pretty = serde_styled(d, serde_json::ser::PrettyFormatter::with_indent(b"   "));
            assert_eq!(
                String::from_utf8(JsonStyle::Indented.apply(d.as_bytes().to_vec())).unwrap(),
                pretty,
                "{d}"
            );
            let plain = serde_styled(d, PlainFormatter);
            assert_eq!(
                String::from_utf8(JsonStyle::Plain.apply(d.as_bytes().to_vec())).unwrap(),
                plain,
                "{d}"
            );
        }
    }
}
