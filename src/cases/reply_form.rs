//! What the reply form starts from: the templates offered for this case (scoped by its queue and
//! category) and, when one is chosen, its subject and body filled for this case.

use super::reply::{AWAITING_REVIEW, RETURNED};
use super::templates::{self, ReplyTemplate};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::store::cases::{CaseEntry, CaseRow};

/// A reply of the case waiting for review, or returned by a reviewer with a comment.
#[derive(Debug, Clone)]
pub struct PendingReply {
    pub entry: CaseEntry,
    /// The reviewer's comment on a returned reply: (reviewer, text).
    pub comment: Option<(String, String)>,
    /// The reader may approve or return it (review permission, not its author).
    pub reviewable: bool,
    /// Returned to the reader, who wrote it: to edit and send again.
    pub editable: bool,
}

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
    /// The reader may write replies here (act).
    pub can_write: bool,
    /// Replies awaiting review and returned ones, oldest first.
    pub pending: Vec<PendingReply>,
    /// The returned reply being edited, which the new one replaces.
    pub replaces: Option<i64>,
}

impl Cases {
    /// The templates offered for `case`.
    pub fn templates_for(&self, case: &CaseRow) -> Vec<ReplyTemplate> {
        self.settings().templates.iter().filter(|t| t.in_scope(&case.queue, case.category.as_deref())).cloned().collect()
    }

    /// The form to reply to case `id` from (act on its queue), filled from `template` when
    /// given: placeholders this case has values for are filled, the others stay for the agent
    /// to replace (sending refuses them). A template not offered for this case is invalid.
    /// `edit`: a returned reply of the reader's to start again from.
    pub async fn reply_form(&self, who: &Principal, id: i64, template: Option<&str>, edit: Option<i64>) -> Result<ReplyForm, CaseError> {
        let case = self.readable_case(who, id).await?;
        let can_write = who.can(&case.queue, Permission::Act);
        let can_review = who.can(&case.queue, Permission::Review);
        if !can_write && !can_review {
            return Err(CaseError::forbidden(&[Permission::Act, Permission::Review], &case.queue));
        }
        let entries = self.store().case_entries(id).await?;
        let pending = entries
            .iter()
            .filter(|e| e.kind == "reply" && matches!(e.state.as_deref(), Some(AWAITING_REVIEW | RETURNED)))
            .map(|e| PendingReply {
                comment: entries
                    .iter()
                    .rev()
                    .find(|c| c.kind == "review" && c.body.about == Some(e.id))
                    .map(|c| (c.author.clone(), c.body.text.clone())),
                reviewable: can_review && e.author != who.name && e.state.as_deref() == Some(AWAITING_REVIEW),
                editable: can_write && e.author == who.name && e.state.as_deref() == Some(RETURNED),
                entry: e.clone(),
            })
            .collect();
        let offered = self.templates_for(&case);
        let names = offered.iter().map(|t| t.name.clone()).collect();
        let mut form = ReplyForm {
            case,
            templates: names,
            chosen: None,
            subject: String::new(),
            body: String::new(),
            can_write,
            pending,
            replaces: None,
        };
        if let Some(edit) = edit {
            let returned = form
                .pending
                .iter()
                .find(|p| p.entry.id == edit && p.entry.author == who.name && p.entry.state.as_deref() == Some(RETURNED))
                .ok_or_else(|| CaseError::Invalid(format!("reply {edit} is not one of yours returned by a reviewer")))?;
            // The stored text is what was sent for review, placeholders already filled.
            form.body = returned.entry.body.text.replace('{', "{{").replace('}', "}}");
            form.subject = returned.entry.body.subject.clone().unwrap_or_default().replace('{', "{{").replace('}', "}}");
            form.replaces = Some(edit);
            return Ok(form);
        }
        let Some(name) = template.map(str::trim).filter(|n| !n.is_empty()) else { return Ok(form) };
        let case = &form.case;
        let chosen = offered
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| CaseError::Invalid(format!("no reply template named {name:?} is offered for this case")))?;
        let customer_name = self.customer(id).await?.and_then(|(_, mailbox, _)| mailbox.name);
        let values = self.values(who, case, customer_name.as_deref(), None);
        form.subject = chosen.subject.as_deref().map(|s| templates::fill(s, &values)).unwrap_or_default();
        form.body = templates::fill(&chosen.body, &values);
        form.chosen = Some(chosen.name.clone());
        Ok(form)
    }
}
