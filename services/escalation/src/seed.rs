//! Seeding the directory from a file (`escalation.directory_file`): contacts, lists and
//! policies, applied once, when the directory is empty. Afterwards the API is where it
//! changes (the file is a seed, not a second source of truth). The file is checked
//! whole at start, and a mistake stops the start naming it.

use std::{collections::HashMap, path::Path};

use custos_kit::storage::{Db, DbTime};
use serde::Deserialize;
use time::Duration;
use uuid::Uuid;

use crate::{
    directory::{
        ListKind, MAX_DEADLINE, MAX_NOMINEES, MAX_REPEAT, MAX_TIERS, MIN_DEADLINE, MIN_REPEAT,
        Policy, Tier, Trigger, policy_problems,
    },
    error::EscalationError,
    store::{self, ContactRow},
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContact {
    /// How the file refers to the contact (lists, tiers, deputies).
    key: String,
    display_name: String,
    #[serde(default)]
    job_title: String,
    email: String,
    token_subject: Option<String>,
    deputy: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTier {
    #[serde(default)]
    contacts: Vec<String>,
    #[serde(default)]
    lists: Vec<String>,
    deadline_minutes: i64,
    #[serde(default)]
    reminder_minutes: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePolicy {
    trigger: String,
    #[serde(default)]
    single_accountable: bool,
    repeat_minutes: i64,
    tiers: Vec<FileTier>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    contacts: Vec<FileContact>,
    #[serde(default)]
    lists: HashMap<String, Vec<String>>,
    #[serde(default)]
    policies: Vec<FilePolicy>,
}

/// A directory file, checked: contacts with their new ids, lists and policies by id.
#[derive(Debug, Clone)]
pub struct DirectoryFile {
    contacts: Vec<ContactRow>,
    lists: Vec<(ListKind, Vec<Uuid>)>,
    policies: Vec<(Trigger, Policy)>,
}

/// `high_medium` for CONTACT_LIST_KIND_HIGH_MEDIUM: the names the file uses.
fn file_name(wire: &str, prefix: &str) -> String {
    wire.trim_start_matches(prefix).to_ascii_lowercase()
}

fn list_kind(name: &str) -> Result<ListKind, String> {
    ListKind::ALL
        .iter()
        .find(|k| file_name(k.name(), "CONTACT_LIST_KIND_") == name)
        .copied()
        .ok_or_else(|| {
            let known: Vec<_> = ListKind::ALL
                .iter()
                .map(|k| file_name(k.name(), "CONTACT_LIST_KIND_"))
                .collect();
            format!("`{name}` is not a list: one of {}", known.join(", "))
        })
}

fn trigger(name: &str) -> Result<Trigger, String> {
    Trigger::ALL
        .iter()
        .find(|t| file_name(t.name(), "ESCALATION_TRIGGER_") == name)
        .copied()
        .ok_or_else(|| {
            let known: Vec<_> = Trigger::ALL
                .iter()
                .map(|t| file_name(t.name(), "ESCALATION_TRIGGER_"))
                .collect();
            format!("`{name}` is not a trigger: one of {}", known.join(", "))
        })
}

impl DirectoryFile {
    /// Reads and checks a directory file; the error names the first mistake.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.to_string())?;
        let now = DbTime::now();
        let mut ids: HashMap<String, Uuid> = HashMap::new();
        let mut subjects = std::collections::HashSet::new();
        let mut contacts = Vec::new();
        for (i, c) in raw.contacts.iter().enumerate() {
            let at = format!("contacts[{i}]");
            if c.key.is_empty() || ids.insert(c.key.clone(), Uuid::now_v7()).is_some() {
                return Err(format!("{at}.key `{}` is empty or used twice", c.key));
            }
            let one_line =
                |t: &str| !t.contains(['\n', '\r', '\t']) && !t.chars().any(char::is_control);
            if c.display_name.trim().is_empty()
                || c.display_name.chars().count() > 200
                || !one_line(&c.display_name)
            {
                return Err(format!(
                    "{at}.display_name must be one line of 1 to 200 characters"
                ));
            }
            if c.job_title.chars().count() > 200 || !one_line(&c.job_title) {
                return Err(format!(
                    "{at}.job_title must be one line of at most 200 characters"
                ));
            }
            if !crate::api::is_address(c.email.trim()) {
                return Err(format!(
                    "{at}.email `{}` is not an email address (a bare address)",
                    c.email
                ));
            }
            if let Some(s) = &c.token_subject
                && (s.is_empty()
                    || s.chars().count() > 255
                    || !one_line(s)
                    || !subjects.insert(s.clone()))
            {
                return Err(format!(
                    "{at}.token_subject `{s}` is empty, too long or used twice"
                ));
            }
        }
        for (i, c) in raw.contacts.iter().enumerate() {
            let deputy_id = match &c.deputy {
                None => None,
                Some(d) if *d == c.key => {
                    return Err(format!("contacts[{i}].deputy must be another contact"));
                }
                Some(d) => Some(
                    *ids.get(d)
                        .ok_or_else(|| format!("contacts[{i}].deputy `{d}` is no contact's key"))?,
                ),
            };
            contacts.push(ContactRow {
                id: ids[&c.key],
                display_name: c.display_name.trim().to_owned(),
                job_title: c.job_title.trim().to_owned(),
                email: c.email.trim().to_owned(),
                deputy_id,
                token_subject: c.token_subject.clone(),
                active: true,
                revision: 1,
                created_at: now,
                updated_at: now,
            });
        }
        let key = |at: &str, k: &str| {
            ids.get(k)
                .copied()
                .ok_or_else(|| format!("{at}: `{k}` is no contact's key"))
        };
        let mut lists = Vec::new();
        let mut names: Vec<_> = raw.lists.keys().cloned().collect();
        names.sort();
        for name in names {
            let kind = list_kind(&name).map_err(|e| format!("lists: {e}"))?;
            let members = &raw.lists[&name];
            if members.len() > MAX_NOMINEES {
                return Err(format!("lists.{name} has more than {MAX_NOMINEES} members"));
            }
            let mut ids_of = Vec::new();
            for k in members {
                let id = key(&format!("lists.{name}"), k)?;
                if ids_of.contains(&id) {
                    return Err(format!("lists.{name} names `{k}` twice"));
                }
                ids_of.push(id);
            }
            lists.push((kind, ids_of));
        }
        let mut policies = Vec::new();
        for (i, p) in raw.policies.iter().enumerate() {
            let at = format!("policies[{i}]");
            let t = trigger(&p.trigger).map_err(|e| format!("{at}.trigger: {e}"))?;
            if policies.iter().any(|(other, _)| *other == t) {
                return Err(format!("{at}.trigger `{}` has a policy already", p.trigger));
            }
            if p.tiers.is_empty() || p.tiers.len() > MAX_TIERS {
                return Err(format!("{at}.tiers: 1 to {MAX_TIERS} tiers"));
            }
            let repeat = Duration::minutes(p.repeat_minutes);
            if repeat < MIN_REPEAT || repeat > MAX_REPEAT {
                return Err(format!(
                    "{at}.repeat_minutes must be from {} to {}",
                    MIN_REPEAT.whole_minutes(),
                    MAX_REPEAT.whole_minutes()
                ));
            }
            let mut tiers = Vec::new();
            for (j, ft) in p.tiers.iter().enumerate() {
                let at = format!("{at}.tiers[{j}]");
                let deadline = Duration::minutes(ft.deadline_minutes);
                if deadline < MIN_DEADLINE || deadline > MAX_DEADLINE {
                    return Err(format!(
                        "{at}.deadline_minutes must be from {} to {}",
                        MIN_DEADLINE.whole_minutes(),
                        MAX_DEADLINE.whole_minutes()
                    ));
                }
                if ft.reminder_minutes < 0 || ft.reminder_minutes >= ft.deadline_minutes {
                    return Err(format!(
                        "{at}.reminder_minutes must be 0 (none) or less than deadline_minutes"
                    ));
                }
                let mut tier_contacts = Vec::new();
                for k in &ft.contacts {
                    tier_contacts.push(key(&format!("{at}.contacts"), k)?);
                }
                let mut tier_lists = Vec::new();
                for l in &ft.lists {
                    tier_lists.push(list_kind(l).map_err(|e| format!("{at}.lists: {e}"))?);
                }
                if p.single_accountable
                    && (p.tiers.len() != 1 || tier_contacts.len() != 1 || !tier_lists.is_empty())
                {
                    return Err(format!(
                        "{at}: a single accountable line has one tier naming exactly one contact and no list"
                    ));
                }
                tiers.push(Tier {
                    contacts: tier_contacts,
                    lists: tier_lists,
                    deadline_secs: deadline.whole_seconds(),
                    reminder_before_secs: ft.reminder_minutes * 60,
                });
            }
            let policy = Policy {
                tiers,
                single_accountable: p.single_accountable,
                repeat_secs: repeat.whole_seconds(),
            };
            // Who each tier names, as the file's lists and contacts have them.
            let people: Vec<Vec<bool>> = policy
                .tiers
                .iter()
                .map(|tier| {
                    let mut named: Vec<Uuid> = tier.contacts.clone();
                    for l in &tier.lists {
                        if let Some((_, members)) = lists.iter().find(|(k, _)| k == l) {
                            named.extend(members.iter().copied());
                        }
                    }
                    let mut seen = std::collections::HashSet::new();
                    named.retain(|id| seen.insert(*id));
                    named
                        .iter()
                        .map(|id| {
                            contacts
                                .iter()
                                .any(|c: &ContactRow| c.id == *id && c.token_subject.is_some())
                        })
                        .collect()
                })
                .collect();
            if let Some((field, problem)) = policy_problems(t, &policy, &people).into_iter().next()
            {
                return Err(format!("{at}.{field}: {problem}"));
            }
            policies.push((t, policy));
        }
        Ok(Self {
            contacts,
            lists,
            policies,
        })
    }

    /// Applies the file if the directory is empty (once, whichever replica starts
    /// first); returns whether it did.
    pub async fn apply(&self, db: &Db) -> Result<bool, EscalationError> {
        let mut tx = db.begin().await?;
        store::lock_directory(&mut tx).await?;
        if !store::is_empty(&mut tx).await? {
            return Ok(false);
        }
        let now = DbTime::now();
        // Deputies refer to contacts of the file: insert them all, then set deputies.
        for c in &self.contacts {
            store::insert_contact(
                &mut tx,
                &ContactRow {
                    deputy_id: None,
                    ..c.clone()
                },
            )
            .await?;
        }
        for c in self.contacts.iter().filter(|c| c.deputy_id.is_some()) {
            store::save_contact(&mut tx, c).await?;
        }
        for (kind, ids) in &self.lists {
            store::set_list(&mut tx, *kind, 0, ids, now).await?;
        }
        for (trigger, policy) in &self.policies {
            store::set_policy(
                &mut tx,
                *trigger,
                0,
                policy,
                now,
                "escalation.directory_file",
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[contacts]]
        key = "sam"
        display_name = "Sam Patel"
        email = "sam@example.org"
        token_subject = "sam"
        deputy = "alex"

        [[contacts]]
        key = "alex"
        display_name = "Alex Jones"
        email = "alex@example.org"
        token_subject = "alex"

        [lists]
        high_medium = ["sam", "alex"]

        [[policies]]
        trigger = "incident_high"
        repeat_minutes = 60
        [[policies.tiers]]
        lists = ["high_medium"]
        deadline_minutes = 30
        reminder_minutes = 10
    "#;

    #[test]
    fn the_shipped_example_is_a_valid_directory() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/directory.example.toml");
        let f = DirectoryFile::load(&path).unwrap();
        assert_eq!(f.contacts.len(), 8);
        assert_eq!(f.lists.len(), 8);
        assert_eq!(f.policies.len(), 2);
    }

    #[test]
    fn a_good_file_is_read_whole() {
        let f = DirectoryFile::parse(GOOD).unwrap();
        assert_eq!(f.contacts.len(), 2);
        assert_eq!(f.contacts[0].deputy_id, Some(f.contacts[1].id));
        assert_eq!(
            f.lists,
            [(
                ListKind::HighMedium,
                vec![f.contacts[0].id, f.contacts[1].id]
            )]
        );
        assert_eq!(f.policies[0].0, Trigger::IncidentHigh);
        assert_eq!(f.policies[0].1.tiers[0].reminder_before_secs, 600);
    }

    #[test]
    fn a_mistake_is_named() {
        for (change, says) in [
            (
                (
                    "high_medium = [\"sam\", \"alex\"]",
                    "high_medium = [\"sam\"]",
                ),
                "needs at least two nominees",
            ),
            (
                ("lists = [\"high_medium\"]", "lists = [\"low\"]"),
                "must include CONTACT_LIST_KIND_HIGH_MEDIUM",
            ),
            (
                ("deputy = \"alex\"", "deputy = \"nobody\""),
                "contacts[0].deputy `nobody`",
            ),
            (
                ("trigger = \"incident_high\"", "trigger = \"incident_huge\""),
                "is not a trigger",
            ),
            (("high_medium = [", "high_middle = ["), "is not a list"),
            (("sam@example.org", "sam-at-example"), "contacts[0].email"),
            (
                ("deadline_minutes = 30", "deadline_minutes = 0"),
                "deadline_minutes",
            ),
            (
                ("reminder_minutes = 10", "reminder_minutes = 30"),
                "reminder_minutes",
            ),
        ] {
            assert!(GOOD.contains(change.0), "{}", change.0);
            let err = DirectoryFile::parse(&GOOD.replace(change.0, change.1)).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
    }
}
