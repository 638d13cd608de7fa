//! Backups and failed tasks: "did last night's backups succeed?", "when was nextcloud last
//! backed up?", "which guests have no backup this week?", "did the last backup job succeed?",
//! "did anything fail?". The sentences, and the answers from the client's cached
//! [`Backups`] snapshot (see `crate::proxmox::backups`).
//!
//! A storage or task list the token may not read leaves the rest counted; the answer says
//! which privilege is missing, as Proxmox's 403 hint names it.

use jiff::tz::TimeZone;

use super::engine::{Ctx, Unresolved};
use super::intents::Intent;
use super::memory::Memory;
use super::names::{Directory, Kinds, Target};
use super::speech;
use super::when::{self, Phrase};
use crate::proxmox::{
    BackupJob, BackupResult, Backups, Inventory, Proxmox, ProxmoxError, TaskEntry,
};

/// "Did last night's backups succeed?", "did the last backup job succeed?".
pub(super) const JOB_SENTENCES: &[&str] = &[
    "did [the|my] [last night's|last nights|tonight's|tonights|today's|yesterday's|last|latest|nightly] (backup|backups|backup job|backup jobs) (succeed|work|run|complete|finish|fail|go well|go ok)",
    "did [the|my] (backup|backups|backup job|backup jobs) (succeed|work|run|complete|finish|fail|go well|go ok) (last night|tonight|overnight|today)",
    "(how did|how'd) [the|my] [last night's|last nights|last|latest|nightly] (backup|backups|backup job) go [last night|overnight]",
    "(were|was|are|is) [the|my] [last night's|last nights|last|latest|nightly] (backup|backups|backup job) (ok|okay|successful|good|fine|alright)",
    "[{IS}] [the] (status|result|outcome) of [the|my] [last night's|last nights|last|latest|nightly] (backup|backups|backup job)",
    "[the] [last night's|last|latest] (backup|backups|backup job) (status|report|result)",
    "(any|were there any|are there any) failed backups [last night|overnight|today]",
];

/// Words that make a backup question about last night.
pub(super) const NIGHT_WORDS: &[&str] = &[
    "night's",
    "nights",
    "night",
    "overnight",
    "tonight's",
    "tonights",
    "tonight",
];

/// "When was nextcloud last backed up?".
pub(super) const LAST_BACKUP_SENTENCES: &[&str] = &[
    "when (was|were) {guest} last backed up",
    "when (was|did) {guest} [last] (get|got) backed up",
    "when did {guest} last (get|have) a backup",
    "when was {guest} backed up [last]",
    "when was [the] (last|latest) backup (of|for) {guest}",
    "(does|has) {guest} (have|got|had) a [recent] backup",
    "is {guest} backed up",
    "[{IS}] [the] (last|latest|most recent) backup (of|for) {guest}",
];

/// "Which guests have no backup this week?", "... in the last 10 days".
pub(super) const STALE_SENTENCES: &[&str] = &[
    "(which|what) (guests|vms|containers|machines) (have|has) no (backup|backups|recent backup)",
    "(which|what) (guests|vms|containers|machines) (have|has) no (backup|backups|recent backup) (this week|this month|today|recently)",
    "(which|what) (guests|vms|containers|machines) (have|has) no (backup|backups|recent backup) (in|within) the (last|past) {days} days",
    "(which|what) (guests|vms|containers|machines) (have|has) no (backup|backups|recent backup) (in|within) the (last|past) (week|month)",
    "(which|what) (guests|vms|containers|machines) (haven't|have not|aren't) [been] backed up [recently|this week|lately]",
    "(which|what) (guests|vms|containers|machines) (haven't|have not|aren't) [been] backed up (in|within) the (last|past) {days} days",
    "(is|are) (everything|all [my|the] (guests|vms|containers)) backed up",
    "(any|are there any) (guests|vms|containers) (without|with no) [a] [recent] backup",
];

/// "Did anything fail?", "any failed tasks today?", "what failed in the last 24 hours?".
pub(super) const FAILED_SENTENCES: &[&str] = &[
    "did (anything|something|any task|any tasks|any job|any jobs) fail [today|overnight|last night|recently]",
    "did (anything|something|any task|any tasks) fail (in|within|over) the (last|past) {hours} hours",
    "(any|were there any|are there any|have there been any) (failed|failing) (tasks|jobs) [today|overnight|last night|recently]",
    "(any|were there any|are there any) (failed|failing) (tasks|jobs) (in|within|over) the (last|past) {hours} hours",
    "(what|which tasks|what tasks|which jobs|what jobs) failed [today|overnight|last night|recently]",
    "(what|which tasks|what tasks) failed (in|within|over) the (last|past) {hours} hours",
    "(has|have) (anything|something|any tasks|any task) failed [today|recently|overnight]",
    "(list|show [me]) [the] failed tasks [today]",
    "[{IS}] [the] failed tasks",
];

/// Hours "did anything fail?" looks back without a number.
const DEFAULT_FAILED_HOURS: u32 = 24;
/// Longest window asked about, in days or hours (beyond it Proxmox's lists are not kept).
const MAX_DAYS: u32 = 366;
const MAX_HOURS: u32 = 24 * 31;
/// Guests or tasks named in one reply.
const NAMED: usize = 6;

/// The days of a stale-backup question: a number said, "week", "month", or none (the
/// configured age). `None` when a number was said that is not one.
pub(super) fn days<S: AsRef<str>>(said: Option<&[S]>, tokens: &[String]) -> Option<Option<u32>> {
    if let Some(words) = said {
        let days = super::numbers::parse(words)?;
        return (1..=MAX_DAYS).contains(&days).then_some(Some(days));
    }
    let has = |word: &str| tokens.iter().any(|t| t == word);
    Some(if has("week") {
        Some(7)
    } else if has("month") {
        Some(30)
    } else if has("today") {
        Some(1)
    } else {
        None
    })
}

/// The hours of a failed-tasks question (24 without a number).
pub(super) fn hours<S: AsRef<str>>(said: Option<&[S]>) -> Option<u32> {
    match said {
        Some(words) => {
            let hours = super::numbers::parse(words)?;
            (1..=MAX_HOURS).contains(&hours).then_some(hours)
        }
        None => Some(DEFAULT_FAILED_HOURS),
    }
}

/// Now (seconds and milliseconds) and the time zone answers speak in: the memory's (a fixed
/// clock in tests), else the system's.
fn clock(memory: Option<&Memory>) -> (i64, TimeZone) {
    match memory {
        Some(memory) => (memory.now_ms(), memory.tz.clone()),
        None => (jiff::Timestamp::now().as_millisecond(), TimeZone::system()),
    }
}

/// Answers a backup or task question.
///
/// # Errors
/// The guest's name did not resolve: what to say instead.
pub(super) async fn answer(
    proxmox: &Proxmox,
    inventory: &Inventory,
    directory: &Directory,
    intent: &Intent,
    memory: Option<&Memory>,
    ctx: &Ctx,
) -> Result<String, Unresolved> {
    // Resolve first: a name that is nobody's needs no backup read.
    let vmid = match intent {
        Intent::LastBackup { guest } => match ctx.resolve(directory, guest, Kinds::GUESTS)? {
            Target::Guest(vmid) => Some(vmid),
            Target::Node(name) => {
                return Ok(format!(
                    "{name} is a node; I know the backups of VMs and containers."
                ));
            }
            Target::Storage(id) => return Ok(format!("{id} is a storage, not a guest.")),
        },
        _ => None,
    };
    let backups = match proxmox.backups().await {
        Ok(backups) => backups,
        Err(err) => return Ok(unreadable_all(&err)),
    };
    let (now_ms, tz) = clock(memory);
    let say = Say {
        inventory,
        backups: &backups,
        now_ms,
        tz: &tz,
    };
    Ok(match intent {
        Intent::LastBackup { .. } => match vmid {
            Some(vmid) => say.last_backup(vmid, proxmox.backup_max_age_days()),
            None => String::new(),
        },
        Intent::BackupJob { last_night } => say.job(*last_night),
        Intent::StaleBackups { days } => {
            say.stale(days.unwrap_or_else(|| proxmox.backup_max_age_days()))
        }
        Intent::FailedTasks { hours, today } => say.failed(*hours, *today),
        _ => String::new(),
    })
}

/// The answer when nothing at all could be read.
fn unreadable_all(err: &ProxmoxError) -> String {
    match err {
        ProxmoxError::Forbidden { hint, .. } => {
            format!("Proxmox won't show me the backups: my API token needs {hint}.")
        }
        other => other.spoken(),
    }
}

struct Say<'a> {
    inventory: &'a Inventory,
    backups: &'a Backups,
    now_ms: i64,
    tz: &'a TimeZone,
}

impl Say<'_> {
    fn now(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }

    /// "yesterday at 2 am", "at 9:40 am", "on March 3".
    fn when(&self, secs: i64) -> String {
        when::said(secs.saturating_mul(1000), self.now_ms, self.tz)
    }

    fn name(&self, vmid: u32) -> String {
        self.inventory
            .guest(vmid)
            .map_or_else(|| format!("guest {vmid}"), |g| g.name.clone())
    }

    /// What the token may not read, as one sentence to add (empty when it may read all).
    fn forbidden(&self, consequence: &str) -> String {
        let parts: Vec<String> = self
            .backups
            .forbidden()
            .filter_map(|err| match err {
                ProxmoxError::Forbidden { path, hint, .. } => {
                    Some(format!("{} (my API token needs {hint})", subject(path)))
                }
                _ => None,
            })
            .collect();
        if parts.is_empty() {
            return String::new();
        }
        format!(
            " I couldn't read {}, so {consequence}.",
            speech::list(&parts, 3)
        )
    }

    fn last_backup(&self, vmid: u32, max_age_days: u32) -> String {
        let name = self.name(vmid);
        let guest = self.backups.guest(vmid);
        let unseen = self.forbidden("backups there aren't counted");
        let Some(file) = &guest.last_ok else {
            return match &guest.last_attempt {
                Some(attempt) if attempt.result == BackupResult::Failed => format!(
                    "I don't see any backup of {name}; its last backup {} failed: {}.{unseen}",
                    self.when(attempt.time),
                    short(attempt.message.as_deref().unwrap_or("no reason given"))
                ),
                _ => format!("I don't see any backup of {name}.{unseen}"),
            };
        };
        let mut reply = format!("{name} was last backed up {}", self.when(file.ctime));
        if let Some(size) = file.size.filter(|s| *s > 0) {
            reply.push_str(&format!(", {} on {}", speech::bytes(size), file.storage));
        } else {
            reply.push_str(&format!(", on {}", file.storage));
        }
        if let Some(attempt) = &guest.last_attempt {
            if attempt.result == BackupResult::Warnings && attempt.time >= file.ctime {
                reply.push_str(", with warnings");
            }
        }
        reply.push('.');
        if file.verification.as_deref() == Some("failed") {
            reply.push_str(" Its verification failed.");
        }
        if let Some(attempt) = &guest.last_attempt {
            if attempt.result == BackupResult::Failed && attempt.time > file.ctime {
                reply.push_str(&format!(
                    " The backup {} failed: {}.",
                    self.when(attempt.time),
                    short(attempt.message.as_deref().unwrap_or("no reason given"))
                ));
            }
        }
        if self.backups.is_stale(vmid, self.now(), max_age_days) {
            reply.push_str(&format!(
                " That's more than {} ago.",
                speech::count(max_age_days as usize, "day")
            ));
        }
        reply.push_str(&unseen);
        reply
    }

    fn job(&self, last_night: bool) -> String {
        let runs: Vec<&BackupJob> = if last_night {
            let window = when::window(Phrase::LastNight, self.now_ms, self.tz);
            match window {
                Some(w) => self.backups.runs_between(
                    w.since_ms.div_euclid(1000),
                    w.until_ms.unwrap_or(self.now_ms).div_euclid(1000),
                ),
                None => Vec::new(),
            }
        } else {
            self.backups.last_run()
        };
        let unseen = self.forbidden("I may be missing some");
        if runs.is_empty() {
            let last = self.backups.last_run();
            return match (last_night, last.first()) {
                (true, Some(newest)) => format!(
                    "No backup job ran last night. The last one started {}: {}{unseen}",
                    self.when(newest.task.start),
                    lowercase_first(&self.outcome(&last))
                ),
                _ => format!(
                    "I don't see any backup job in the last {} days.{unseen}",
                    crate::proxmox::backups::TASK_HISTORY_DAYS
                ),
            };
        }
        let start = runs.iter().map(|j| j.task.start).min().unwrap_or_default();
        let what = if last_night {
            format!("Last night's backup job, started {},", self.when(start))
        } else {
            format!("The last backup job, started {},", self.when(start))
        };
        format!("{what} {}{unseen}", lowercase_first(&self.outcome(&runs)))
    }

    /// How a job run went: "succeeded: 5 guests backed up." / "failed for nextcloud: ...".
    fn outcome(&self, runs: &[&BackupJob]) -> String {
        let running: Vec<&str> = runs
            .iter()
            .filter(|j| j.result.is_none())
            .map(|j| j.task.node.as_str())
            .collect();
        let mut failed: Vec<(u32, &str)> = Vec::new();
        let mut warned: Vec<u32> = Vec::new();
        let mut failed_nodes: Vec<(&str, &str)> = Vec::new();
        let mut done = 0;
        for job in runs {
            done += job.guests_ok.len() + job.guests_warned.len();
            warned.extend(&job.guests_warned);
            failed.extend(job.guests_failed.iter().map(|(v, why)| (*v, why.as_str())));
            if job.result == Some(BackupResult::Failed) && job.guests_failed.is_empty() {
                failed_nodes.push((
                    job.task.node.as_str(),
                    job.task.status.as_deref().unwrap_or("failed"),
                ));
            }
        }
        let backed_up = if done > 0 {
            format!(": {} backed up", speech::count(done, "guest"))
        } else {
            String::new()
        };
        if !failed.is_empty() {
            let names: Vec<String> = failed.iter().map(|(v, _)| self.name(*v)).collect();
            let why = failed.first().map_or("", |(_, why)| *why);
            let mut reply = format!(
                "failed for {}: {}.",
                speech::list(&names, NAMED),
                short(why)
            );
            if done > 0 {
                reply.push_str(&format!(
                    " {} backed up fine.",
                    capitalize(&speech::count(done, "other guest"))
                ));
            }
            return reply;
        }
        if !failed_nodes.is_empty() {
            let nodes: Vec<String> = failed_nodes.iter().map(|(n, _)| (*n).to_owned()).collect();
            return format!(
                "failed on {}: {}.",
                speech::list(&nodes, NAMED),
                short(failed_nodes.first().map_or("", |(_, s)| *s))
            );
        }
        if !running.is_empty() {
            let nodes: Vec<String> = running.iter().map(|n| (*n).to_owned()).collect();
            return format!("is still running on {}.", speech::list(&nodes, NAMED));
        }
        if !warned.is_empty() {
            let names: Vec<String> = warned.iter().map(|v| self.name(*v)).collect();
            return format!(
                "succeeded with warnings for {}{backed_up}.",
                speech::list(&names, NAMED)
            );
        }
        format!("succeeded{backed_up}.")
    }

    fn stale(&self, days: u32) -> String {
        let now = self.now();
        let mut names: Vec<String> = self
            .inventory
            .guests
            .iter()
            .filter(|g| !g.template && self.backups.is_stale(g.vmid, now, days))
            .map(|g| g.name.clone())
            .collect();
        names.sort();
        let window = match days {
            1 => "in the last day".to_owned(),
            n => format!("in the last {n} days"),
        };
        let unseen = self.forbidden("backups there aren't counted");
        match names.len() {
            0 => format!("Every guest has a backup from {}.{unseen}", &window[3..]),
            n => format!(
                "{} {} no backup {window}: {}.{unseen}",
                capitalize(&speech::count(n, "guest")),
                if n == 1 { "has" } else { "have" },
                speech::list(&names, NAMED)
            ),
        }
    }

    fn failed(&self, hours: u32, today: bool) -> String {
        let (since, window) = if today {
            match when::window(Phrase::Today, self.now_ms, self.tz) {
                Some(w) => (w.since_ms.div_euclid(1000), "today".to_owned()),
                None => (self.now() - 86_400, "today".to_owned()),
            }
        } else {
            (
                self.now() - i64::from(hours) * 3600,
                format!("in the last {hours} hours"),
            )
        };
        let failed = self.backups.failed_since(since);
        let unseen = self.forbidden("I may be missing some");
        if failed.is_empty() {
            return format!("Nothing failed {window}.{unseen}");
        }
        let items: Vec<String> = failed.iter().map(|t| self.task_words(t)).collect();
        format!(
            "{} failed {window}: {}.{unseen}",
            capitalize(&speech::count(failed.len(), "task")),
            speech::list(&items, 4)
        )
    }

    /// "the backup of nextcloud on agent1 at 2:04 am (VM 104 is locked)".
    fn task_words(&self, task: &TaskEntry) -> String {
        let guest = task.vmid().map(|v| self.name(v));
        let subject = guest.clone().unwrap_or_else(|| {
            task.id
                .clone()
                .unwrap_or_else(|| format!("node {}", task.node))
        });
        let verb = match task.kind.as_str() {
            "vzdump" => match &guest {
                Some(name) => format!("the backup of {name}"),
                None => "the backup job".to_owned(),
            },
            "qmstart" | "vzstart" => format!("starting {subject}"),
            "qmstop" | "vzstop" => format!("stopping {subject}"),
            "qmshutdown" | "vzshutdown" => format!("shutting down {subject}"),
            "qmreboot" | "vzreboot" => format!("rebooting {subject}"),
            "qmigrate" | "vzmigrate" => format!("migrating {subject}"),
            "qmsnapshot" | "vzsnapshot" => format!("the snapshot of {subject}"),
            "qmrollback" | "vzrollback" => format!("rolling back {subject}"),
            "startall" => "starting all guests".to_owned(),
            "stopall" => "stopping all guests".to_owned(),
            "aptupdate" => "the package update check".to_owned(),
            other => match &task.id {
                Some(id) => format!("{other} of {}", guest.as_deref().unwrap_or(id)),
                None => format!("a {other} task"),
            },
        };
        let why = task
            .status
            .as_deref()
            .map(|s| format!(" ({})", short(s)))
            .unwrap_or_default();
        format!("{verb} on {} {}{why}", task.node, self.when(task.at()))
    }
}

/// What a refused path was about: "storage nas", "the tasks of pve".
fn subject(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["nodes", _, "storage", storage, ..] => format!("storage {storage}"),
        ["nodes", node, "tasks", _, ..] => format!("a task log on {node}"),
        ["nodes", node, "tasks"] => format!("the tasks of {node}"),
        ["cluster", "tasks"] => "the cluster's task list".to_owned(),
        _ => path.to_owned(),
    }
}

/// The first line of a Proxmox message, without its period, capped for speech.
fn short(message: &str) -> String {
    let line = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('.');
    if line.chars().count() <= 100 {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(97).collect();
        format!("{cut}...")
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::intents::Recognizer;
    use super::*;

    fn recognize(text: &str) -> Intent {
        Recognizer::new()
            .unwrap()
            .recognize(text)
            .unwrap_or_else(|| panic!("not recognized: {text}"))
            .intent
    }

    #[test]
    fn the_backup_and_task_sentences() {
        assert_eq!(
            recognize("Did last night's backups succeed?"),
            Intent::BackupJob { last_night: true }
        );
        assert_eq!(
            recognize("Did the last backup job succeed?"),
            Intent::BackupJob { last_night: false }
        );
        assert_eq!(
            recognize("When was nextcloud last backed up?"),
            Intent::LastBackup {
                guest: vec!["nextcloud".into()]
            }
        );
        assert_eq!(
            recognize("Is the media server backed up?"),
            Intent::LastBackup {
                guest: vec!["the".into(), "media".into(), "server".into()]
            }
        );
        assert_eq!(
            recognize("Which guests have no backup this week?"),
            Intent::StaleBackups { days: Some(7) }
        );
        assert_eq!(
            recognize("Which guests have no backup in the last ten days?"),
            Intent::StaleBackups { days: Some(10) }
        );
        assert_eq!(
            recognize("Which VMs haven't been backed up?"),
            Intent::StaleBackups { days: None }
        );
        assert_eq!(
            recognize("Did anything fail?"),
            Intent::FailedTasks {
                hours: 24,
                today: false
            }
        );
        assert_eq!(
            recognize("Any failed tasks today?"),
            Intent::FailedTasks {
                hours: 24,
                today: true
            }
        );
        assert_eq!(
            recognize("What failed in the last 24 hours?"),
            Intent::FailedTasks {
                hours: 24,
                today: false
            }
        );
        assert_eq!(
            recognize("What failed in the last six hours?"),
            Intent::FailedTasks {
                hours: 6,
                today: false
            }
        );
        // Still what they were.
        assert!(matches!(
            recognize("Is nextcloud running?"),
            Intent::Status { .. }
        ));
        assert!(matches!(
            recognize("Which guests are running?"),
            Intent::ListGuests { .. }
        ));
        assert!(matches!(
            recognize("Is anything down?"),
            Intent::ClusterOverview
        ));
        assert!(
            Recognizer::new()
                .unwrap()
                .recognize("Which guests have no backup in the last banana days?")
                .is_none()
        );
    }

    #[test]
    fn refused_paths_are_named() {
        assert_eq!(
            subject("/nodes/pve/storage/nas/content?content=backup"),
            "storage nas"
        );
        assert_eq!(
            subject("/nodes/pve/tasks?typefilter=vzdump"),
            "the tasks of pve"
        );
        assert_eq!(subject("/cluster/tasks"), "the cluster's task list");
    }
}
