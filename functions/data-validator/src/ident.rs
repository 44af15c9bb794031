//! Identifiers, always quoted: nothing from an event reaches SQL unquoted.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `"name"` with embedded quotes doubled; the same rule holds in PostgreSQL and Oracle.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table on both sides, e.g. `app.orders`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    pub schema: String,
    pub table: String,
}

impl TableRef {
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        TableRef {
            schema: schema.into(),
            table: table.into(),
        }
    }

    /// `"schema"."table"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.table))
    }

    /// Parses `schema.table`, where either part may be double-quoted
    /// (`"my schema"."odd ""name"""`) to hold dots, spaces or quotes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts = split_qualified(text.trim())
            .ok_or_else(|| format!("{text:?} is not a table name (expected schema.table)"))?;
        match parts.as_slice() {
            [schema, table] if !schema.is_empty() && !table.is_empty() => {
                Ok(TableRef::new(schema.clone(), table.clone()))
            }
            _ => Err(format!(
                "{text:?} is not a table name (expected schema.table)"
            )),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |s: &str| {
            if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                s.to_string()
            } else {
                quote(s)
            }
        };
        write!(f, "{}.{}", part(&self.schema), part(&self.table))
    }
}

fn split_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if current.is_empty() && !quoted_part => {
                quoted_part = true;
                loop {
                    match chars.next()? {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            current.push('"');
                        }
                        '"' => break,
                        other => current.push(other),
                    }
                }
            }
            '.' => {
                parts.push(std::mem::take(&mut current));
                quoted_part = false;
            }
            '"' => return None,
            other if quoted_part => {
                let _ = other;
                return None;
            }
            other => current.push(other),
        }
    }
    parts.push(current);
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("we\"ird name"), "\"we\"\"ird name\"");
        assert_eq!(
            quote("x\"; DROP TABLE y; --"),
            "\"x\"\"; DROP TABLE y; --\""
        );
    }

    #[test]
    fn table_names_parse_with_and_without_quotes() {
        assert_eq!(
            TableRef::parse("app.orders").unwrap(),
            TableRef::new("app", "orders")
        );
        let odd = TableRef::parse("\"my schema\".\"odd \"\"name\"\".x\"").unwrap();
        assert_eq!(odd, TableRef::new("my schema", "odd \"name\".x"));
        assert_eq!(odd.quoted(), "\"my schema\".\"odd \"\"name\"\".x\"");
        for bad in ["orders", "a.b.c", ".x", "x.", "\"unterminated.x", "a\"b.c"] {
            assert!(TableRef::parse(bad).is_err(), "{bad}");
        }
    }
}
