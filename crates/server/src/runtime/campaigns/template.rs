//! Message templates with `{{field}}` placeholders: parsed once, checked against each
//! recipient's fields when a campaign is accepted, and filled in when its messages are queued.
//! Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

/// The longest field name.
pub const MAX_FIELD_NAME: usize = 64;

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

/// Why a text is not a valid template (the sentence the API answers with).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FIELD_NAME
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Template {
    /// Parses `text`. A placeholder is `{{name}}`, spaces inside the braces allowed
    /// (`{{ name }}`); a name is letters, digits, `_`, `-` and `.`. An opening `{{` without
    /// its `}}`, or with anything else inside, is an error; a lone `}}` is plain text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let at = text[..offset + open].chars().count() + 1;
            let close = after.find("}}").ok_or_else(|| {
                TemplateError(format!("the `{{{{` at character {at} has no closing `}}}}`"))
            })?;
            let name = after[..close].trim();
            if !valid_name(name) {
                return Err(TemplateError(format!(
                    "`{{{{{}}}}}` at character {at} is not a field name (1 to {MAX_FIELD_NAME} \
                     letters, digits, `_`, `-` or `.`)",
                    &after[..close]
                )));
            }
            parts.push(Part::Field(name.to_string()));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The names of the fields the template uses.
    pub fn fields(&self) -> BTreeSet<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field(f) => Some(f.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// The text with every placeholder replaced by its field's value; `Err(name)` names the
    /// first field the template uses that `fields` does not have.
    pub fn render(&self, fields: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(fields.get(f).ok_or_else(|| f.clone())?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn fields_are_filled_in() {
        let t = Template::parse("Hi {{name}}, your code is {{ code }}.{{name}}!").unwrap();
        assert_eq!(t.fields().into_iter().collect::<Vec<_>>(), ["code", "name"]);
        let out = t.render(&fields(&[("name", "Ana"), ("code", "42"), ("unused", "x")])).unwrap();
        assert_eq!(out, "Hi Ana, your code is 42.Ana!");
    }

    #[test]
    fn a_missing_field_is_named() {
        let t = Template::parse("Hi {{name}}, code {{code}}").unwrap();
        assert_eq!(t.render(&fields(&[("name", "Ana")])), Err("code".to_string()));
    }

    #[test]
    fn plain_text_and_lone_closing_braces_are_text() {
        let t = Template::parse("no fields }} here").unwrap();
        assert!(t.fields().is_empty());
        assert_eq!(t.render(&BTreeMap::new()).unwrap(), "no fields }} here");
        let t = Template::parse("{{a}}{{b}}").unwrap();
        assert_eq!(t.render(&fields(&[("a", "1"), ("b", "2")])).unwrap(), "12");
        let t = Template::parse("Olá {{nome_é}}").unwrap();
        assert_eq!(t.render(&fields(&[("nome_é", "Zé")])).unwrap(), "Olá Zé");
    }

    #[test]
    fn malformed_placeholders_are_refused_with_their_place() {
        let e = Template::parse("Olá {{name").unwrap_err();
        assert!(e.0.contains("character 5") && e.0.contains("no closing"), "{e}");
        let e = Template::parse("a {{first name}} b").unwrap_err();
        assert!(e.0.contains("`{{first name}}`") && e.0.contains("character 3"), "{e}");
        assert!(Template::parse("{{}}").is_err());
        assert!(Template::parse("{{  }}").is_err());
        assert!(Template::parse(&format!("{{{{{}}}}}", "x".repeat(65))).is_err());
    }
}
