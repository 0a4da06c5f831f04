//! JSON documents as the contract reads them: I-JSON (RFC 7493), so a member name given twice
//! in one object is ambiguous and refused, never resolved by keeping the first or the last
//! (serde_json silently keeps the last). Parsing records where each duplicate is, so a caller
//! can refuse the whole document (a single event) or only the part that holds it (one item of
//! a batch).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// One step into a document: a member of an object or an element of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Member(String),
    Index(usize),
}

/// Where something is in a document, from its root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Step>);

impl Path {
    /// The path below `prefix`, if it starts with it.
    pub fn strip_prefix(&self, prefix: &[Step]) -> Option<Path> {
        self.0.starts_with(prefix).then(|| Path(self.0[prefix.len()..].to_vec()))
    }
}

/// `properties.tags[2].name`: members joined by dots, elements in brackets.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Member(name) if i == 0 => f.write_str(name)?,
                Step::Member(name) => write!(f, ".{name}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A parsed document and the places where a member name was given more than once, in the
/// order they appear. Where a name repeats, the value kept is unspecified: callers refuse it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    pub duplicates: Vec<Path>,
}

impl Document {
    /// Parses JSON text. Syntax errors (and nesting deeper than serde_json's limit of 128)
    /// are errors; duplicate member names are recorded, not errors.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let duplicates = RefCell::new(Vec::new());
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = Node { at: &Link::Root, duplicates: &duplicates }.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(Self { value, duplicates: duplicates.into_inner() })
    }
}

/// The path to the node being parsed, as a chain of borrowed links, so that nothing is
/// allocated for it unless a duplicate is found.
enum Link<'a> {
    Root,
    Member(&'a Link<'a>, &'a str),
    Index(&'a Link<'a>, usize),
}

impl Link<'_> {
    fn to_path(&self) -> Path {
        let mut steps = Vec::new();
        let mut link = self;
        loop {
            match link {
                Link::Root => break,
                Link::Member(parent, name) => {
                    steps.push(Step::Member((*name).to_owned()));
                    link = parent;
                }
                Link::Index(parent, index) => {
                    steps.push(Step::Index(*index));
                    link = parent;
                }
            }
        }
        steps.reverse();
        Path(steps)
    }
}

#[derive(Clone, Copy)]
struct Node<'a> {
    at: &'a Link<'a>,
    duplicates: &'a RefCell<Vec<Path>>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields a non-finite number from JSON text.
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let at = Link::Index(self.at, items.len());
            match seq.next_element_seed(Node { at: &at, duplicates: self.duplicates })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let at = Link::Member(self.at, &name);
            let value = map.next_value_seed(Node { at: &at, duplicates: self.duplicates })?;
            if object.contains_key(&name) {
                self.duplicates.borrow_mut().push(at.to_path());
            } else {
                object.insert(name, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicates(text: &str) -> Vec<String> {
        Document::parse(text.as_bytes()).expect("valid JSON").duplicates.iter().map(Path::to_string).collect()
    }

    #[test]
    fn parses_like_serde_json_when_nothing_repeats() {
        let text = r#"{"a": [1, -2, 2.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        let document = Document::parse(text.as_bytes()).expect("valid");
        assert_eq!(document.value, serde_json::from_str::<Value>(text).expect("valid"));
        assert!(document.duplicates.is_empty());
    }

    #[test]
    fn records_every_duplicate_with_its_path_in_order() {
        assert_eq!(duplicates(r#"{"a": 1, "a": 2}"#), ["a"]);
        assert_eq!(duplicates(r#"{"a": 1, "a": 2, "a": 3}"#), ["a", "a"]);
        assert_eq!(duplicates(r#"{"p": {"x": [{"y": 1, "y": 1}]}, "q": 1, "q": {}}"#), ["p.x[0].y", "q"]);
        assert_eq!(duplicates(r#"[{}, {"k": 1, "k": 1}]"#), ["[1].k"]);
        // The same name at different depths is not a duplicate.
        assert!(duplicates(r#"{"a": {"a": {"a": 1}}}"#).is_empty());
    }

    #[test]
    fn syntax_errors_and_trailing_text_are_errors() {
        for bad in ["", "{", "[1,]", "{} {}", "{\"a\": 1e999}", "\"\\ud800\""] {
            assert!(Document::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Document::parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn paths_strip_a_prefix() {
        let document = Document::parse(br#"{"events": [{}, {"n": 1, "n": 2}]}"#).expect("valid");
        let prefix = [Step::Member("events".into()), Step::Index(1)];
        assert_eq!(document.duplicates[0].strip_prefix(&prefix).map(|p| p.to_string()).as_deref(), Some("n"));
        assert_eq!(document.duplicates[0].strip_prefix(&[Step::Index(0)]), None);
    }
}
