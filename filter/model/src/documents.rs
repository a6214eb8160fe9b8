//! Resource documents from text: JSON (one resource or an array of them) and, with the `yaml`
//! feature, YAML streams (`---` between documents), as `extsvc` and the fuzz targets read them.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// A text that is not well-formed YAML or JSON, with where the reader stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Splits a JSON text into documents: one resource, or an array of them.
pub fn json_documents(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    Ok(match serde_json::from_str(text)? {
        Value::Array(items) => items,
        one => vec![one],
    })
}

/// [`json_documents`], with a failure as a [`SyntaxError`] of `file`.
pub fn json_file_documents(file: &str, text: &str) -> (Vec<Value>, Option<SyntaxError>) {
    match json_documents(text) {
        Ok(values) => (values, None),
        Err(e) => (
            Vec::new(),
            Some(SyntaxError {
                file: file.to_string(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }),
        ),
    }
}

/// The documents of a YAML stream, up to the first that is not well-formed.
#[cfg(feature = "yaml")]
pub fn yaml_documents(file: &str, text: &str) -> (Vec<Value>, Option<SyntaxError>) {
    use serde::Deserialize as _;
    let mut values = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            // An empty document, such as after a final `---`, holds no resource.
            Ok(Value::Null) => {}
            Ok(Value::Array(items)) => values.extend(items),
            Ok(value) => values.push(value),
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                let error = SyntaxError {
                    file: file.to_string(),
                    line,
                    column,
                    message: e.to_string(),
                };
                return (values, Some(error));
            }
        }
    }
    (values, None)
}

/// Where each field of each document is: `field path -> (line, column)`, one map per document
/// in the order [`yaml_documents`] and [`json_documents`] give them (an empty document is
/// skipped, a top-level list is its items). Field paths read as in reports
/// (`networking.tls.caCert`, `networking.outbound[0].port`); a key is where it is written, a
/// list item where it starts. A text the event parser cannot read gives what it read so far.
#[cfg(feature = "yaml")]
pub fn field_positions(text: &str) -> Vec<Positions> {
    let mut tree = positions::Tree::default();
    let _ = yaml_rust2::parser::Parser::new_from_str(text).load(&mut tree, true);
    tree.documents
        .into_iter()
        .flat_map(|node| match node {
            positions::Node::Null => Vec::new(),
            positions::Node::Seq(items) => items.into_iter().map(|(_, item)| item).collect(),
            other => vec![other],
        })
        .map(|node| {
            let mut found = Positions::default();
            node.record(String::new(), &mut found);
            found
        })
        .collect()
}

/// One document's fields and where they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(std::collections::BTreeMap<String, (usize, usize)>);

impl Positions {
    /// Where a report's field is: the field itself, else the nearest enclosing field that is
    /// written (a missing field is reported where its parent is). `tags["a/b"]` is `tags.a/b`.
    pub fn of(&self, field: &str) -> Option<(usize, usize)> {
        let mut path = field.replace("[\"", ".").replace("\"]", "");
        loop {
            if let Some(&at) = self.0.get(&path) {
                return Some(at);
            }
            let cut = path.rfind(['.', '['])?;
            path.truncate(cut);
        }
    }
}

#[cfg(feature = "yaml")]
mod positions {
    use yaml_rust2::parser::{Event, MarkedEventReceiver};
    use yaml_rust2::scanner::Marker;

    use super::Positions;

    type At = (usize, usize);
    /// A collection being read: where it starts, and the key read and not yet given a value
    /// (maps only).
    type Open = (Node, At, Option<(String, At)>);

    /// A document as nested positions, no values.
    pub enum Node {
        Null,
        Leaf,
        Map(Vec<(String, At, Node)>),
        Seq(Vec<(At, Node)>),
    }

    impl Node {
        pub fn record(&self, path: String, found: &mut Positions) {
            match self {
                Node::Null | Node::Leaf => {}
                Node::Map(entries) => {
                    for (key, at, node) in entries {
                        let path = if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{path}.{key}")
                        };
                        found.0.insert(path.clone(), *at);
                        node.record(path, found);
                    }
                }
                Node::Seq(items) => {
                    for (i, (at, node)) in items.iter().enumerate() {
                        let path = format!("{path}[{i}]");
                        // The parser marks a block mapping past its first key: its first key
                        // is where the item starts.
                        let at = match node {
                            Node::Map(entries) => entries.first().map_or(*at, |(_, key, _)| *key),
                            _ => *at,
                        };
                        found.0.insert(path.clone(), at);
                        node.record(path, found);
                    }
                }
            }
        }
    }

    /// Builds the nodes from the parser's events.
    #[derive(Default)]
    pub struct Tree {
        pub documents: Vec<Node>,
        open: Vec<Open>,
    }

    impl Tree {
        fn add(&mut self, node: Node, at: At) {
            match self.open.last_mut() {
                None => self.documents.push(node),
                Some((Node::Seq(items), _, _)) => items.push((at, node)),
                Some((Node::Map(entries), _, pending)) => match pending.take() {
                    Some((key, key_at)) => entries.push((key, key_at, node)),
                    // A key that is itself a collection: no field path names it.
                    None => *pending = Some((String::new(), at)),
                },
                Some(_) => {}
            }
        }
    }

    impl MarkedEventReceiver for Tree {
        fn on_event(&mut self, event: Event, mark: Marker) {
            let at = (mark.line(), mark.col() + 1);
            match event {
                Event::Scalar(value, style, ..) => {
                    let awaiting_key = matches!(self.open.last(), Some((Node::Map(_), _, None)));
                    if awaiting_key {
                        if let Some((_, _, pending)) = self.open.last_mut() {
                            *pending = Some((value, at));
                        }
                        return;
                    }
                    let null = style == yaml_rust2::scanner::TScalarStyle::Plain
                        && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL");
                    self.add(if null { Node::Null } else { Node::Leaf }, at);
                }
                Event::Alias(_) => self.add(Node::Leaf, at),
                Event::SequenceStart(..) => self.open.push((Node::Seq(Vec::new()), at, None)),
                Event::MappingStart(..) => self.open.push((Node::Map(Vec::new()), at, None)),
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some((node, start, _)) = self.open.pop() {
                        self.add(node, start);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(all(test, feature = "yaml"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn fields_are_found_where_they_are_written() {
        let yaml = "# two documents\n---\ntype: ExternalService\nname: a\nnetworking:\n  adress: x:1\n  tls:\n    caCert: {file: /ca}\ntags:\n  kuma.io/service: a\n---\n---\n- type: Mesh\n  name: m\n- type: Dataplane\n  networking:\n    outbound:\n    - port: 1\n";
        let found = field_positions(yaml);
        assert_eq!(
            found.len(),
            3,
            "the empty document is skipped, the list is its items"
        );
        assert_eq!(found[0].of("networking.adress"), Some((6, 3)));
        assert_eq!(found[0].of("networking.tls.caCert.file"), Some((8, 14)));
        assert_eq!(found[0].of("tags[\"kuma.io/service\"]"), Some((10, 3)));
        // A field that is not written is reported where its nearest parent is.
        assert_eq!(found[0].of("networking.tls.clientKey"), Some((7, 3)));
        assert_eq!(found[1].of("name"), Some((14, 3)));
        assert_eq!(found[2].of("networking.outbound[0]"), Some((18, 7)));
        assert_eq!(found[2].of("networking.outbound[0].port"), Some((18, 7)));
        assert_eq!(found[2].of("missing"), None);

        let json = "[{\"type\": \"Mesh\",\n  \"nme\": \"m\"}]";
        assert_eq!(field_positions(json)[0].of("nme"), Some((2, 3)));
    }
}
