//! Message templates with `{{field}}` placeholders: parsed once, checked against each
//! recipient's fields when a campaign is accepted, and filled in when its messages are queued.
//! A campaign's template may also hold spintax choices ([`CampaignTemplate`], over
//! `bzapper_core::spintax`): each recipient's choice is drawn from the campaign's id and the
//! recipient's index, so it is the same every time it is rendered. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use bzapper_core::spintax::{self, Spintax};

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
        Self::parse_at(text, 0)
    }

    /// Parses `text`, which starts after `shift` characters of a larger text (the places
    /// errors name count from the larger text's start).
    fn parse_at(text: &str, shift: usize) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let at = shift + text[..offset + open].chars().count() + 1;
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

/// A campaign's template: spintax choices around text with `{{field}}` placeholders
/// (`{Hi|Hello} {{name}}`). The choices are made first, then the fields filled in, so a
/// field's value is never read as spintax.
#[derive(Debug, Clone)]
pub struct CampaignTemplate {
    spin: Spintax,
    /// Every field any alternative uses.
    fields: BTreeSet<String>,
}

impl CampaignTemplate {
    /// Parses the choices, then checks every placeholder (errors name the character).
    pub fn parse(text: &str) -> Result<CampaignTemplate, TemplateError> {
        // A broken placeholder (`{{name` with no `}}`) is told as such, as before spintax,
        // rather than as the unclosed group the spintax reading makes of it.
        let spin = Spintax::parse(text).map_err(|e| match Template::parse(text) {
            Err(placeholder) => placeholder,
            Ok(_) => TemplateError(e.to_string()),
        })?;
        let mut fields = BTreeSet::new();
        for piece in spin.texts() {
            let t = Template::parse_at(piece.text, piece.at - 1)?;
            fields.extend(t.fields().into_iter().map(str::to_string));
        }
        Ok(CampaignTemplate { spin, fields })
    }

    /// The names of the fields the template uses, in any of its alternatives.
    pub fn fields(&self) -> BTreeSet<&str> {
        self.fields.iter().map(String::as_str).collect()
    }

    /// How many texts the choices can give (1 without choices).
    pub fn variants(&self) -> u64 {
        self.spin.variants()
    }

    /// The seed of recipient `index` of campaign `campaign_id`.
    pub fn seed(campaign_id: &str, index: u32) -> u64 {
        spintax::seed(&[campaign_id, &index.to_string()])
    }

    /// The text of recipient `index` of campaign `campaign_id`: its choices, then its fields.
    /// `Err(name)` names a field the chosen text uses that `fields` does not have.
    pub fn render(
        &self,
        campaign_id: &str,
        index: u32,
        fields: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let chosen = self.spin.render(Self::seed(campaign_id, index));
        // Each piece parsed when the template was, so the joined text parses too; an escaped
        // brace that forms a placeholder (`\{\{x}}`) is the one way it would not.
        match Template::parse(&chosen) {
            Ok(t) => t.render(fields),
            Err(_) => Ok(chosen),
        }
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

    #[test]
    fn a_campaign_template_makes_its_choices_then_fills_its_fields() {
        let t =
            CampaignTemplate::parse("{Hi|Hello|Hey} {{name}}, {code {{code}}|no code}").unwrap();
        assert_eq!(t.fields().into_iter().collect::<Vec<_>>(), ["code", "name"]);
        assert_eq!(t.variants(), 6);
        let f = fields(&[("name", "A|{na}"), ("code", "42")]);
        let mut seen = BTreeSet::new();
        for i in 0..200 {
            let text = t.render("cmp_1", i, &f).unwrap();
            // The same recipient always gets the same text; a field's value is not spintax.
            assert_eq!(text, t.render("cmp_1", i, &f).unwrap());
            assert!(text.contains(" A|{na}, "), "{text}");
            seen.insert(text);
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
        // Another campaign draws other choices for the same indexes.
        let other: Vec<_> = (0..20).map(|i| t.render("cmp_2", i, &f).unwrap()).collect();
        let first: Vec<_> = (0..20).map(|i| t.render("cmp_1", i, &f).unwrap()).collect();
        assert_ne!(other, first);
    }

    #[test]
    fn a_campaign_template_names_the_place_of_its_errors() {
        let e = CampaignTemplate::parse("Olá {Hi|Hello {{name}}").unwrap_err();
        assert!(e.0.contains("character 5") && e.0.contains("never closed"), "{e}");
        let e = CampaignTemplate::parse("Hi {{name").unwrap_err();
        assert!(e.0.contains("character 4") && e.0.contains("no closing"), "{e}");
        let e = CampaignTemplate::parse("{a|b} {{first name}}").unwrap_err();
        assert!(e.0.contains("character 7") && e.0.contains("{{first name}}"), "{e}");
        let e = CampaignTemplate::parse("{a|b {{x").unwrap_err();
        assert!(e.0.contains("character 6") && e.0.contains("no closing"), "{e}");
        // A field used in one alternative only is still a field of the template.
        let t = CampaignTemplate::parse("{Hi|Hi {{name}}}").unwrap();
        assert_eq!(t.fields().into_iter().collect::<Vec<_>>(), ["name"]);
    }
}
