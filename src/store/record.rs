//! The basic record extracted from a message: who, to whom, about what, in reply to what, with
//! which attachments. Stored encrypted next to the raw message; later stages (threading,
//! classification, the staff views) read it instead of re-parsing the message. Extraction is
//! intake's (`intake::extract`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub helo: String,
    pub client_ip: String,
    /// False when the MIME parser found no message at all; the raw bytes are stored regardless.
    pub parsed: bool,
    pub from: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub attachments: Vec<Attachment>,
    /// An out-of-office, delivery report or other machine-sent message (RFC 3834 and friends):
    /// it joins its case but never re-opens it.
    pub automatic: bool,
}
