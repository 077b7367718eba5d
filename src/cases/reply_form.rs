//! What the reply form starts from: the templates offered for this case (scoped by its queue and
//! category) and, when one is chosen, its subject and body filled for this case.

use super::templates::{self, ReplyTemplate};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::store::cases::CaseRow;

/// The reply form of one case.
#[derive(Debug, Clone)]
pub struct ReplyForm {
    pub case: CaseRow,
    /// The names of the templates offered for this case, in configuration order.
    pub templates: Vec<String>,
    /// The template chosen, if any.
    pub chosen: Option<String>,
    /// In the placeholder language: what the agent starts editing from.
    pub subject: String,
    pub body: String,
}

impl Cases {
    /// The templates offered for `case`.
    pub fn templates_for(&self, case: &CaseRow) -> Vec<&ReplyTemplate> {
        self.settings.templates.iter().filter(|t| t.in_scope(&case.queue, case.category.as_deref())).collect()
    }

    /// The form to reply to case `id` from (act on its queue), filled from `template` when
    /// given: placeholders this case has values for are filled, the others stay for the agent
    /// to replace (sending refuses them). A template not offered for this case is invalid.
    pub async fn reply_form(&self, who: &Principal, id: i64, template: Option<&str>) -> Result<ReplyForm, CaseError> {
        let case = self.readable_case(who, id).await?;
        if !who.can(&case.queue, Permission::Act) {
            return Err(CaseError::forbidden(&[Permission::Act], &case.queue));
        }
        let offered = self.templates_for(&case);
        let names = offered.iter().map(|t| t.name.clone()).collect();
        let Some(name) = template.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(ReplyForm { case, templates: names, chosen: None, subject: String::new(), body: String::new() });
        };
        let chosen = *offered
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| CaseError::Invalid(format!("no reply template named {name:?} is offered for this case")))?;
        let customer_name = self.customer(id).await?.and_then(|(_, mailbox, _)| mailbox.name);
        let values = self.values(who, &case, customer_name.as_deref(), None);
        let subject = chosen.subject.as_deref().map(|s| templates::fill(s, &values)).unwrap_or_default();
        let body = templates::fill(&chosen.body, &values);
        Ok(ReplyForm { case, templates: names, chosen: Some(chosen.name.clone()), subject, body })
    }
}
