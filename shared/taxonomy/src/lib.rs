//! The organisation's report taxonomy: categories, the kinds of report each applies to,
//! and which ones suggest malware. The default ships in `taxonomy.toml` beside this
//! crate. Intake checks the category a reporter chooses against it, classification the
//! category an advisor assigns: both read the same file, so they agree.

use std::path::Path;

use serde::Deserialize;

const DEFAULT: &str = include_str!("../taxonomy.toml");

/// The kinds of report a category applies to (policy 14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Event,
    Weakness,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub code: String,
    pub label: String,
    pub group: String,
    pub kinds: Vec<Kind>,
    #[serde(default)]
    pub suggests_malware: bool,
}

#[derive(Debug, Clone)]
pub struct Taxonomy {
    categories: Vec<Category>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    category: Vec<Category>,
}

impl Taxonomy {
    /// The taxonomy shipped with custos.
    pub fn default_taxonomy() -> Self {
        Self::parse(DEFAULT).expect("the shipped taxonomy is valid")
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        for c in &file.category {
            if c.code.is_empty() || c.kinds.is_empty() {
                return Err(format!(
                    "category `{}` needs a code and at least one kind",
                    c.code
                ));
            }
            if !seen.insert(c.code.as_str()) {
                return Err(format!("category `{}` appears twice", c.code));
            }
        }
        if file.category.is_empty() {
            return Err("the taxonomy has no categories".into());
        }
        Ok(Self {
            categories: file.category,
        })
    }

    pub fn get(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_taxonomy_covers_the_policy() {
        let t = Taxonomy::default_taxonomy();
        for code in [
            "loss_or_theft_of_data",
            "malware_infection",
            "hard_copy_theft_or_loss",
            "human_error",
        ] {
            assert!(t.get(code).is_some(), "{code} missing");
        }
        assert!(t.get("malware_infection").unwrap().suggests_malware);
        assert_eq!(t.get("human_error").unwrap().kinds, [Kind::Weakness]);
    }

    #[test]
    fn duplicate_codes_are_refused() {
        let text = "[[category]]\ncode='a'\nlabel='A'\ngroup='G'\nkinds=['event']\n".repeat(2);
        assert!(Taxonomy::parse(&text).unwrap_err().contains("twice"));
    }
}
