//! The brain: a command in, a spoken reply out, with actions taken under the policy and every
//! step in the audit log. Voice (Wyoming `transcript`), the HTTP API and MQTT buttons all come
//! through here, so they share one policy, one set of confirmations and one log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::audit::{self, AuditLog};
use super::followup::{self, Ask, Conversations, Recall, Turn};
use super::intents::{Aspect, Intent, Recognizer};
use super::llm::Llm;
use super::names::{Directory, Kinds, Resolution, Target};
use super::policy::{self, ConfirmError, Confirmations, Verdict};
use super::speech;
use super::types::{Action, ActionReport, ActionRequest, Activity, Channel, Decision};
use crate::config::Config;
use crate::proxmox::{
    ClusterStatus, Guest, GuestAction, GuestKind, GuestState, Inventory, NodeState, Proxmox,
    ProxmoxError, TaskResult,
};

/// Conversations waiting for a confirmation at once, at most.
const MAX_PENDING: usize = 1024;
/// Conversations whose last turn is remembered for follow-ups, at most.
const MAX_CONVERSATIONS: usize = 1024;
/// Activity events buffered for slow listeners.
const ACTIVITY_BUFFER: usize = 256;
/// Longest command text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Smallest and largest VMID Proxmox allows.
const VMIDS: std::ops::RangeInclusive<u32> = 100..=999_999_999;

/// A command from any channel.
#[derive(Debug, Clone)]
pub struct Command {
    /// What was said or typed.
    pub text: String,
    /// Where it came from.
    pub channel: Channel,
    /// Who sent it.
    pub client: String,
    /// The conversation, for confirmations; one is made up (and returned) when missing.
    pub conversation: Option<String>,
    /// An approval keyword (HTTP), standing for the confirmation of destructive actions.
    pub approval: Option<String>,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A local intent.
    Local,
    /// The LLM fallback.
    Llm,
    /// Nothing understood it.
    None,
}

/// The answer to a [`Command`].
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// What to say.
    pub reply: String,
    /// Whether Jarvis understood the command (Wyoming `handled` rather than `not-handled`).
    pub handled: bool,
    /// The intent recognized.
    pub intent: Option<String>,
    /// Its slots, as spoken.
    pub slots: BTreeMap<String, String>,
    /// Local intent, LLM or nothing.
    pub source: Source,
    /// Actions decided, with their tasks and outcomes.
    pub actions: Vec<ActionReport>,
    /// An action waits for "confirm" in this conversation.
    pub pending_confirmation: bool,
    /// The conversation (made up when the command had none).
    pub conversation_id: String,
    /// The question Jarvis asked back, which the next sentence may answer.
    #[serde(skip)]
    pub(crate) ask: Option<Ask>,
}

impl Response {
    pub(super) fn local(reply: impl Into<String>) -> Self {
        Self {
            reply: reply.into(),
            handled: true,
            intent: None,
            slots: BTreeMap::new(),
            source: Source::Local,
            actions: Vec::new(),
            pending_confirmation: false,
            conversation_id: String::new(),
            ask: None,
        }
    }
}

/// How the brain is doing, for `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct BrainHealth {
    /// Proxmox is configured.
    pub proxmox_configured: bool,
    /// The audit log can be written (actions are refused otherwise).
    pub audit_writable: bool,
    /// Read-only mode.
    pub read_only: bool,
    /// The LLM fallback is configured.
    pub llm_configured: bool,
    /// Which brain is active (`[mqtt.lease]`): role, holder, epoch, since.
    #[serde(flatten)]
    pub lease: crate::mqtt::lease::LeaseStatus,
}

/// The homelab brain. Share it as `Arc<Brain>`.
#[derive(Debug)]
pub struct Brain {
    pub(super) proxmox: Option<Proxmox>,
    recognizer: Arc<Recognizer>,
    directory: PerSnapshot<Directory>,
    vocabulary: PerSnapshot<Vec<String>, crate::events::Vocabulary>,
    speech_grammar: Arc<GrammarSlot>,
    pub(super) policy: crate::config::PolicyConfig,
    pub(super) confirmations: Confirmations,
    conversations: Conversations,
    /// How long a question waits for Proxmox before "Proxmox isn't answering".
    pub(super) answer_timeout: Duration,
    pub(super) audit: AuditLog,
    llm: Option<Llm>,
    activity: broadcast::Sender<Activity>,
    next_conversation: AtomicU64,
    memory: Option<super::memory::Memory>,
    /// The brain lease, with `[mqtt.lease]`: a standby brain refuses actions.
    lease: std::sync::OnceLock<crate::mqtt::lease::LeaseView>,
}

/// Why the brain could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrainError {
    /// A built-in sentence does not parse (a bug).
    #[error(transparent)]
    Template(#[from] super::grammar::TemplateError),
    /// The LLM client could not be built.
    #[error("llm: {0}")]
    Llm(String),
}

impl Brain {
    /// A brain over `proxmox` (none: questions about the cluster say how to configure it).
    ///
    /// # Errors
    /// See [`BrainError`].
    pub fn new(config: &Config, proxmox: Option<Proxmox>) -> Result<Self, BrainError> {
        let llm = if config.llm.enabled {
            Some(Llm::new(&config.llm).map_err(BrainError::Llm)?)
        } else {
            None
        };
        let (activity, _) = broadcast::channel(ACTIVITY_BUFFER);
        Ok(Self {
            proxmox,
            recognizer: Arc::new(Recognizer::new()?),
            directory: Mutex::new(None),
            vocabulary: Mutex::new(None),
            speech_grammar: Arc::default(),
            policy: config.policy.clone(),
            confirmations: Confirmations::new(
                Duration::from_secs(config.policy.confirm_timeout_secs),
                MAX_PENDING,
            ),
            conversations: Conversations::new(
                Duration::from_secs(config.policy.followup_timeout_secs),
                MAX_CONVERSATIONS,
            ),
            answer_timeout: Duration::from_millis(config.proxmox.answer_timeout_ms.max(1)),
            audit: AuditLog::open(&config.audit),
            llm,
            activity,
            next_conversation: AtomicU64::new(1),
            memory: None,
            lease: std::sync::OnceLock::new(),
        })
    }

    /// The brain with an event memory: its commands and actions are remembered, and questions
    /// about what happened are answered from it.
    #[must_use]
    pub fn with_memory(mut self, memory: super::memory::Memory) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Takes part in the brain lease: from now on actions need this brain to hold it. Set once,
    /// when the lease starts (later calls change nothing).
    pub fn set_lease(&self, lease: crate::mqtt::lease::LeaseView) {
        let _ = self.lease.set(lease);
    }

    /// Why this brain may not act now (a standby), as the reply to give; `None` when it may.
    pub(super) fn lease_refusal(&self) -> Option<String> {
        self.lease
            .get()
            .and_then(crate::mqtt::lease::LeaseView::refusal)
    }

    /// The event memory, when there is one.
    pub fn memory(&self) -> Option<&super::memory::Memory> {
        self.memory.as_ref()
    }

    /// Broadcasts `activity` and writes it to the memory.
    async fn announce(&self, activity: Activity) {
        if let Some(memory) = &self.memory {
            memory.remember(&activity).await;
        }
        let _ = self.activity.send(activity);
    }

    /// Every command and action, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<Activity> {
        self.activity.subscribe()
    }

    /// Names speech recognition should know, from the last inventory fetched and the event
    /// memory (no I/O): the cluster's nodes and storages, then the cameras, zones and faces, then
    /// the guests (not templates). Whisper's prompt takes them in this order until it is full:
    /// on a large cluster, the few names of whole kinds before some of a thousand guests.
    pub fn vocabulary(&self) -> Arc<Vec<String>> {
        let memory = self.memory_vocabulary();
        let Some((inventory, _)) = self.proxmox.as_ref().and_then(Proxmox::cached_inventory) else {
            return Arc::new(names_in_order(None, &memory));
        };
        per_snapshot(&self.vocabulary, &inventory, memory, |inventory, memory| {
            names_in_order(Some(inventory), memory)
        })
    }

    /// The cameras, zones, labels and faces the event memory and Frigate know.
    pub(crate) fn memory_vocabulary(&self) -> crate::events::Vocabulary {
        let Some(memory) = &self.memory else {
            return crate::events::Vocabulary::default();
        };
        let mut vocabulary = crate::events::Vocabulary::clone(&memory.store.vocabulary());
        let status = memory.frigate.status();
        for camera in status.cameras {
            if !vocabulary
                .cameras
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&camera))
            {
                vocabulary.cameras.push(camera);
            }
        }
        for zone in status.zones {
            if !vocabulary
                .zones
                .iter()
                .any(|z| z.eq_ignore_ascii_case(&zone))
            {
                vocabulary.zones.push(zone);
            }
        }
        vocabulary
    }

    /// The grammar that guides speech recognition: the brain's sentences with the cluster's
    /// names (from the last inventory fetched). Never built on the caller's thread: when the
    /// names have changed since the last build, a build starts in the background (on a thread
    /// of its own, below requests: [`crate::priority`]) and this answers with the grammar of
    /// the names before, `None` before the first build. [`Brain::spawn_grammar_upkeep`] starts
    /// each build as soon as a new inventory arrives, so speech requests find it ready.
    /// Clusters with more names than [`MAX_GRAMMAR_NAMES`] get none. Each name is held once
    /// whatever the sentences and words before it, so the grammar grows by the characters of
    /// the names' forms: 10 nodes, 1000 guests and their storages make 25 685 rules, built in
    /// ~60 ms (2 cores), 3.4 MB resident (`cargo bench --bench brain`).
    pub fn speech_grammar(&self) -> Option<Arc<crate::stt::grammar::SpeechGrammar>> {
        let (inventory, _) = self.proxmox.as_ref().and_then(Proxmox::cached_inventory)?;
        let memory = self.memory_vocabulary();
        let names = inventory.nodes.len()
            + inventory.guests.len()
            + inventory.storages.len()
            + memory.cameras.len()
            + memory.zones.len()
            + memory.sub_labels.len();
        if names > MAX_GRAMMAR_NAMES {
            return None;
        }
        match cached_for(&self.speech_grammar.cached, &inventory, &memory) {
            Ok(current) => Some(current),
            Err(before) => {
                self.speech_grammar
                    .build_in_background(&self.recognizer, inventory, memory);
                before
            }
        }
    }

    /// The last speech grammar built, whatever names it was built for; starts no build.
    pub fn last_speech_grammar(&self) -> Option<Arc<crate::stt::grammar::SpeechGrammar>> {
        let cached = self.speech_grammar.cached.lock().ok()?;
        cached.as_ref().map(|c| Arc::clone(&c.value))
    }

    /// Keeps the speech grammar built for the cluster's names: each new inventory snapshot
    /// starts a build in the background when its names differ from the last build's (see
    /// [`Brain::speech_grammar`]). `None` without Proxmox. Ends on `shutdown`.
    pub fn spawn_grammar_upkeep(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let mut inventory = self.proxmox.as_ref()?.subscribe_inventory();
        let brain = Arc::clone(self);
        Some(tokio::spawn(async move {
            loop {
                // The snapshot there already (if any), then each new one.
                if inventory.borrow_and_update().is_some() {
                    let _ = brain.speech_grammar();
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    changed = inventory.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
        }))
    }

    /// The name index of the last inventory fetched (no I/O; none before the first fetch).
    /// Built again only when the names change, shared with the answers to commands.
    pub(crate) fn cached_directory(&self) -> Option<Arc<Directory>> {
        let (inventory, _) = self.proxmox.as_ref().and_then(Proxmox::cached_inventory)?;
        Some(self.directory_of(&inventory))
    }

    /// The name index of `inventory`, from the cache while its names are unchanged.
    fn directory_of(&self, inventory: &Arc<Inventory>) -> Arc<Directory> {
        per_snapshot(&self.directory, inventory, (), |inventory, ()| {
            Directory::new(inventory)
        })
    }

    /// The compiled sentences.
    pub(crate) fn recognizer(&self) -> &Recognizer {
        &self.recognizer
    }

    /// The Proxmox client, if configured.
    pub fn proxmox(&self) -> Option<&Proxmox> {
        self.proxmox.as_ref()
    }

    /// For `/health`.
    pub fn health(&self) -> BrainHealth {
        BrainHealth {
            proxmox_configured: self.proxmox.is_some(),
            audit_writable: self.audit.is_writable(),
            read_only: self.policy.read_only,
            llm_configured: self.llm.is_some(),
            lease: self.lease.get().map_or_else(
                crate::mqtt::lease::LeaseStatus::single,
                crate::mqtt::lease::LeaseView::status,
            ),
        }
    }

    /// The local intent of `text` without acting on it (Wyoming `recognize`): its name and
    /// slots.
    pub fn recognize(&self, text: &str) -> Option<(&'static str, Vec<(&'static str, String)>)> {
        self.recognizer
            .recognize(text)
            .map(|r| (r.intent.name(), r.intent.slots()))
    }

    /// Handles a command: recognize, answer or act, audit, reply.
    pub async fn command(&self, command: Command) -> Response {
        let started = Instant::now();
        let conversation_id = command.conversation.clone().unwrap_or_else(|| {
            format!(
                "jarvis-{}",
                self.next_conversation.fetch_add(1, Ordering::Relaxed)
            )
        });
        let approved = command.approval.as_deref().is_some_and(|given| {
            !self.policy.approval_keyword.is_empty()
                && bool::from(
                    given
                        .as_bytes()
                        .ct_eq(self.policy.approval_keyword.expose().as_bytes()),
                )
        });
        let mut ctx = Ctx {
            channel: command.channel,
            client: command.client.clone(),
            conversation: conversation_id.clone(),
            approved,
            chosen: None,
        };
        let text: String = command.text.chars().take(MAX_TEXT_CHARS).collect();
        let key = ctx.key();
        let recognized = self.recognizer.recognize(&text).map(|r| r.intent);
        let (recognized, said) = match self.follow_up(&key, &text, recognized) {
            FollowUp::Run { intent, chosen } => {
                ctx.chosen = chosen;
                (Some(intent), None)
            }
            FollowUp::Say(reply) => (None, Some(reply)),
            FollowUp::Normal(recognized) => (recognized, None),
        };
        let local = match (recognized, said) {
            (_, Some(reply)) => Some(Response::local(reply)),
            (Some(intent), None) => {
                let mut response = self.run(&intent, &ctx).await;
                self.next_turn(&key, &intent, &response);
                // Unhandled here means nothing in the cluster sounds like the words: not for
                // Jarvis after all, so no intent is reported.
                if response.handled {
                    response.intent = Some(intent.name().to_owned());
                    response.slots = intent
                        .slots()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect();
                }
                Some(response)
            }
            (None, None) => {
                self.conversations.settle(&key);
                None
            }
        };
        let mut response = match local {
            Some(response) if response.handled => response,
            unhandled => match &self.llm {
                Some(llm) => llm.converse(self, &ctx, &text).await,
                None => unhandled.unwrap_or_else(|| Response {
                    handled: false,
                    source: Source::None,
                    ..Response::local(
                        "Sorry, I didn't understand that. Ask me what I can do to hear what I \
                         know.",
                    )
                }),
            },
        };
        response.conversation_id = conversation_id;
        response.pending_confirmation = self.confirmations.is_waiting(&ctx.key());

        let mut entry = audit::Entry::new("command", ctx.channel, &ctx.client);
        entry.conversation = Some(ctx.conversation.clone());
        entry.text = Some(text.clone());
        entry.intent = response
            .intent
            .clone()
            .or_else(|| (response.source == Source::Llm).then(|| "llm".to_owned()));
        entry.reply = Some(response.reply.clone());
        entry.outcome = Some(
            if response.handled {
                "handled"
            } else {
                "not understood"
            }
            .into(),
        );
        entry.duration_ms = millis(started.elapsed());
        if let Err(err) = self.audit.record(&entry) {
            warn!(cause = %err, path = %self.audit.path().display(), "cannot write the audit log");
        }
        crate::latency::record(crate::latency::Series::Intent, started.elapsed());
        info!(
            channel = %ctx.channel,
            intent = response.intent.as_deref().unwrap_or("-"),
            handled = response.handled,
            ms = millis(started.elapsed()),
            "command"
        );
        self.announce(Activity::Command {
            channel: ctx.channel,
            text,
            intent: response.intent.clone(),
            reply: response.reply.clone(),
        })
        .await;
        response
    }

    /// Runs a recognized intent (the LLM's tool calls come here too).
    pub(crate) async fn run_intent(&self, intent: &Intent, ctx: &Ctx) -> Response {
        self.run(intent, ctx).await
    }

    /// Reads `text` in the light of the conversation's last turn: an answer to the question
    /// Jarvis asked back, or the last question about something else.
    fn follow_up(&self, key: &str, text: &str, recognized: Option<Intent>) -> FollowUp {
        let waiting = self.confirmations.is_waiting(key);
        let turn = match self.conversations.recall(key) {
            Recall::Fresh(turn) => turn,
            Recall::Expired => {
                return match recognized {
                    Some(Intent::Pick { .. } | Intent::Also { .. }) => {
                        FollowUp::Say(EXPIRED.into())
                    }
                    other => FollowUp::Normal(other),
                };
            }
            Recall::Nothing => {
                return match recognized {
                    Some(Intent::Pick { .. }) => FollowUp::Say(NOTHING_TO_PICK.into()),
                    // "And nextcloud?" out of the blue: how nextcloud is.
                    Some(Intent::Also { target }) => FollowUp::Run {
                        intent: self.also(&target).unwrap_or(Intent::Status {
                            target,
                            aspect: Aspect::All,
                        }),
                        chosen: None,
                    },
                    other => FollowUp::Normal(other),
                };
            }
        };
        let cancelled = matches!(recognized, Some(Intent::Cancel)) && !waiting;
        let yes = matches!(recognized, Some(Intent::Confirm)) && !waiting;
        match (turn.ask, recognized) {
            (Some(_), _) if cancelled => {
                self.conversations.settle(key);
                FollowUp::Say("Okay.".into())
            }
            (Some(Ask::Choose { words, candidates }), recognized) => {
                match followup::pick(&super::intents::tokens(text), &candidates) {
                    Some(index) => FollowUp::Run {
                        intent: turn.intent,
                        chosen: candidates.get(index).map(|c| (words, c.target.clone())),
                    },
                    None => match recognized {
                        Some(Intent::Pick { .. }) => FollowUp::Say(format!(
                            "I only named {}. Say the name, or first, second and so on.",
                            speech::count(candidates.len().min(4), "option")
                        )),
                        other => self.follow_up_fresh(turn.intent, other),
                    },
                }
            }
            (Some(Ask::Suggest { words, candidate }), _) if yes => FollowUp::Run {
                intent: turn.intent,
                chosen: Some((words, candidate.target)),
            },
            (Some(Ask::Offer(offered)), _) if yes => FollowUp::Run {
                intent: offered,
                chosen: None,
            },
            (_, recognized) => self.follow_up_fresh(turn.intent, recognized),
        }
    }

    /// A follow-up that answers no question of Jarvis's: "and nextcloud?", or a new command.
    fn follow_up_fresh(&self, last: Intent, recognized: Option<Intent>) -> FollowUp {
        match recognized {
            Some(Intent::Also { mut target }) => match self.also(&target) {
                Some(intent) => FollowUp::Run {
                    intent,
                    chosen: None,
                },
                None => {
                    // "And on pve?": the subject without its preposition.
                    if target.len() > 1
                        && matches!(
                            target.first().map(String::as_str),
                            Some("on" | "for" | "of" | "in" | "at" | "about" | "with")
                        )
                    {
                        target.remove(0);
                    }
                    match last.with_subject(target.clone()) {
                        Some(intent) => FollowUp::Run {
                            intent,
                            chosen: None,
                        },
                        None => FollowUp::Run {
                            intent: Intent::Status {
                                target,
                                aspect: Aspect::All,
                            },
                            chosen: None,
                        },
                    }
                }
            },
            Some(Intent::Pick { .. }) => FollowUp::Say(NOTHING_TO_PICK.into()),
            other => FollowUp::Normal(other),
        }
    }

    /// "And start nextcloud": the words after "and" as a command of their own, when they are
    /// one.
    fn also(&self, words: &[String]) -> Option<Intent> {
        self.recognizer
            .recognize(&words.join(" "))
            .map(|r| r.intent)
            .filter(|i| !matches!(i, Intent::Also { .. } | Intent::Pick { .. }))
    }

    /// Remembers the turn for the next follow-up.
    fn next_turn(&self, key: &str, intent: &Intent, response: &Response) {
        let remembered = response.handled
            && !matches!(
                intent,
                Intent::Confirm
                    | Intent::Cancel
                    | Intent::Ping
                    | Intent::Help
                    | Intent::Pick { .. }
                    | Intent::Also { .. }
                    | Intent::Forbidden { .. }
            );
        if remembered {
            self.conversations.remember(
                key,
                Turn {
                    intent: intent.clone(),
                    ask: response.ask.clone(),
                },
            );
        } else {
            self.conversations.settle(key);
        }
    }

    async fn run(&self, intent: &Intent, ctx: &Ctx) -> Response {
        match intent {
            Intent::Ping => return Response::local(self.ping()),
            Intent::Help => return Response::local(HELP),
            Intent::Confirm => return self.confirm(ctx).await,
            Intent::Cancel => return self.cancel(ctx),
            Intent::Forbidden { what } => {
                let reply = if *what == "delete" {
                    "I never delete or destroy anything. Do that in the Proxmox web interface."
                } else {
                    "I never run shell commands. Use the Proxmox console for that."
                };
                let mut entry = audit::Entry::new("action", ctx.channel, &ctx.client);
                entry.conversation = Some(ctx.conversation.clone());
                entry.decision = Some(Decision::Refused);
                entry.outcome = Some(format!("forbidden: {what}"));
                if let Err(err) = self.audit.record(&entry) {
                    warn!(cause = %err, "cannot write the audit log");
                }
                return Response::local(reply);
            }
            Intent::Seen { .. }
            | Intent::LastSeen { .. }
            | Intent::CountSeen { .. }
            | Intent::WhoIsAt { .. }
            | Intent::Summary { .. }
            | Intent::FrigateStatus => {
                return Response::local(super::recall::answer(self.memory.as_ref(), intent).await);
            }
            _ => {}
        }
        let Some(proxmox) = &self.proxmox else {
            return Response::local(NO_PROXMOX);
        };
        if intent.acts() {
            // Never cut short once a request may have reached Proxmox; the reads before it
            // have their own deadline.
            return self.run_cluster(intent, ctx, proxmox).await;
        }
        match tokio::time::timeout(self.answer_timeout, self.run_cluster(intent, ctx, proxmox))
            .await
        {
            Ok(response) => response,
            Err(_) => {
                warn!(
                    ms = millis(self.answer_timeout),
                    intent = intent.name(),
                    "proxmox did not answer in time (proxmox.answer_timeout_ms)"
                );
                Response::local(NOT_ANSWERING)
            }
        }
    }

    /// An intent that needs the cluster.
    async fn run_cluster(&self, intent: &Intent, ctx: &Ctx, proxmox: &Proxmox) -> Response {
        let found = tokio::time::timeout(self.answer_timeout, self.directory(proxmox)).await;
        let (inventory, directory) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => return Response::local(err.spoken()),
            Err(_) => return Response::local(NOT_ANSWERING),
        };
        match intent {
            // Answered above, without the cluster.
            Intent::Seen { .. }
            | Intent::LastSeen { .. }
            | Intent::CountSeen { .. }
            | Intent::WhoIsAt { .. }
            | Intent::Summary { .. }
            | Intent::FrigateStatus => {
                Response::local(super::recall::answer(self.memory.as_ref(), intent).await)
            }
            Intent::ClusterOverview => {
                let status = proxmox.cluster_status().await.ok();
                Response::local(overview(&inventory, status.as_deref()))
            }
            Intent::Status { target, aspect } => {
                match ctx.resolve(&directory, target, Kinds::ANY) {
                    Ok(Target::Node(name)) => Response::local(
                        self.describe_node(proxmox, &inventory, &name, *aspect)
                            .await,
                    ),
                    Ok(Target::Guest(vmid)) => match inventory.guest(vmid) {
                        Some(guest) => Response::local(describe_guest(guest, *aspect)),
                        None => Response::local(format!("There's no guest with ID {vmid}.")),
                    },
                    Ok(Target::Storage(id)) => {
                        Response::local(describe_storages(&inventory, Some(&id), None))
                    }
                    Err(unresolved) => unresolved.into(),
                }
            }
            Intent::ListGuests { state, kind, node } => {
                let node = match node {
                    Some(words) => match ctx.resolve(&directory, words, Kinds::NODES) {
                        Ok(Target::Node(name)) => Some(name),
                        Ok(_) => None,
                        Err(unresolved) => return unresolved.into(),
                    },
                    None => None,
                };
                Response::local(list_guests(&inventory, *state, *kind, node.as_deref()))
            }
            Intent::Storage { target } => match target {
                None => Response::local(describe_storages(&inventory, None, None)),
                Some(words) => {
                    let kinds = Kinds {
                        nodes: true,
                        guests: false,
                        storages: true,
                        memory: false,
                    };
                    match ctx.resolve(&directory, words, kinds) {
                        Ok(Target::Storage(id)) => {
                            Response::local(describe_storages(&inventory, Some(&id), None))
                        }
                        Ok(Target::Node(node)) => {
                            Response::local(describe_storages(&inventory, None, Some(&node)))
                        }
                        Ok(Target::Guest(_)) => {
                            Response::local(describe_storages(&inventory, None, None))
                        }
                        Err(unresolved) => unresolved.into(),
                    }
                }
            },
            Intent::Action { action, guest } => match ctx.resolve(&directory, guest, Kinds::ANY) {
                Ok(Target::Guest(vmid)) => {
                    let report = self
                        .act(ActionRequest::guest(
                            ctx.channel,
                            ctx.client.clone(),
                            Some(ctx.conversation.clone()),
                            vmid,
                            *action,
                            ctx.approved,
                        ))
                        .await;
                    // "There's nothing to reboot. Shall I start it?": "yes" starts it.
                    let offer = (*action == GuestAction::Reboot
                        && report.task.is_none()
                        && report.decision == Decision::Allowed
                        && inventory
                            .guest(vmid)
                            .is_some_and(|g| g.status == GuestState::Stopped))
                    .then(|| {
                        Ask::Offer(Intent::Action {
                            action: GuestAction::Start,
                            guest: vec![vmid.to_string()],
                        })
                    });
                    Response {
                        actions: vec![report.clone()],
                        ask: offer,
                        ..Response::local(report.reply)
                    }
                }
                Ok(Target::Node(name)) => {
                    super::operations::power_node_said(self, &name, *action, ctx).await
                }
                Ok(Target::Storage(id)) => {
                    Response::local(format!("{id} is a storage, not a VM or container."))
                }
                Err(unresolved) => unresolved.into(),
            },
            Intent::NodePower { .. }
            | Intent::ListSnapshots { .. }
            | Intent::TakeSnapshot { .. }
            | Intent::Rollback { .. }
            | Intent::Migrate { .. } => {
                super::operations::run(self, proxmox, &directory, intent, ctx).await
            }
            Intent::Disks { ask, target } => {
                let target = target.as_deref();
                let asked =
                    super::disks::answer(proxmox, &inventory, &directory, *ask, target, ctx);
                match asked.await {
                    Ok(reply) => Response::local(reply),
                    Err(unresolved) => unresolved.into(),
                }
            }
            Intent::BackupJob { .. }
            | Intent::LastBackup { .. }
            | Intent::StaleBackups { .. }
            | Intent::FailedTasks { .. } => {
                match super::backups::answer(
                    proxmox,
                    &inventory,
                    &directory,
                    intent,
                    self.memory.as_ref(),
                    ctx,
                )
                .await
                {
                    Ok(reply) => Response::local(reply),
                    Err(unresolved) => unresolved.into(),
                }
            }
            Intent::Ping
            | Intent::Help
            | Intent::Confirm
            | Intent::Cancel
            | Intent::Pick { .. }
            | Intent::Also { .. }
            | Intent::Forbidden { .. } => Response::local(HELP),
        }
    }

    fn ping(&self) -> String {
        match &self.proxmox {
            None => "I'm here. Proxmox isn't set up yet.".into(),
            Some(proxmox) => {
                let health = proxmox.health();
                if health.last_error.is_some() && !health.reachable {
                    "I'm here, but I can't reach Proxmox right now.".into()
                } else {
                    "I'm here.".into()
                }
            }
        }
    }

    async fn confirm(&self, ctx: &Ctx) -> Response {
        match self.confirmations.take(&ctx.key()) {
            Ok(pending) => {
                let mut request = pending.request;
                request.approved = true;
                let report = self.act(request).await;
                Response {
                    actions: vec![report.clone()],
                    ..Response::local(report.reply)
                }
            }
            Err(ConfirmError::Nothing) => {
                Response::local("There's nothing waiting for a confirmation.")
            }
            Err(ConfirmError::Expired(pending)) => Response::local(format!(
                "That confirmation came too late, so I did nothing. Ask again if you still want \
                 me to {}.",
                self.phrase(&pending.request.action)
            )),
        }
    }

    fn cancel(&self, ctx: &Ctx) -> Response {
        match self.confirmations.take(&ctx.key()) {
            Ok(pending) => Response::local(format!(
                "Okay, I won't {}.",
                self.phrase(&pending.request.action)
            )),
            Err(ConfirmError::Expired(pending)) => Response::local(format!(
                "Okay, I won't {}.",
                self.phrase(&pending.request.action)
            )),
            Err(ConfirmError::Nothing) => Response::local("Okay."),
        }
    }

    /// What an action does, with its target's name: "stop media-server", "reboot pve".
    fn phrase(&self, action: &Action) -> String {
        policy::phrase(action, &self.target_name(action))
    }

    /// The name of what an action acts on: the node, or the guest.
    fn target_name(&self, action: &Action) -> String {
        match (action, action.vmid()) {
            (Action::Node { node, .. }, _) => node.clone(),
            (_, Some(vmid)) => self.guest_name(vmid),
            (_, None) => String::new(),
        }
    }

    /// The actions waiting for a confirmation, on every channel, oldest first: the panel
    /// shows them with Confirm and Cancel buttons.
    pub fn waiting_confirmations(&self) -> Vec<super::types::Waiting> {
        self.confirmations
            .waiting()
            .into_iter()
            .map(|(key, pending, left)| super::types::Waiting {
                vmid: pending.request.action.vmid(),
                guest: self.target_name(&pending.request.action),
                action: pending.request.action.kind(),
                channel: pending.request.channel,
                question: pending.question,
                expires_in_secs: left.as_secs(),
                id: key,
            })
            .collect()
    }

    /// Settles the action waiting under `id` (from [`Brain::waiting_confirmations`]) from the
    /// panel: confirmed, it is judged again as a request of `Channel::Panel` from `client` (so
    /// `policy.channels.panel` caps it) and carried out; cancelled, it is dropped. Audited and
    /// announced as any other action.
    pub async fn settle_from_panel(&self, id: &str, confirm: bool, client: &str) -> Response {
        match self.confirmations.take(id).map_err(|err| match err {
            ConfirmError::Expired(pending) => Some(*pending),
            ConfirmError::Nothing => None,
        }) {
            Ok(pending) if confirm => {
                let mut request = pending.request;
                request.channel = Channel::Panel;
                request.client = client.to_owned();
                request.approved = true;
                let report = self.act(request).await;
                Response {
                    actions: vec![report.clone()],
                    ..Response::local(report.reply)
                }
            }
            Ok(pending) | Err(Some(pending)) if !confirm => {
                let reply = format!("Okay, I won't {}.", self.phrase(&pending.request.action));
                // Audited as the spoken "cancel" would be.
                let mut entry = audit::Entry::new("command", Channel::Panel, client);
                entry.conversation.clone_from(&pending.request.conversation);
                entry.text = Some("cancel".into());
                entry.intent = Some("Cancel".into());
                entry.action = Some(pending.request.action.kind());
                entry.vmid = pending.request.action.vmid();
                if let Action::Node { node, .. } = &pending.request.action {
                    entry.node = Some(node.clone());
                }
                entry.outcome = Some("cancelled".into());
                entry.reply = Some(reply.clone());
                if let Err(err) = self.audit.record(&entry) {
                    warn!(cause = %err, path = %self.audit.path().display(), "cannot write the audit log");
                }
                Response::local(reply)
            }
            Err(Some(pending)) => Response::local(format!(
                "That confirmation came too late, so I did nothing. Ask again if you still want \
                 me to {}.",
                self.phrase(&pending.request.action)
            )),
            Ok(_) | Err(None) => Response::local("There's nothing waiting for a confirmation."),
        }
    }

    fn guest_name(&self, vmid: u32) -> String {
        self.proxmox
            .as_ref()
            .and_then(Proxmox::cached_inventory)
            .and_then(|(inv, _)| inv.guest(vmid).map(|g| g.name.clone()))
            .unwrap_or_else(|| format!("guest {vmid}"))
    }

    /// Decides an action under the policy and, if allowed, carries it out and waits for the
    /// Proxmox task. MQTT buttons call this directly; voice and HTTP reach it through
    /// [`Brain::command`]. The decision and outcome are in the audit log before this returns.
    pub async fn act(&self, request: ActionRequest) -> ActionReport {
        // A standby brain acts on nothing (checked again just before Proxmox is asked).
        if let Some(reason) = self.lease_refusal() {
            return self.record_refusal(request, reason).await;
        }
        let started = Instant::now();
        let (report, task) = self.decide_and_act(&request).await;
        self.record(&request, report, task, started).await
    }

    /// An action refused before the policy saw it (a snapshot name Proxmox would refuse, a
    /// snapshot that does not exist): audited and announced like any other.
    pub(super) async fn record_refusal(
        &self,
        request: ActionRequest,
        reason: String,
    ) -> ActionReport {
        let outcome = Some(format!("refused: {reason}"));
        let mut report = ActionReport::new(&request.action, Decision::Refused, reason);
        report.guest = request.action.vmid().map(|vmid| self.guest_name(vmid));
        self.record(&request, report, outcome, Instant::now()).await
    }

    /// Writes an action's decision and outcome to the audit log and announces it.
    async fn record(
        &self,
        request: &ActionRequest,
        report: ActionReport,
        task: Option<String>,
        started: Instant,
    ) -> ActionReport {
        let mut entry = audit::Entry::new("action", request.channel, &request.client);
        entry.conversation.clone_from(&request.conversation);
        entry.decision = Some(report.decision);
        entry.action = Some(report.action);
        entry.vmid = report.vmid;
        entry.guest.clone_from(&report.guest);
        entry.node.clone_from(&report.node);
        entry.snapshot.clone_from(&report.snapshot);
        entry.target.clone_from(&report.target);
        entry.task = report.task.as_ref().map(|t| t.upid.clone());
        entry.outcome = task;
        entry.reply = Some(report.reply.clone());
        entry.duration_ms = millis(started.elapsed());
        if let Err(err) = self.audit.record(&entry) {
            warn!(cause = %err, path = %self.audit.path().display(), "cannot write the audit log");
        }
        info!(
            channel = %request.channel,
            vmid = report.vmid,
            node = report.node.as_deref(),
            action = %report.action,
            decision = ?report.decision,
            "action"
        );
        self.announce(Activity::Action {
            channel: request.channel,
            report: report.clone(),
        })
        .await;
        report
    }

    /// The report, and the outcome words for the log.
    async fn decide_and_act(&self, request: &ActionRequest) -> (ActionReport, Option<String>) {
        let &Action::Power { vmid, action } = &request.action else {
            return super::operations::decide_and_act(self, request).await;
        };
        let report = |guest: Option<&Guest>, decision: Decision, reply: String| ActionReport {
            guest: guest.map(|g| g.name.clone()),
            ..ActionReport::new(&request.action, decision, reply)
        };
        let refuse = |guest: Option<&Guest>, reply: String| {
            let outcome = Some(format!("refused: {reply}"));
            (report(guest, Decision::Refused, reply), outcome)
        };
        let Some(proxmox) = &self.proxmox else {
            return refuse(None, NO_PROXMOX.into());
        };
        if !VMIDS.contains(&vmid) {
            return refuse(
                None,
                format!(
                    "{} isn't a valid VM ID; Proxmox IDs go from 100 to 999999999.",
                    vmid
                ),
            );
        }
        let inventory = match tokio::time::timeout(self.answer_timeout, proxmox.inventory()).await {
            Ok(Ok(inventory)) => inventory,
            Ok(Err(err)) => return refuse(None, err.spoken()),
            Err(_) => return refuse(None, format!("{NOT_ANSWERING} I did nothing.")),
        };
        let Some(guest) = inventory.guest(vmid) else {
            return refuse(None, format!("There's no guest with ID {}.", vmid));
        };
        let verb = policy::verb(action);
        let verdict = policy::judge(&self.policy, request, guest);
        if let Verdict::Refuse(reason) = verdict {
            return refuse(Some(guest), reason);
        }
        if let Some(reply) = already(guest, action) {
            return (
                report(Some(guest), Decision::Allowed, reply),
                Some("nothing to do".into()),
            );
        }
        if !self.audit.is_writable() {
            return refuse(
                Some(guest),
                format!(
                    "I can't {verb} {} because my audit log can't be written. Fix audit.path \
                     first.",
                    guest.name
                ),
            );
        }
        if verdict == Verdict::Confirm {
            let Some(conversation) = &request.conversation else {
                return refuse(
                    Some(guest),
                    format!(
                        "To {verb} {} I need a confirmation, and this request has no \
                         conversation to confirm in.",
                        guest.name
                    ),
                );
            };
            let question = format!(
                "{} {} on {}? Say confirm within {} seconds.",
                capitalize(verb),
                guest.name,
                guest.node,
                self.confirmations.timeout().as_secs()
            );
            let key = Ctx::key_of(request.channel, conversation);
            self.confirmations
                .ask(&key, request.clone(), question.clone());
            return (
                report(Some(guest), Decision::NeedsConfirmation, question),
                Some("waiting for confirmation".into()),
            );
        }
        // The lease may have passed while Proxmox was asked about the guest.
        if let Some(reason) = self.lease_refusal() {
            return refuse(Some(guest), reason);
        }
        let upid = match proxmox.guest_action(&guest.reference(), action).await {
            Ok(upid) => upid,
            Err(err) => {
                let reply = action_error(&err, verb, &guest.name);
                let outcome = Some(format!("failed: {err}"));
                return (report(Some(guest), Decision::Allowed, reply), outcome);
            }
        };
        let outcome = proxmox.wait_task(&upid).await;
        let reply = match &outcome.result {
            TaskResult::Ok => done(guest, action),
            TaskResult::Warnings { count } => format!(
                "{} ({} from Proxmox).",
                done(guest, action).trim_end_matches('.'),
                speech::count(*count as usize, "warning")
            ),
            TaskResult::Failed { message } => {
                format!("Proxmox couldn't {verb} {}: {message}.", guest.name)
            }
            TaskResult::TimedOut => format!(
                "I asked Proxmox to {verb} {}, but it hasn't finished yet.",
                guest.name
            ),
        };
        let words = audit::outcome(&outcome.result);
        let mut report = report(Some(guest), Decision::Allowed, reply);
        report.task = Some(outcome);
        (report, Some(words))
    }

    /// The inventory and its name index (rebuilt only when the snapshot changes).
    async fn directory(
        &self,
        proxmox: &Proxmox,
    ) -> Result<(Arc<Inventory>, Arc<Directory>), ProxmoxError> {
        let inventory = proxmox.inventory().await?;
        let directory = self.directory_of(&inventory);
        Ok((inventory, directory))
    }

    async fn describe_node(
        &self,
        proxmox: &Proxmox,
        inventory: &Inventory,
        name: &str,
        aspect: Aspect,
    ) -> String {
        let Some(node) = inventory.node(name) else {
            return format!("I don't know a node called {name}.");
        };
        if node.status != NodeState::Online {
            return format!("{name} is {}.", node_state(node.status));
        }
        let want_status = matches!(aspect, Aspect::All | Aspect::Load | Aspect::Memory);
        let want_updates = matches!(aspect, Aspect::All | Aspect::Updates);
        let (status, updates) = tokio::join!(
            async {
                if want_status {
                    proxmox.node_status(name).await.ok()
                } else {
                    None
                }
            },
            async {
                if want_updates {
                    Some(proxmox.pending_updates(name).await)
                } else {
                    None
                }
            }
        );
        let mem = status
            .as_ref()
            .and_then(|s| s.memory_used.zip(s.memory_total))
            .or(node.mem.zip(node.maxmem));
        let memory = mem.map(|(used, total)| {
            format!(
                "memory {} ({})",
                speech::used_of(used, total),
                speech::percent(used as f64 / total.max(1) as f64)
            )
        });
        let load = status.as_ref().and_then(|s| s.loadavg);
        let updates_words = |n: usize| match n {
            0 => format!("{name} is up to date."),
            1 => format!("{name} has 1 pending update."),
            n => format!("{name} has {n} pending updates."),
        };
        match aspect {
            Aspect::All => {
                let mut parts = Vec::new();
                if let Some(cpu) = node.cpu {
                    parts.push(format!("CPU at {}", speech::percent(cpu)));
                }
                parts.extend(memory);
                if let Some(load) = load {
                    parts.push(format!("load {:.2}", load[0]));
                }
                let mut reply = format!("{name} is online");
                if let Some(up) = node.uptime {
                    reply.push_str(&format!(", up {}", speech::duration(up)));
                }
                if parts.is_empty() {
                    reply.push('.');
                } else {
                    reply.push_str(&format!(": {}.", parts.join(", ")));
                }
                if let Some(Ok(n)) = updates {
                    if n > 0 {
                        reply.push(' ');
                        reply.push_str(&updates_words(n).replacen(name, "It", 1));
                    }
                }
                reply
            }
            Aspect::Running => format!("Yes, {name} is online."),
            Aspect::Memory => match mem {
                Some((used, total)) => format!(
                    "{name} is using {} of memory, {}.",
                    speech::used_of(used, total),
                    speech::percent(used as f64 / total.max(1) as f64)
                ),
                None => format!(
                    "Proxmox doesn't tell me {name}'s memory; the token may lack Sys.Audit."
                ),
            },
            Aspect::Cpu => match node.cpu {
                Some(cpu) => format!(
                    "{name}'s CPU is at {}{}.",
                    speech::percent(cpu),
                    node.maxcpu
                        .map(|n| format!(" across {}", speech::count(n as usize, "core")))
                        .unwrap_or_default()
                ),
                None => format!("Proxmox doesn't tell me {name}'s CPU use."),
            },
            Aspect::Uptime => match node.uptime {
                Some(up) => format!("{name} has been up for {}.", speech::duration(up)),
                None => format!("Proxmox doesn't tell me {name}'s uptime."),
            },
            Aspect::Load => match load {
                Some([a, b, c]) => format!(
                    "{name}'s load average is {a:.2}, {b:.2} and {c:.2} over 1, 5 and 15 minutes."
                ),
                None => format!("I couldn't get {name}'s load average."),
            },
            Aspect::Updates => match updates {
                Some(Ok(n)) => updates_words(n),
                Some(Err(err)) => format!("I couldn't check {name} for updates: {}", err.spoken()),
                None => format!("I couldn't check {name} for updates."),
            },
            Aspect::Disk => match node.disk.zip(node.maxdisk) {
                Some((used, total)) => format!(
                    "{name}'s root disk has {} used, {}.",
                    speech::used_of(used, total),
                    speech::percent(used as f64 / total.max(1) as f64)
                ),
                None => format!("Proxmox doesn't tell me {name}'s disk use."),
            },
        }
    }
}

/// The most nodes, guests, storages and memory names a speech grammar is built for (see
/// [`Brain::speech_grammar`]): past it, each change of names would cost more than ~130 ms of
/// a core in the background and the grammar more than ~7 MB.
pub const MAX_GRAMMAR_NAMES: usize = 2000;

/// Speech recognition's names in the order of [`Brain::vocabulary`], each once: memory names
/// written with spaces ("front_door" is said "front door").
fn names_in_order(
    inventory: Option<&Inventory>,
    memory: &crate::events::Vocabulary,
) -> Vec<String> {
    let memory = memory
        .cameras
        .iter()
        .chain(&memory.zones)
        .chain(&memory.sub_labels)
        .map(|name| name.replace(['_', '-'], " "));
    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::new();
    let mut add = |name: String| {
        if seen.insert(name.clone()) {
            names.push(name);
        }
    };
    let empty = Inventory::default();
    let inventory = inventory.unwrap_or(&empty);
    inventory
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .for_each(&mut add);
    inventory
        .storages
        .iter()
        .map(|s| s.storage.clone())
        .for_each(&mut add);
    memory.for_each(&mut add);
    inventory
        .guests
        .iter()
        .filter(|g| !g.template)
        .map(|g| g.name.clone())
        .for_each(&mut add);
    names
}

/// A value built from an inventory's names (and `K`, what else it is built from), with the
/// snapshot it was last found valid for.
type PerSnapshot<T, K = ()> = Mutex<Option<Cached<T, K>>>;

#[derive(Debug)]
struct Cached<T, K> {
    inventory: Arc<Inventory>,
    extra: K,
    value: Arc<T>,
}

/// What `slot` holds for `inventory` and `extra`, built (and kept) only when the names differ
/// from those it was built for. The MQTT poll fetches a new snapshot every `mqtt.poll_secs`
/// and the names in it rarely change: rebuilding for every snapshot made the first command
/// after each poll rebuild the name index (in the soak, 1000 guests: every such command took
/// 10-15 ms instead of 1) and the first speech request rebuild the grammar.
fn per_snapshot<T, K: PartialEq>(
    slot: &PerSnapshot<T, K>,
    inventory: &Arc<Inventory>,
    extra: K,
    build: impl FnOnce(&Inventory, &K) -> T,
) -> Arc<T> {
    if let Ok(current) = cached_for(slot, inventory, &extra) {
        return current;
    }
    let value = Arc::new(build(inventory, &extra));
    keep(slot, Arc::clone(inventory), extra, Arc::clone(&value));
    value
}

/// What `slot` holds when it was built for the names of `inventory` and for `extra` (`Ok`; the
/// slot then remembers `inventory` as its snapshot, which makes the next look-up a pointer
/// comparison), or else what it holds for other names (`Err`, `None` before the first build).
fn cached_for<T, K: PartialEq>(
    slot: &PerSnapshot<T, K>,
    inventory: &Arc<Inventory>,
    extra: &K,
) -> Result<Arc<T>, Option<Arc<T>>> {
    let Ok(mut cached) = slot.lock() else {
        return Err(None);
    };
    let Some(cached) = cached.as_mut() else {
        return Err(None);
    };
    if cached.extra == *extra
        && (Arc::ptr_eq(&cached.inventory, inventory) || same_names(&cached.inventory, inventory))
    {
        cached.inventory = Arc::clone(inventory);
        Ok(Arc::clone(&cached.value))
    } else {
        Err(Some(Arc::clone(&cached.value)))
    }
}

/// Puts `value`, built for `inventory` and `extra`, in `slot`.
fn keep<T, K>(slot: &PerSnapshot<T, K>, inventory: Arc<Inventory>, extra: K, value: Arc<T>) {
    if let Ok(mut cached) = slot.lock() {
        *cached = Some(Cached {
            inventory,
            extra,
            value,
        });
    }
}

/// The speech grammar, and whether a build of it is under way: built off the request path
/// ([`Brain::speech_grammar`]; 60 ms at 1000 guests held up the speech request that first saw
/// the names changed, and the tokio worker it ran on).
#[derive(Debug, Default)]
struct GrammarSlot {
    cached: PerSnapshot<crate::stt::grammar::SpeechGrammar, crate::events::Vocabulary>,
    building: std::sync::atomic::AtomicBool,
}

impl GrammarSlot {
    /// Starts building the grammar for `inventory` and `memory` on a thread of its own, unless
    /// a build is already under way (the next look-up after it starts another if the names
    /// changed meanwhile).
    fn build_in_background(
        self: &Arc<Self>,
        recognizer: &Arc<Recognizer>,
        inventory: Arc<Inventory>,
        memory: crate::events::Vocabulary,
    ) {
        if self.building.swap(true, Ordering::AcqRel) {
            return;
        }
        // Cleared when the build ends, however it ends (a panic included).
        struct Building(Arc<GrammarSlot>);
        impl Drop for Building {
            fn drop(&mut self) {
                self.0.building.store(false, Ordering::Release);
            }
        }
        let building = Building(Arc::clone(self));
        let recognizer = Arc::clone(recognizer);
        let started = std::thread::Builder::new()
            .name("grammar".into())
            .spawn(move || {
                crate::priority::lower_current_thread();
                let built = Instant::now();
                let grammar = super::speech_grammar::build(&recognizer, &inventory, &memory);
                tracing::debug!(
                    rules = grammar.len(),
                    ms = built.elapsed().as_millis(),
                    "speech grammar built"
                );
                keep(&building.0.cached, inventory, memory, Arc::new(grammar));
            });
        if let Err(err) = started {
            // The closure, and with it the flag's guard, was dropped: the next look-up retries.
            warn!(%err, "cannot start building the speech grammar; speech is decoded without it");
        }
    }
}

/// Whether two snapshots name the same nodes, guests (with their IDs, kinds and template
/// flags) and storages in the same order: all that the name index, the vocabulary and the
/// speech grammar are built from.
fn same_names(a: &Inventory, b: &Inventory) -> bool {
    a.nodes.len() == b.nodes.len()
        && a.guests.len() == b.guests.len()
        && a.storages.len() == b.storages.len()
        && a.nodes.iter().zip(&b.nodes).all(|(x, y)| x.name == y.name)
        && a.guests.iter().zip(&b.guests).all(|(x, y)| {
            x.vmid == y.vmid && x.kind == y.kind && x.template == y.template && x.name == y.name
        })
        && a.storages
            .iter()
            .zip(&b.storages)
            .all(|(x, y)| x.storage == y.storage)
}

/// Who is asking, in one command.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) channel: Channel,
    pub(crate) client: String,
    pub(crate) conversation: String,
    pub(crate) approved: bool,
    /// The answer to "which one do you mean?" or "did you mean ...?": the words that were
    /// unclear and what they turned out to mean.
    pub(crate) chosen: Option<(Vec<String>, Target)>,
}

/// How a sentence relates to the conversation's last turn.
enum FollowUp {
    /// Run this intent (an earlier one, with the unclear words now clear).
    Run {
        intent: Intent,
        chosen: Option<(Vec<String>, Target)>,
    },
    /// Say this.
    Say(String),
    /// Not a follow-up: the sentence as recognized.
    Normal(Option<Intent>),
}

impl Ctx {
    /// [`resolve`], with the conversation's answer to an earlier "which one" for the same
    /// words.
    pub(super) fn resolve(
        &self,
        directory: &Directory,
        words: &[String],
        kinds: Kinds,
    ) -> Result<Target, Unresolved> {
        if let Some((unclear, target)) = &self.chosen {
            if unclear.as_slice() == words && kinds.accepts(target) {
                return Ok(target.clone());
            }
        }
        resolve(directory, words, kinds)
    }

    /// Confirmations are kept per channel and conversation: a "confirm" from another
    /// conversation (or channel) finds nothing.
    fn key(&self) -> String {
        Self::key_of(self.channel, &self.conversation)
    }

    pub(super) fn key_of(channel: Channel, conversation: &str) -> String {
        format!("{channel}:{conversation}")
    }
}

pub(super) const NOT_ANSWERING: &str = "Proxmox isn't answering right now. I'll keep trying; ask me again in a \
     moment.";

const EXPIRED: &str = "That conversation has expired, so I've lost track of what we were talking \
     about. Ask me again in full.";

const NOTHING_TO_PICK: &str = "I didn't ask you to choose anything. Ask me again in full.";

pub(super) const NO_PROXMOX: &str = "Proxmox isn't set up yet. Add a proxmox section with the node URLs and an API token to my \
     configuration.";

const HELP: &str = "I look after your Proxmox cluster. Ask me how the cluster is doing, the \
     status, memory, CPU, uptime or updates of a node or guest, which guests are running, or how \
     full the storage is. I can also start, shut down, stop or reboot a VM or container; for the \
     last three I'll ask you to confirm. I can list, take and roll back snapshots, move a guest \
     to another node, and reboot or shut down a node or start and stop all its guests, asking \
     first for all but a new snapshot. Ask me whether last night's backups worked, which guests \
     have no recent backup, whether anything failed today, and whether your disks and ZFS pools \
     are healthy.";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Why words did not resolve to one target.
#[derive(Debug, Clone)]
pub(crate) struct Unresolved {
    /// What to say instead.
    reply: String,
    /// Nothing at all resembled the words: the command was probably not meant for Jarvis
    /// ("turn on the kitchen lights"), so it is not handled (HA reports it, or the LLM gets it).
    nothing_like_it: bool,
    /// The question asked back ("which one", "did you mean"), for the follow-up.
    ask: Option<Ask>,
}

impl From<Unresolved> for Response {
    fn from(u: Unresolved) -> Self {
        if u.nothing_like_it {
            Self {
                handled: false,
                source: Source::None,
                ..Self::local(u.reply)
            }
        } else {
            Self {
                ask: u.ask,
                ..Self::local(u.reply)
            }
        }
    }
}

impl From<String> for Unresolved {
    fn from(reply: String) -> Self {
        Self {
            reply,
            nothing_like_it: false,
            ask: None,
        }
    }
}

/// Turns a resolution into a target, or the sentence to say instead.
pub(crate) fn resolve(
    directory: &Directory,
    words: &[String],
    kinds: Kinds,
) -> Result<Target, Unresolved> {
    let said = words.join(" ");
    let what = if kinds == Kinds::NODES {
        "node"
    } else if kinds == Kinds::GUESTS {
        "guest"
    } else {
        "node, guest or storage"
    };
    match directory.resolve(words, kinds) {
        Resolution::Found(target) => Ok(target),
        Resolution::Ambiguous(candidates) => {
            let names: Vec<String> = candidates.iter().map(|c| c.name.clone()).collect();
            Err(Unresolved {
                reply: format!(
                    "Which one do you mean: {}?",
                    speech::list(&names, 4).replacen(" and ", " or ", 1)
                ),
                nothing_like_it: false,
                ask: Some(Ask::Choose {
                    words: words.to_vec(),
                    candidates,
                }),
            })
        }
        Resolution::Unknown {
            suggestion: Some(candidate),
        } => Err(Unresolved {
            reply: format!(
                "I don't know a {what} called {said}. Did you mean {}?",
                candidate.name
            ),
            nothing_like_it: false,
            ask: Some(Ask::Suggest {
                words: words.to_vec(),
                candidate,
            }),
        }),
        Resolution::Unknown { suggestion: None } => Err(Unresolved {
            reply: format!("I don't know a {what} called {said}."),
            nothing_like_it: true,
            ask: None,
        }),
        Resolution::NoSuchId(id) if !VMIDS.contains(&id) => {
            Err(format!("{id} isn't a valid VM ID; Proxmox IDs go from 100 to 999999999.").into())
        }
        Resolution::NoSuchId(id) => Err(format!("There's no guest with ID {id}.").into()),
    }
}

fn node_state(state: NodeState) -> &'static str {
    match state {
        NodeState::Online => "online",
        NodeState::Offline => "offline",
        NodeState::Unknown => "in an unknown state",
    }
}

fn kind_name(kind: GuestKind) -> &'static str {
    kind.spoken()
}

/// "already running" and friends: an action that would change nothing.
fn already(guest: &Guest, action: GuestAction) -> Option<String> {
    match (action, guest.status) {
        (GuestAction::Start, GuestState::Running) => {
            Some(format!("{} is already running.", guest.name))
        }
        (GuestAction::Shutdown | GuestAction::Stop, GuestState::Stopped) => {
            Some(format!("{} is already stopped.", guest.name))
        }
        (GuestAction::Reboot, GuestState::Stopped) => Some(format!(
            "{} isn't running, so there's nothing to reboot. Shall I start it?",
            guest.name
        )),
        _ => None,
    }
}

fn done(guest: &Guest, action: GuestAction) -> String {
    match action {
        GuestAction::Start => format!("{} has started.", guest.name),
        GuestAction::Shutdown => format!("{} has shut down.", guest.name),
        GuestAction::Stop => format!("{} is stopped.", guest.name),
        GuestAction::Reboot => format!("{} is rebooting.", guest.name),
    }
}

fn action_error(err: &ProxmoxError, verb: &str, name: &str) -> String {
    match err {
        ProxmoxError::Forbidden { .. } => format!(
            "Proxmox won't let me {verb} {name}: my API token lacks the VM.PowerMgmt permission."
        ),
        ProxmoxError::Server { message, .. } => {
            format!(
                "Proxmox couldn't {verb} {name}: {}.",
                message.trim_end_matches('.')
            )
        }
        other => other.spoken(),
    }
}

fn describe_guest(guest: &Guest, aspect: Aspect) -> String {
    let name = &guest.name;
    let what = format!("{} {}", kind_name(guest.kind), guest.vmid);
    let running = guest.status == GuestState::Running;
    let memory = guest
        .mem
        .zip(guest.maxmem)
        .map(|(used, total)| format!("memory {}", speech::used_of(used, total)));
    match aspect {
        Aspect::All | Aspect::Load | Aspect::Updates => {
            let mut reply = if guest.template {
                format!("{name}, {what}, is a template on {}.", guest.node)
            } else {
                format!(
                    "{name}, {what} on {}, is {}",
                    guest.node,
                    guest.status.as_str()
                )
            };
            if !guest.template {
                let mut parts = Vec::new();
                if running {
                    if let Some(cpu) = guest.cpu {
                        parts.push(format!("CPU {}", speech::percent(cpu)));
                    }
                    parts.extend(memory);
                    if let Some(up) = guest.uptime.filter(|u| *u > 0) {
                        parts.push(format!("up {}", speech::duration(up)));
                    }
                }
                if parts.is_empty() {
                    reply.push('.');
                } else {
                    reply.push_str(&format!(": {}.", parts.join(", ")));
                }
            }
            if let Some(lock) = &guest.lock {
                reply.push_str(&format!(" It is locked ({lock})."));
            }
            if matches!(aspect, Aspect::Load | Aspect::Updates) {
                reply.push_str(" Load and updates I only know for nodes.");
            }
            reply
        }
        Aspect::Running => match guest.status {
            GuestState::Running => format!("Yes, {name} is running on {}.", guest.node),
            GuestState::Stopped => format!("No, {name} is stopped."),
            GuestState::Paused => format!("{name} is paused."),
            GuestState::Unknown => format!("Proxmox doesn't know whether {name} is running."),
        },
        Aspect::Memory if running => match guest.mem.zip(guest.maxmem) {
            Some((used, total)) => format!(
                "{name} is using {} of memory, {}.",
                speech::used_of(used, total),
                speech::percent(used as f64 / total.max(1) as f64)
            ),
            None => format!("Proxmox doesn't tell me {name}'s memory."),
        },
        Aspect::Cpu if running => match guest.cpu {
            Some(cpu) => format!("{name}'s CPU is at {}.", speech::percent(cpu)),
            None => format!("Proxmox doesn't tell me {name}'s CPU use."),
        },
        Aspect::Uptime if running => match guest.uptime {
            Some(up) => format!("{name} has been up for {}.", speech::duration(up)),
            None => format!("Proxmox doesn't tell me {name}'s uptime."),
        },
        Aspect::Memory | Aspect::Cpu | Aspect::Uptime => {
            format!("{name} is {}.", guest.status.as_str())
        }
        Aspect::Disk => match guest.disk.zip(guest.maxdisk) {
            Some((used, total)) if used > 0 => {
                format!("{name}'s disk has {} used.", speech::used_of(used, total))
            }
            _ => format!(
                "Proxmox doesn't know how full {name}'s disk is{}.",
                if guest.kind == GuestKind::Qemu {
                    " without the QEMU guest agent"
                } else {
                    ""
                }
            ),
        },
    }
}

fn overview(inventory: &Inventory, cluster: Option<&ClusterStatus>) -> String {
    let online = inventory
        .nodes
        .iter()
        .filter(|n| n.status == NodeState::Online)
        .count();
    let total = inventory.nodes.len();
    let mut reply = if online == total {
        format!(
            "{} online",
            if total == 1 {
                "The node is".to_owned()
            } else {
                format!("All {total} nodes are")
            }
        )
    } else {
        format!("{online} of {total} nodes are online")
    };
    match cluster.and_then(|c| c.quorate) {
        Some(true) => reply.push_str(" and the cluster has quorum. "),
        Some(false) => reply.push_str(", and the cluster has lost quorum! "),
        None => reply.push_str(". "),
    }
    let guests: Vec<&Guest> = inventory.guests.iter().filter(|g| !g.template).collect();
    let running = guests
        .iter()
        .filter(|g| g.status == GuestState::Running)
        .count();
    reply.push_str(&format!(
        "{} running and {} stopped. ",
        speech::count(running, "guest"),
        guests.len() - running
    ));
    let mut problems: Vec<String> = inventory
        .nodes
        .iter()
        .filter(|n| n.status != NodeState::Online)
        .map(|n| format!("{} is {}", n.name, node_state(n.status)))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for s in &inventory.storages {
        if !seen.insert(&s.storage) {
            continue;
        }
        if !s.available {
            problems.push(format!("storage {} is unavailable", s.storage));
        } else if let Some((used, total)) = s.used.zip(s.total).filter(|(_, t)| *t > 0) {
            let fraction = used as f64 / total as f64;
            if fraction >= 0.9 {
                problems.push(format!(
                    "storage {} is {} full",
                    s.storage,
                    speech::percent(fraction)
                ));
            }
        }
    }
    problems.extend(guests.iter().filter_map(|g| {
        g.lock
            .as_ref()
            .map(|l| format!("{} is locked ({l})", g.name))
    }));
    if problems.is_empty() {
        reply.push_str("Nothing looks unhealthy.");
    } else {
        reply.push_str(&format!("Needs attention: {}.", speech::list(&problems, 5)));
    }
    reply
}

fn list_guests(
    inventory: &Inventory,
    state: Option<GuestState>,
    kind: Option<GuestKind>,
    node: Option<&str>,
) -> String {
    let names: Vec<String> = inventory
        .guests
        .iter()
        .filter(|g| !g.template)
        .filter(|g| state.is_none_or(|s| g.status == s))
        .filter(|g| kind.is_none_or(|k| g.kind == k))
        .filter(|g| node.is_none_or(|n| g.node == n))
        .map(|g| g.name.clone())
        .collect();
    let noun = match kind {
        Some(GuestKind::Qemu) => "VM",
        Some(GuestKind::Lxc) => "container",
        None => "guest",
    };
    let state_words = match state {
        Some(GuestState::Running) => " running",
        Some(GuestState::Stopped) => " stopped",
        _ => "",
    };
    let place = node.map(|n| format!(" on {n}")).unwrap_or_default();
    match names.len() {
        0 => format!("There are no{state_words} {noun}s{place}."),
        n => format!(
            "{}{state_words}{place}: {}.",
            capitalize(&speech::count(n, noun)),
            speech::list(&names, 8)
        ),
    }
}

fn describe_storages(inventory: &Inventory, storage: Option<&str>, node: Option<&str>) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut items: Vec<(f64, String)> = inventory
        .storages
        .iter()
        .filter(|s| storage.is_none_or(|id| s.storage == id))
        .filter(|s| node.is_none_or(|n| s.node == n))
        .filter(|s| {
            seen.insert((
                s.storage.clone(),
                if s.shared {
                    String::new()
                } else {
                    s.node.clone()
                },
            ))
        })
        .map(|s| match s.used.zip(s.total).filter(|(_, t)| *t > 0) {
            Some((used, total)) if s.available => {
                let fraction = used as f64 / total as f64;
                let free = total.saturating_sub(used);
                let place = if s.shared || storage.is_none() && node.is_some() {
                    String::new()
                } else {
                    format!(" on {}", s.node)
                };
                (
                    fraction,
                    format!(
                        "{}{place} is {} full with {} free",
                        s.storage,
                        speech::percent(fraction),
                        speech::bytes(free)
                    ),
                )
            }
            _ => (2.0, format!("{} on {} is unavailable", s.storage, s.node)),
        })
        .collect();
    if items.is_empty() {
        return match (storage, node) {
            (Some(id), _) => format!("I don't see a storage called {id}."),
            (None, Some(n)) => format!("{n} has no storage I can see."),
            _ => "I don't see any storage.".into(),
        };
    }
    items.sort_by(|a, b| b.0.total_cmp(&a.0));
    let sentences: Vec<String> = items.into_iter().map(|(_, s)| s).collect();
    let shown = 4;
    let mut reply = capitalize(&speech::list(
        &sentences[..sentences.len().min(shown)],
        shown,
    ));
    if sentences.len() > shown {
        reply.push_str(&format!("; {} more are emptier", sentences.len() - shown));
    }
    reply.push('.');
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::{Guest, GuestState, Node, Storage};

    fn snapshot(guests: Vec<Guest>) -> Arc<Inventory> {
        Arc::new(Inventory {
            nodes: vec![Node::example("pve")],
            guests,
            storages: Vec::new(),
        })
    }

    #[test]
    fn a_value_is_built_again_only_when_the_names_or_the_extra_change() {
        let slot: PerSnapshot<usize, u8> = Mutex::new(None);
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let get = |inventory: &Arc<Inventory>, extra: u8| {
            *per_snapshot(&slot, inventory, extra, |_, _| {
                builds.fetch_add(1, Ordering::Relaxed) + 1
            })
        };
        let first = snapshot(vec![Guest::example(100, "haos", "pve")]);
        assert_eq!(get(&first, 0), 1);
        assert_eq!(get(&first, 0), 1, "the same snapshot");
        // A poll later: new figures and states, a migration, the same names.
        let mut moved = Guest::example(100, "haos", "pve2");
        moved.status = GuestState::Stopped;
        moved.cpu = Some(0.5);
        assert_eq!(get(&snapshot(vec![moved]), 0), 1, "same names: kept");
        assert_eq!(
            get(&snapshot(vec![Guest::example(100, "hass", "pve")]), 0),
            2,
            "renamed"
        );
        let added = vec![
            Guest::example(100, "hass", "pve"),
            Guest::example(101, "pihole", "pve"),
        ];
        assert_eq!(get(&snapshot(added.clone()), 0), 3, "a guest added");
        let mut template = added.clone();
        template[1].template = true;
        assert_eq!(get(&snapshot(template), 0), 4, "made a template");
        assert_eq!(get(&snapshot(added), 1), 5, "the extra changed");
        assert_eq!(builds.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn speech_names_come_whole_kinds_first_each_once() {
        let mut template = Guest::example(9000, "debian-template", "pve");
        template.template = true;
        let inventory = Inventory {
            nodes: vec![Node::example("pve"), Node::example("agent1")],
            guests: vec![
                Guest::example(100, "haos", "pve"),
                Guest::example(101, "front door", "pve"),
                template,
            ],
            storages: vec![
                Storage::example("local-lvm", "pve"),
                Storage::example("local-lvm", "agent1"),
            ],
        };
        let memory = crate::events::Vocabulary {
            cameras: vec!["front_door".into()],
            zones: vec!["driveway".into()],
            labels: vec!["person".into()],
            sub_labels: vec!["alice".into()],
        };
        assert_eq!(
            names_in_order(Some(&inventory), &memory),
            [
                "pve",
                "agent1",
                "local-lvm",
                "front door",
                "driveway",
                "alice",
                "haos"
            ]
        );
        assert_eq!(
            names_in_order(None, &memory),
            ["front door", "driveway", "alice"]
        );
    }
}
