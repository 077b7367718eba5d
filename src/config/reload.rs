//! A configuration reload (SIGHUP). The new file is validated completely, with the usual
//! file/line/key errors, before anything changes. What a running server can swap takes effect:
//! routing, queues' and categories' settings, rules, the SLA calendar, acknowledgements, reply
//! templates, roles and DKIM signing (`[dkim]`: a new selector and key, read when the file is). Every other section keeps its running value until the next restart
//! (listeners, limits, storage, TLS, …): those are named, so the operator knows.

use super::{ConfigError, Settings};

/// The top-level sections a running server takes over from a reloaded file. Any other section,
/// including one added to the configuration later, counts as needing a restart.
pub const RELOADABLE: &[&str] =
    &["mail", "queues", "categories", "rules", "sla", "intake", "acknowledgement", "templates", "roles", "dkim"];

/// What a reload puts in force.
#[derive(Debug)]
pub struct Reload {
    /// The new file's reloadable sections over the running server's other sections.
    pub settings: Settings,
    /// Sections that differ in the file but take effect only at the next restart.
    pub restart_needed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// Queue names and category codes are held by every staff interface and by the grants:
    /// adding, removing or renaming one takes a restart.
    #[error("{0}: restart mailroom to apply this change")]
    NeedsRestart(String),
    #[error("the server runs on the embedded default configuration: there is no file to reload")]
    NoFile,
}

impl Settings {
    /// Reads this configuration's file again ([`Reload`]); on any error nothing changes.
    pub fn reload(&self) -> Result<Reload, ReloadError> {
        let file = self.file.as_deref().ok_or(ReloadError::NoFile)?;
        let fresh = Settings::load(Some(file), &self.data_dir)?;
        self.take_over(&fresh)
    }

    /// The running settings with `fresh`'s reloadable sections.
    fn take_over(&self, fresh: &Settings) -> Result<Reload, ReloadError> {
        let queues = |s: &Settings| s.queue_names();
        if queues(self) != queues(fresh) {
            return Err(ReloadError::NeedsRestart(format!(
                "{}: queues: the queue names changed (from {:?} to {:?})",
                fresh.source,
                queues(self),
                queues(fresh)
            )));
        }
        let codes = |s: &Settings| s.config.categories.iter().map(|c| c.code.clone()).collect::<Vec<_>>();
        if codes(self) != codes(fresh) {
            return Err(ReloadError::NeedsRestart(format!(
                "{}: categories: the category codes changed (from {:?} to {:?})",
                fresh.source,
                codes(self),
                codes(fresh)
            )));
        }
        let (text, restart_needed) = merge(&self.text, &fresh.text).map_err(|reason| ConfigError {
            file: fresh.source.clone(),
            line: 0,
            key: "-".into(),
            reason,
        })?;
        // Both halves are valid on their own; this checks them together (a reloaded rule against
        // the running outbox, say) and derives what intake decides by.
        let mut settings =
            Settings::from_str(&format!("{} (with the running server's other sections)", fresh.source), &text, &self.data_dir)?;
        settings.source = fresh.source.clone();
        settings.file = fresh.file.clone();
        Ok(Reload { settings, restart_needed })
    }
}

/// `fresh` with every section outside [`RELOADABLE`] replaced by `running`'s (or removed where
/// `running` has none), and the names of those that differed.
fn merge(running: &str, fresh: &str) -> Result<(String, Vec<String>), String> {
    let running: toml::Table = running.parse().map_err(|e: toml::de::Error| e.message().to_string())?;
    let mut merged: toml::Table = fresh.parse().map_err(|e: toml::de::Error| e.message().to_string())?;
    let keys: std::collections::BTreeSet<String> =
        running.keys().chain(merged.keys()).filter(|k| !RELOADABLE.contains(&k.as_str())).cloned().collect();
    let mut changed = Vec::new();
    for key in keys {
        if running.get(&key) != merged.get(&key) {
            changed.push(key.clone());
        }
        match running.get(&key) {
            Some(value) => merged.insert(key, value.clone()),
            None => merged.remove(&key),
        };
    }
    let text = toml::to_string(&merged).map_err(|e| e.to_string())?;
    Ok((text, changed))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::DEFAULT_CONFIG;

    fn settings(text: &str) -> Settings {
        Settings::from_str("mailroom.toml", text, Path::new("/tmp")).expect("valid")
    }

    fn edited(from: &str, to: &str) -> String {
        assert!(DEFAULT_CONFIG.contains(from), "the demo config has {from:?}");
        DEFAULT_CONFIG.replacen(from, to, 1)
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let running = settings(DEFAULT_CONFIG);
        let reload = running.take_over(&settings(DEFAULT_CONFIG)).unwrap();
        assert!(reload.restart_needed.is_empty());
        assert_eq!(reload.settings.policy.rules.len(), running.policy.rules.len());
        assert_eq!(reload.settings.config.smtp.listen, running.config.smtp.listen);
    }

    #[test]
    fn reloadable_sections_take_effect_and_the_rest_waits_for_a_restart() {
        let running = settings(DEFAULT_CONFIG);
        let text = edited("max_recipients = 100", "max_recipients = 7")
            + "\n[[templates]]\nname = \"Thanks\"\nbody = \"Thank you for your message.\"\n";
        let reload = running.take_over(&settings(&text)).unwrap();
        assert_eq!(reload.restart_needed, vec!["limits".to_string()]);
        assert_eq!(reload.settings.config.limits.max_recipients, running.config.limits.max_recipients, "limits keep their running value");
        assert_eq!(reload.settings.config.templates.len(), running.config.templates.len() + 1, "templates are reloaded");
    }

    #[test]
    fn a_removed_restart_only_section_keeps_its_running_value() {
        let with = edited("max_recipients = 100", "max_recipients = 7");
        let running = settings(&with);
        let reload = running.take_over(&settings(DEFAULT_CONFIG)).unwrap();
        assert_eq!(reload.restart_needed, vec!["limits".to_string()]);
        assert_eq!(reload.settings.config.limits.max_recipients, 7);
    }

    #[test]
    fn adding_a_queue_or_a_category_needs_a_restart() {
        let running = settings(DEFAULT_CONFIG);
        let queue = format!("{DEFAULT_CONFIG}\n[[queues]]\nname = \"billing\"\naddresses = [\"billing@example.com\"]\n");
        match running.take_over(&settings(&queue)) {
            Err(ReloadError::NeedsRestart(reason)) => assert!(reason.contains("queue names"), "{reason}"),
            other => panic!("expected NeedsRestart, got {other:?}"),
        }
        let category = format!("{DEFAULT_CONFIG}\n[[categories]]\ncode = \"QTWT\"\nname = \"Other\"\n");
        match running.take_over(&settings(&category)) {
            Err(ReloadError::NeedsRestart(reason)) => assert!(reason.contains("category codes"), "{reason}"),
            other => panic!("expected NeedsRestart, got {other:?}"),
        }
        // A queue's other settings (its addresses) are reloaded.
        let address = edited("\"sales@example.com\"", "\"sales@example.com\", \"orders@example.com\"");
        let reload = running.take_over(&settings(&address)).unwrap();
        assert_eq!(reload.settings.policy.addresses.get("orders@example.com").map(String::as_str), Some("sales"));
    }

    #[test]
    fn the_embedded_default_has_no_file_to_reload() {
        assert!(matches!(settings(DEFAULT_CONFIG).reload(), Err(ReloadError::NoFile)));
    }
}
