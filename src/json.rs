//! JSON objects whose keys keep the order they were written in, for the machine-readable
//! outputs of SPEC §11 (`hj212 decode`, `assess`), which list their keys in a fixed order.
//! serde_json's own map sorts keys; these do not.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// One object: keys in insertion order; values are plain JSON or nested ordered objects.
#[derive(Debug, Default)]
pub struct Object(Vec<(String, Node)>);

#[derive(Debug)]
pub enum Node {
    Value(Value),
    Object(Object),
}

impl Object {
    pub fn new() -> Object {
        Object::default()
    }

    /// Adds a key with a plain value.
    pub fn put(mut self, key: &str, value: impl Into<Value>) -> Object {
        self.0.push((key.to_string(), Node::Value(value.into())));
        self
    }

    /// Adds a key with a nested object.
    pub fn nest(mut self, key: &str, object: Object) -> Object {
        self.0.push((key.to_string(), Node::Object(object)));
        self
    }

    /// The object as one line of JSON.
    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Node::Value(v) => map.serialize_entry(k, v)?,
                Node::Object(o) => map.serialize_entry(k, o)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order() {
        let o = Object::new()
            .put("z", 1)
            .nest("m", Object::new().put("b", true).put("a", Value::Null))
            .put("a", "x");
        assert_eq!(o.line(), r#"{"z":1,"m":{"b":true,"a":null},"a":"x"}"#);
    }
}
