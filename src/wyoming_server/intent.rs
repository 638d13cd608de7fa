//! Intent handling over Wyoming: HA's conversation agent sends `transcript` and gets `handled` /
//! `not-handled`; other clients may `recognize` and get `intent` / `not-recognized`.
//!
//! A command may wait on Proxmox (an action is polled to completion), so it runs as its own task:
//! the connection stays responsive, and a client that leaves does not abandon an action halfway
//! (the task finishes and is audited).

use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinHandle;
use tracing::warn;
use wyoming::Event;
use wyoming::asr::Transcript;
use wyoming::handle::{Handled, NotHandled};
use wyoming::intent::{Entity, Intent, NotRecognized, Recognize};

use crate::brain::{Brain, Channel, Command};

/// One `transcript` being handled.
#[derive(Debug)]
pub struct IntentFlow {
    task: Option<JoinHandle<Vec<Event>>>,
}

impl IntentFlow {
    /// Starts handling `transcript` from `peer`, keyed by HA's `conversation_id`.
    pub fn handle(brain: Arc<Brain>, transcript: &Transcript, peer: String) -> Self {
        let context = transcript.context.clone();
        let conversation = context
            .as_ref()
            .and_then(|c| c.get("conversation_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let command = Command {
            text: transcript.text.clone(),
            channel: Channel::Voice,
            client: peer,
            conversation,
            approval: None,
        };
        let task = tokio::spawn(async move {
            let response = brain.command(command).await;
            let event: Event = if response.handled {
                Handled {
                    text: Some(response.reply),
                    context,
                }
                .into()
            } else {
                NotHandled {
                    text: Some(response.reply),
                    context,
                }
                .into()
            };
            vec![event]
        });
        Self { task: Some(task) }
    }

    /// A structured `intent` sent for handling: Jarvis handles text, so it says what to send.
    pub fn refuse_structured(intent: &Intent) -> Vec<Event> {
        vec![
            NotHandled {
                text: Some(format!(
                    "Jarvis handles spoken text: send a transcript event instead of the intent {}",
                    intent.name
                )),
                context: intent.context.clone(),
            }
            .into(),
        ]
    }

    /// `recognize` → `intent` with the slots as spoken, or `not-recognized`.
    pub fn recognize(brain: &Brain, request: &Recognize) -> Vec<Event> {
        match brain.recognize(&request.text) {
            Some((name, slots)) => vec![
                Intent {
                    name: name.to_owned(),
                    entities: slots
                        .into_iter()
                        .map(|(name, value)| Entity {
                            name: name.to_owned(),
                            value: Value::String(value),
                        })
                        .collect(),
                    text: None,
                    context: request.context.clone(),
                }
                .into(),
            ],
            None => vec![
                NotRecognized {
                    text: Some("Sorry, I didn't understand that.".into()),
                    context: request.context.clone(),
                }
                .into(),
            ],
        }
    }

    /// Whether the reply is still being prepared.
    pub fn is_busy(&self) -> bool {
        self.task.is_some()
    }

    /// The reply once ready. Pending forever after it was sent.
    ///
    /// # Cancel safety
    /// Cancel safe: the task keeps running and the next call waits for it again.
    pub async fn next_output(&mut self) -> Vec<Event> {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let result = task.await;
        self.task = None;
        match result {
            Ok(events) => events,
            Err(err) => {
                warn!(cause = %err, "intent handling task failed");
                vec![
                    NotHandled {
                        text: Some("Sorry, something went wrong while handling that.".into()),
                        context: None,
                    }
                    .into(),
                ]
            }
        }
    }
}
