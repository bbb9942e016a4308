//! The proto comments, which become every description: JSON Schema
//! `description`s, TypeScript doc comments, AsyncAPI descriptions (the Rust
//! docs come from prost-build, which reads the same comments).

use prost_reflect::FileDescriptor;

/// A proto element's comment, one entry per line, each line as rustdoc
/// would carry it (prost-build's convention: a leading space unless the
/// line is empty or starts with exactly one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    lines: Vec<String>,
}

impl Doc {
    /// The comment attached to the element at `path` (a source-info path,
    /// as `MessageDescriptor::path` gives) in `file`: its leading comment,
    /// then its trailing one after an empty line.
    pub fn of(file: &FileDescriptor, path: &[i32]) -> Doc {
        let proto = file.file_descriptor_proto();
        let Some(info) = &proto.source_code_info else {
            return Doc::default();
        };
        let Some(location) = info.location.iter().find(|l| l.path == path) else {
            return Doc::default();
        };
        let leading = location.leading_comments.as_deref().map(lines_of);
        let trailing = location.trailing_comments.as_deref().map(lines_of);
        let mut lines = leading.clone().unwrap_or_default();
        if let (Some(leading), Some(trailing)) = (&leading, &trailing)
            && !leading.is_empty()
            && !trailing.is_empty()
        {
            lines.push(String::new());
        }
        lines.extend(trailing.unwrap_or_default());
        Doc {
            lines: lines.iter().map(|line| with_doc_indent(line)).collect(),
        }
    }

    /// Whether there is no comment.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The comment as one text, lines joined by `\n`, each without its
    /// leading space: what schemars made of the same rustdoc, so JSON
    /// Schema descriptions read as they always have.
    pub fn text(&self) -> Option<String> {
        if self.lines.is_empty() {
            return None;
        }
        let lines: Vec<&str> = self
            .lines
            .iter()
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .collect();
        Some(lines.join("\n"))
    }

    /// The comment as a JSDoc block (`/**`, ` * line`, ` */`), ending with a
    /// newline; empty when there is no comment.
    pub fn jsdoc(&self) -> String {
        if self.lines.is_empty() {
            return String::new();
        }
        let mut block = String::from("/**\n");
        for line in &self.lines {
            // A `*/` in a comment would end the block early.
            block.push_str(&format!(" *{}\n", line.replace("*/", "*\\/")));
        }
        block.push_str(" */\n");
        block
    }
}

/// A comment's lines, as protoc reports them (each ends with `\n`).
fn lines_of(comment: &str) -> Vec<String> {
    comment.lines().map(str::to_owned).collect()
}

/// prost-build's rustdoc indentation: one space before a non-empty line
/// that has none, or that starts with two or more (a continued list item).
fn with_doc_indent(line: &str) -> String {
    let mut chars = line.chars();
    let indent = match chars.next() {
        None => false,
        Some(' ') => chars.next() == Some(' '),
        Some(_) => true,
    };
    if indent {
        format!(" {line}")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_indent_as_rustdoc_would() {
        assert_eq!(with_doc_indent(" plain"), " plain");
        assert_eq!(with_doc_indent("tight"), " tight");
        assert_eq!(with_doc_indent("   list item"), "    list item");
        assert_eq!(with_doc_indent(""), "");
    }

    #[test]
    fn a_comment_renders_as_a_description_and_as_jsdoc() {
        let doc = Doc {
            lines: vec![
                " First line.".into(),
                String::new(),
                " Ends */ here.".into(),
            ],
        };
        assert_eq!(doc.text().unwrap(), "First line.\n\nEnds */ here.");
        assert_eq!(
            doc.jsdoc(),
            "/**\n * First line.\n *\n * Ends *\\/ here.\n */\n"
        );
        assert_eq!(Doc::default().text(), None);
        assert_eq!(Doc::default().jsdoc(), "");
    }
}
