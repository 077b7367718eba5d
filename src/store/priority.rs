//! A case's priority (urgent, normal, low): stored with every case, set by intake's rules and by
//! staff; each has its own SLA target (`intake::sla`).

use std::fmt;
use std::str::FromStr;

/// The priority a rule gives a message; each has its own SLA target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Urgent,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority {0:?} (expected urgent, normal or low)")]
pub struct ParsePriorityError(pub String);

impl FromStr for Priority {
    type Err = ParsePriorityError;

    /// Case-insensitive, so the CLI and the HTTP API accept "Urgent" as well as the config does.
    fn from_str(s: &str) -> Result<Priority, ParsePriorityError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "urgent" => Ok(Priority::Urgent),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(ParsePriorityError(s.to_string())),
        }
    }
}
