//! Answers from the event memory: "was anyone at the front door in the last hour", "when did
//! Alice last arrive", "how many people did the garage camera see today", "who is at the front
//! door", "what happened since 8 am", "is Frigate up". No LLM: the intent's words are resolved
//! against the names the memory has seen, the time phrase against the clock, and the answer is
//! one or two spoken sentences.

use std::collections::BTreeMap;

use super::intents::Intent;
use super::memory::Memory;
use super::names;
use super::speech;
use super::when::{self, Phrase, Window};
use crate::events::model::KIND_ACTION;
use crate::events::{Event, Query, Source, StoreError};
use crate::frigate::Availability;

/// What a question is about: a label ("person", "car"), a face or plate, or anything.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Object {
    Label(String),
    Face(String),
    Anything,
}

/// A camera or a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Camera(String),
    Zone(String),
}

impl Place {
    fn said(&self) -> String {
        match self {
            Self::Camera(name) | Self::Zone(name) => format!("the {}", spoken_name(name)),
        }
    }

    fn narrow(&self, query: &mut Query) {
        match self {
            Self::Camera(name) => query.camera = Some(name.clone()),
            Self::Zone(name) => query.zone = Some(name.clone()),
        }
    }
}

/// Spoken forms of Frigate's labels, and the label they mean.
const LABEL_WORDS: &[(&str, &str)] = &[
    ("anyone", "person"),
    ("anybody", "person"),
    ("someone", "person"),
    ("somebody", "person"),
    ("any one", "person"),
    ("some one", "person"),
    ("people", "person"),
    ("persons", "person"),
    ("person", "person"),
    ("visitor", "person"),
    ("visitors", "person"),
    ("a person", "person"),
    ("cars", "car"),
    ("vehicles", "car"),
    ("vehicle", "car"),
    ("dogs", "dog"),
    ("cats", "cat"),
    ("birds", "bird"),
    ("bikes", "bicycle"),
    ("bike", "bicycle"),
    ("bicycles", "bicycle"),
    ("motorcycles", "motorcycle"),
    ("motorbikes", "motorcycle"),
    ("motorbike", "motorcycle"),
    ("trucks", "truck"),
    ("buses", "bus"),
    ("packages", "package"),
    ("parcels", "package"),
    ("parcel", "package"),
    ("deliveries", "package"),
    ("delivery", "package"),
];

const ANYTHING_WORDS: &[&str] = &["anything", "something", "any motion", "motion", "objects"];

/// Words around a name that do not name it.
const ARTICLES: &[&str] = &["a", "an", "any", "the", "some", "my"];
const PLACE_NOISE: &[&str] = &["camera", "cam", "zone", "area", "the", "my"];

/// An object still tracked that began longer ago than this is not "there now": Frigate lost its
/// end (it was down, or the message was lost) and the backfill has not mended it yet.
const PRESENT_MAX_MS: i64 = 6 * 3_600_000;
/// The default window of "was anyone at the door" without a time.
const DEFAULT_SEEN_MS: i64 = 24 * 3_600_000;
/// The default window of "what happened" without a time.
const DEFAULT_SUMMARY_MS: i64 = 12 * 3_600_000;
/// Home Assistant events and Jarvis actions read for a summary, at most (Frigate's objects are
/// counted in the store, not read).
const SUMMARY_LIMIT: usize = 500;
/// Home Assistant event kinds that say the home was left, and came back to.
const AWAY_KINDS: &[&str] = &["away", "leave", "left", "departure", "depart"];
const HOME_KINDS: &[&str] = &["home", "arrive", "arrival", "arrived", "return", "returned"];

/// The spoken answer to a memory question.
pub(crate) async fn answer(memory: Option<&Memory>, intent: &Intent) -> String {
    let Some(memory) = memory else {
        return "I have no event memory on this server.".into();
    };
    if let Intent::FrigateStatus = intent {
        return frigate_status(memory);
    }
    if !memory.store.is_available() {
        return "My event memory is unavailable right now; the Jarvis log and its health page \
                say why."
            .into();
    }
    let result = match intent {
        Intent::Seen {
            object,
            place,
            when,
            present,
        } => {
            seen(
                memory,
                object.as_deref(),
                place.as_deref(),
                when.as_deref(),
                *present,
            )
            .await
        }
        Intent::LastSeen { object, place } => last_seen(memory, object, place.as_deref()).await,
        Intent::CountSeen {
            object,
            place,
            when,
        } => count_seen(memory, object, place.as_deref(), when.as_deref()).await,
        Intent::WhoIsAt { place } => who_is_at(memory, place).await,
        Intent::Summary { place, when } => summary(memory, place.as_deref(), when.as_deref()).await,
        _ => return String::new(),
    };
    let reply = match result {
        Ok(reply) | Err(Refusal::Say(reply)) => reply,
        Err(Refusal::Store(err)) => {
            tracing::warn!(%err, "event question failed");
            return "I couldn't read my event memory just now; the Jarvis log says why.".into();
        }
    };
    match offline_since(memory) {
        Some(since) => {
            format!("Frigate has been offline since {since}, so this is from memory. {reply}")
        }
        None => reply,
    }
}

/// Why a question gets no answer from the store.
enum Refusal {
    /// Words to say instead (an unknown name, a time not understood).
    Say(String),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

type Answer = Result<String, Refusal>;

fn frigate_status(memory: &Memory) -> String {
    if !memory.frigate_enabled {
        return "Frigate isn't set up. Add a frigate section to my configuration to follow your \
                cameras."
            .into();
    }
    let status = memory.frigate.status();
    let now = memory.now_ms();
    let since = |ms: Option<i64>| ms.map(|t| when::said(t, now, &memory.tz));
    match status.availability {
        Availability::Online => {
            let cameras = match status.cameras.len() {
                0 => String::new(),
                n => format!(", with {}", speech::count(n, "camera")),
            };
            let version = status
                .version
                .as_ref()
                .map(|v| format!(", version {v}"))
                .unwrap_or_default();
            format!("Frigate is up{version}{cameras}.")
        }
        Availability::Offline => match since(status.since_ms) {
            Some(t) => format!("Frigate is offline. It went away {t}."),
            None => "Frigate is offline.".into(),
        },
        Availability::Stopped => match since(status.since_ms) {
            Some(t) => format!("Frigate is stopped. It was shut down {t}."),
            None => "Frigate is stopped.".into(),
        },
        Availability::Unknown => "I haven't heard from Frigate yet.".into(),
    }
}

/// "9:12 am" when Frigate is configured and down.
fn offline_since(memory: &Memory) -> Option<String> {
    if !memory.frigate_enabled {
        return None;
    }
    let status = memory.frigate.status();
    match status.availability {
        Availability::Offline | Availability::Stopped => Some(
            status
                .since_ms
                .map(|t| when::said(t, memory.now_ms(), &memory.tz))
                .map_or_else(
                    || "a while".to_owned(),
                    |s| s.trim_start_matches("at ").to_owned(),
                ),
        ),
        _ => None,
    }
}

fn resolve_object(memory: &Memory, words: &[String]) -> Result<Object, Refusal> {
    let joined = words.join(" ");
    if let Some((_, label)) = LABEL_WORDS.iter().find(|(w, _)| *w == joined) {
        return Ok(Object::Label((*label).to_owned()));
    }
    if ANYTHING_WORDS.contains(&joined.as_str()) {
        return Ok(Object::Anything);
    }
    let bare: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .skip_while(|w| ARTICLES.contains(w))
        .collect();
    let bare_joined = bare.join(" ");
    if let Some((_, label)) = LABEL_WORDS.iter().find(|(w, _)| *w == bare_joined) {
        return Ok(Object::Label((*label).to_owned()));
    }
    if bare.is_empty() {
        return Ok(Object::Label("person".into()));
    }
    let vocabulary = memory.store.vocabulary();
    // A face or plate first: "Alice" should not become a label that sounds like it.
    if let Some(i) = names::best_of(&bare, &vocabulary.sub_labels) {
        return Ok(Object::Face(vocabulary.sub_labels[i].clone()));
    }
    let singular: Vec<String> = bare
        .iter()
        .map(|w| {
            w.strip_suffix('s')
                .filter(|s| s.len() > 2)
                .unwrap_or(w)
                .to_owned()
        })
        .collect();
    for said in [
        &bare.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>(),
        &singular,
    ] {
        if let Some(i) = names::best_of(said, &vocabulary.labels) {
            return Ok(Object::Label(vocabulary.labels[i].to_lowercase()));
        }
    }
    let faces = &vocabulary.sub_labels;
    Err(Refusal::Say(if faces.is_empty() {
        format!("I haven't seen anything called {bare_joined}.")
    } else {
        format!(
            "I haven't seen anyone or anything called {bare_joined}. The faces and plates I \
             know are {}.",
            speech::list(faces, 5)
        )
    }))
}

fn resolve_place(memory: &Memory, words: &[String]) -> Result<Place, Refusal> {
    let bare: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !PLACE_NOISE.contains(w))
        .collect();
    let status = memory.frigate.status();
    let vocabulary = memory.store.vocabulary();
    let mut cameras: Vec<String> = status.cameras.iter().cloned().collect();
    for camera in &vocabulary.cameras {
        if !cameras.iter().any(|c| c.eq_ignore_ascii_case(camera)) {
            cameras.push(camera.clone());
        }
    }
    // A zone named like a camera ("garage" both) is the camera: asked by name, people mean
    // the camera's view.
    let mut zones: Vec<String> = Vec::new();
    for zone in status.zones.iter().chain(&vocabulary.zones) {
        if !zones
            .iter()
            .chain(&cameras)
            .any(|z| z.eq_ignore_ascii_case(zone))
        {
            zones.push(zone.clone());
        }
    }
    let all: Vec<&String> = cameras.iter().chain(zones.iter()).collect();
    match names::best_of(&bare, &all) {
        Some(i) if i < cameras.len() => Ok(Place::Camera(cameras[i].clone())),
        Some(i) => Ok(Place::Zone(zones[i - cameras.len()].clone())),
        None => {
            let said = bare.join(" ");
            let known: Vec<String> = cameras.iter().map(|c| spoken_name(c)).collect();
            Err(Refusal::Say(if known.is_empty() {
                format!(
                    "I don't know a camera or zone called {said}, and I haven't seen any camera yet."
                )
            } else {
                format!(
                    "I don't know a camera or zone called {said}. The cameras are {}.",
                    speech::list(&known, 6)
                )
            }))
        }
    }
}

/// The window a time phrase names; `Ok(None)` for "now".
async fn resolve_when(memory: &Memory, words: &[String]) -> Result<Option<Window>, Refusal> {
    let Some(phrase) = when::parse(words) else {
        return Err(Refusal::Say(format!(
            "I didn't understand the time \"{}\". Try \"in the last hour\", \"today\" or \"since \
             8 am\".",
            words.join(" ")
        )));
    };
    let now = memory.now_ms();
    match phrase {
        Phrase::Now => Ok(None),
        Phrase::Away => away_window(memory).await.map(Some),
        phrase => when::window(phrase, now, &memory.tz)
            .map(Some)
            .ok_or_else(|| Refusal::Say("I couldn't place that time on the clock.".into())),
    }
}

/// Since Home Assistant last said the home was left (an event of kind `away`), until it said
/// someone came back.
async fn away_window(memory: &Memory) -> Result<Window, Refusal> {
    let now = memory.now_ms();
    let mut latest_away: Option<Event> = None;
    for kind in AWAY_KINDS {
        let found = memory
            .store
            .query(Query {
                source: Some(Source::Ha),
                kind: Some((*kind).to_owned()),
                until_ms: Some(now + 1),
                limit: 1,
                ..Query::default()
            })
            .await?;
        if let Some(event) = found.into_iter().next() {
            if latest_away
                .as_ref()
                .is_none_or(|a| event.start_ms > a.start_ms)
            {
                latest_away = Some(event);
            }
        }
    }
    let Some(away) = latest_away else {
        return Ok(Window {
            since_ms: now - DEFAULT_SUMMARY_MS,
            until_ms: None,
            words: "in the last 12 hours (I don't know when you left: have Home Assistant \
                    send me an away event)"
                .into(),
        });
    };
    let mut back: Option<i64> = None;
    for kind in HOME_KINDS {
        let found = memory
            .store
            .query(Query {
                source: Some(Source::Ha),
                kind: Some((*kind).to_owned()),
                since_ms: Some(away.start_ms + 1),
                until_ms: Some(now + 1),
                limit: 1000,
                ..Query::default()
            })
            .await?;
        // The first return after leaving.
        if let Some(first) = found
            .iter()
            .map(|e| e.start_ms)
            .filter(|t| *t > away.start_ms)
            .min()
        {
            back = Some(back.map_or(first, |b: i64| b.min(first)));
        }
    }
    Ok(Window {
        since_ms: away.start_ms,
        until_ms: back,
        words: format!(
            "while you were away (since {})",
            when::said(away.start_ms, now, &memory.tz).trim_start_matches("at ")
        ),
    })
}

/// A query for `object` at `place`.
fn objects_query(object: &Object, place: Option<&Place>) -> Query {
    let mut query = Query::objects();
    match object {
        Object::Label(label) => query.label = Some(label.clone()),
        Object::Face(name) => query.sub_label = Some(name.clone()),
        Object::Anything => {}
    }
    if let Some(place) = place {
        place.narrow(&mut query);
    }
    query
}

async fn seen(
    memory: &Memory,
    object: Option<&[String]>,
    place: Option<&[String]>,
    when_words: Option<&[String]>,
    present: bool,
) -> Answer {
    let object = match object {
        Some(words) => resolve_object(memory, words)?,
        None => Object::Label("person".into()),
    };
    let place = place.map(|w| resolve_place(memory, w)).transpose()?;
    let now = memory.now_ms();
    let window = match when_words {
        Some(words) => resolve_when(memory, words).await?,
        None if present => None,
        None => Some(Window {
            since_ms: now - DEFAULT_SEEN_MS,
            until_ms: None,
            words: "in the last 24 hours".into(),
        }),
    };
    let mut query = objects_query(&object, place.as_ref());
    let at = place
        .as_ref()
        .map(|p| format!(" {}", at_word(p)))
        .unwrap_or_default();
    match &window {
        None => present_only(&mut query, now),
        Some(w) => {
            query.since_ms = Some(w.since_ms);
            query.until_ms = w.until_ms;
        }
    }
    let total = memory.store.count(query.clone()).await?;
    query.limit = 3;
    let latest = memory.store.query(query).await?;
    let Some(first) = latest.first() else {
        let none = nobody(&object);
        return Ok(match &window {
            None => {
                let before = last_one(memory, &object, place.as_ref()).await?;
                format!("No, {none}{at} right now.{before}")
            }
            Some(w) => format!("No, {none}{at} {}.", w.words),
        });
    };
    if window.is_none() {
        let who = latest
            .iter()
            .map(|e| someone(e, &object))
            .collect::<Vec<_>>();
        let place_words = place.as_ref().map_or_else(
            || {
                format!(
                    " at the {}",
                    first.camera.as_deref().map(spoken_name).unwrap_or_default()
                )
            },
            |_| at.clone(),
        );
        let verb = if total == 1 { "is" } else { "are" };
        return Ok(format!(
            "Yes, {} {verb}{place_words} now.",
            speech::list(&who, 3)
        ));
    }
    let items: Vec<String> = latest
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // An asked-for place is said once, with the first.
            let place_words = if place.is_some() {
                if i == 0 { at.clone() } else { String::new() }
            } else {
                e.camera
                    .as_deref()
                    .map(|c| format!(" at the {}", spoken_name(c)))
                    .unwrap_or_default()
            };
            format!(
                "{}{place_words} {}",
                someone(e, &object),
                event_time(e, now, memory)
            )
        })
        .collect();
    Ok(match total {
        1 => format!("Yes: {}.", items[0]),
        2 | 3 => format!(
            "Yes: {}.",
            speech::list(&items, 3).replacen(" and ", ", and ", usize::from(total == 2))
        ),
        n => format!("Yes, {n} times. The latest: {}.", speech::list(&items, 3)),
    })
}

async fn last_seen(memory: &Memory, object: &[String], place: Option<&[String]>) -> Answer {
    let object = resolve_object(memory, object)?;
    let place = place.map(|w| resolve_place(memory, w)).transpose()?;
    let now = memory.now_ms();
    let mut query = objects_query(&object, place.as_ref());
    query.limit = 1;
    let at = place
        .as_ref()
        .map(|p| format!(" {}", at_word(p)))
        .unwrap_or_default();
    let Some(last) = memory.store.query(query).await?.into_iter().next() else {
        return Ok(format!(
            "I have no record of {}{at}.",
            nobody_record(&object)
        ));
    };
    let when = event_time(&last, now, memory);
    let at = if at.is_empty() {
        last.camera
            .as_deref()
            .map(|c| format!(" at the {}", spoken_name(c)))
            .unwrap_or_default()
    } else {
        at
    };
    Ok(match &object {
        Object::Face(name) => format!("{} was last seen{at} {when}.", spoken_name(name)),
        Object::Label(label) => format!("The last {}{at} was {when}.", singular_words(label)),
        Object::Anything => format!(
            "The last thing I saw{at} was {} {when}.",
            with_article(last.label.as_deref().unwrap_or("object"))
        ),
    })
}

async fn count_seen(
    memory: &Memory,
    object: &[String],
    place: Option<&[String]>,
    when_words: Option<&[String]>,
) -> Answer {
    let object = resolve_object(memory, object)?;
    let place = place.map(|w| resolve_place(memory, w)).transpose()?;
    let now = memory.now_ms();
    let window = match when_words {
        Some(words) => resolve_when(memory, words).await?,
        None => when::window(Phrase::Today, now, &memory.tz),
    };
    let mut query = objects_query(&object, place.as_ref());
    match &window {
        None => present_only(&mut query, now),
        Some(w) => {
            // What came in the window: a car parked since yesterday is not one of today's.
            query.since_ms = Some(w.since_ms);
            query.until_ms = w.until_ms;
            query.started_since = true;
        }
    }
    let n = memory.store.count(query).await?;
    let what = match &object {
        Object::Label(label) => plural_words(label, n),
        // "Alice once", "Alice 3 times".
        Object::Face(name) if n == 1 => format!("{} once", spoken_name(name)),
        Object::Face(name) => format!("{} {n} times", spoken_name(name)),
        Object::Anything => speech::count(usize::try_from(n).unwrap_or(usize::MAX), "object"),
    };
    let at = place
        .as_ref()
        .map(|p| format!(" {}", at_word(p)))
        .unwrap_or_default();
    let window_words = window.as_ref().map_or("right now", |w| w.words.as_str());
    Ok(match (&object, n) {
        (Object::Face(name), 0) => {
            format!("I didn't see {}{at} {window_words}.", spoken_name(name))
        }
        (Object::Face(_), _) => format!("I saw {what}{at} {window_words}."),
        (_, 0) => format!(
            "None: no {}{at} {window_words}.",
            plural_words_bare(&object)
        ),
        _ => format!("I counted {what}{at} {window_words}."),
    })
}

async fn who_is_at(memory: &Memory, place: &[String]) -> Answer {
    let place = resolve_place(memory, place)?;
    let mut query = Query::objects();
    query.label = Some("person".into());
    present_only(&mut query, memory.now_ms());
    place.narrow(&mut query);
    query.limit = 10;
    let now_there = memory.store.query(query).await?;
    let at = at_word(&place);
    if now_there.is_empty() {
        let before = last_one(memory, &Object::Label("person".into()), Some(&place)).await?;
        return Ok(format!("Nobody {at} right now.{before}"));
    }
    let mut named: Vec<String> = now_there
        .iter()
        .filter_map(|e| e.sub_label.as_deref().map(spoken_name))
        .collect();
    named.dedup();
    let strangers = now_there.iter().filter(|e| e.sub_label.is_none()).count();
    Ok(match (named.len(), strangers) {
        (0, 1) => format!("Someone is {at}; I don't recognise them."),
        (0, n) => format!("{n} people are {at}; I don't recognise them."),
        (1, 0) => format!("{} is {at}.", named[0]),
        (_, 0) => format!("{} are {at}.", speech::list(&named, 4)),
        (_, n) => {
            let others = if n == 1 {
                "someone I don't recognise".to_owned()
            } else {
                format!("{n} people I don't recognise")
            };
            named.push(others);
            format!("{} are {at}.", speech::list(&named, 5))
        }
    })
}

async fn summary(
    memory: &Memory,
    place: Option<&[String]>,
    when_words: Option<&[String]>,
) -> Answer {
    let place = place.map(|w| resolve_place(memory, w)).transpose()?;
    let now = memory.now_ms();
    let window = match when_words {
        Some(words) => resolve_when(memory, words).await?,
        None => None,
    }
    .unwrap_or(Window {
        since_ms: now - DEFAULT_SUMMARY_MS,
        until_ms: None,
        words: "in the last 12 hours".into(),
    });
    // Frigate's objects counted by camera and label in the store (exact, however many), the
    // rest listed: Home Assistant's events and Jarvis's actions are few.
    let mut objects = Query {
        since_ms: Some(window.since_ms),
        until_ms: window.until_ms,
        started_since: true,
        ..Query::objects()
    };
    if let Some(place) = &place {
        place.narrow(&mut objects);
    }
    let tallies = memory.store.tally(objects).await?;
    let listed = |source: Source, kind: Option<&str>| Query {
        source: Some(source),
        kind: kind.map(str::to_owned),
        since_ms: Some(window.since_ms),
        until_ms: window.until_ms,
        started_since: true,
        limit: SUMMARY_LIMIT,
        ..Query::default()
    };
    // A place narrows the summary to its camera: Home Assistant's events and Jarvis's actions
    // are not about one.
    let (ha_events, actions_done) = if place.is_some() {
        (Vec::new(), Vec::new())
    } else {
        (
            memory.store.query(listed(Source::Ha, None)).await?,
            memory
                .store
                .query(listed(Source::Jarvis, Some(KIND_ACTION)))
                .await?,
        )
    };
    let mut ha: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for event in ha_events.iter().rev() {
        if AWAY_KINDS.contains(&event.kind.as_str()) || HOME_KINDS.contains(&event.kind.as_str()) {
            continue;
        }
        let text = event
            .text
            .clone()
            .or_else(|| event.entity.clone())
            .unwrap_or_else(|| event.kind.clone());
        let entry = ha.entry(text.to_lowercase()).or_insert((0, text));
        entry.0 += 1;
    }
    let actions: Vec<String> = actions_done
        .iter()
        .rev()
        .filter_map(|e| e.description.as_ref())
        .map(|reply| reply.trim_end_matches('.').to_owned())
        .collect();
    let mut parts: Vec<String> = Vec::new();
    for tally in tallies.iter().take(4) {
        let label = tally.label.as_deref().unwrap_or("object").to_lowercase();
        let mut part = format!(
            "{} at the {}",
            plural_words(&label, tally.count),
            spoken_name(tally.camera.as_deref().unwrap_or_default())
        );
        if !tally.sub_labels.is_empty() {
            let names: Vec<String> = tally.sub_labels.iter().map(|n| spoken_name(n)).collect();
            part.push_str(&format!(" ({})", speech::list(&names, 3)));
        }
        parts.push(part);
    }
    if tallies.len() > 4 {
        let rest: u64 = tallies[4..].iter().map(|t| t.count).sum();
        parts.push(format!("{rest} more detections"));
    }
    let mut ha: Vec<_> = ha.into_values().collect();
    ha.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    for (n, text) in ha.iter().take(3) {
        parts.push(if *n == 1 {
            first_lower(text)
        } else {
            format!("{} ({n} times)", first_lower(text))
        });
    }
    if ha.len() > 3 {
        parts.push(format!(
            "{} other home events",
            ha[3..].iter().map(|(n, _)| n).sum::<usize>()
        ));
    }
    match actions.len() {
        0 => {}
        1 => parts.push(format!("and I acted once: {}", first_lower(&actions[0]))),
        n => parts.push(format!(
            "and I acted {n} times, last: {}",
            first_lower(&actions[n - 1])
        )),
    }
    let when_words = capitalize(&window.words);
    Ok(if parts.is_empty() {
        format!("Nothing {}.", window.words).replace("Nothing while", "Nothing happened while")
    } else {
        format!("{when_words}: {}.", parts.join("; "))
    })
}

/// Narrows `query` to objects tracked now (see [`PRESENT_MAX_MS`]).
fn present_only(query: &mut Query, now: i64) {
    query.in_progress = true;
    query.since_ms = Some(now - PRESENT_MAX_MS);
    query.started_since = true;
}

/// " The last person there was 12 minutes ago." (empty when there never was one).
async fn last_one(
    memory: &Memory,
    object: &Object,
    place: Option<&Place>,
) -> Result<String, Refusal> {
    let now = memory.now_ms();
    let mut query = objects_query(object, place);
    query.limit = 1;
    let last = memory.store.query(query).await?;
    Ok(last.first().map_or_else(String::new, |e| {
        let there = if place.is_some() { " there" } else { "" };
        let what = match object {
            Object::Face(name) => {
                return format!(
                    " {} was last there {}.",
                    spoken_name(name),
                    event_time(e, now, memory)
                );
            }
            Object::Label(label) => singular_words(label),
            Object::Anything => "thing".into(),
        };
        format!(
            " The last {what}{there} was {}.",
            event_time(e, now, memory)
        )
    }))
}

/// When an event was, from its start: "12 minutes ago", "at 9:40 am".
fn event_time(event: &Event, now: i64, memory: &Memory) -> String {
    when::said(event.start_ms, now, &memory.tz)
}

/// "at the front door", "in the driveway" for a zone.
fn at_word(place: &Place) -> String {
    format!("at {}", place.said())
}

/// "Alice", "a person", "a car".
fn someone(event: &Event, asked: &Object) -> String {
    if let Some(name) = &event.sub_label {
        return spoken_name(name);
    }
    match asked {
        Object::Label(label) => with_article(label),
        _ => with_article(event.label.as_deref().unwrap_or("object")),
    }
}

fn nobody(object: &Object) -> String {
    match object {
        Object::Label(label) if label == "person" => "nobody".into(),
        Object::Label(label) => format!("no {}", plural(label)),
        Object::Face(name) => format!("no sign of {}", spoken_name(name)),
        Object::Anything => "nothing".into(),
    }
}

fn nobody_record(object: &Object) -> String {
    match object {
        Object::Label(label) => with_article(label),
        Object::Face(name) => spoken_name(name),
        Object::Anything => "anything".into(),
    }
}

fn plural_words_bare(object: &Object) -> String {
    match object {
        Object::Label(label) => plural(label),
        Object::Face(name) => spoken_name(name),
        Object::Anything => "objects".into(),
    }
}

/// "1 person", "3 people", "2 cars".
fn plural_words(label: &str, n: u64) -> String {
    if n == 1 {
        format!("1 {}", spoken_name(label))
    } else {
        format!("{n} {}", plural(label))
    }
}

fn singular_words(label: &str) -> String {
    spoken_name(label)
}

fn plural(label: &str) -> String {
    let label = spoken_name(label);
    match label.as_str() {
        "person" => "people".into(),
        "bus" => "buses".into(),
        "license plate" => "license plates".into(),
        l if l.ends_with('s') => l.to_owned(),
        l => format!("{l}s"),
    }
}

fn with_article(label: &str) -> String {
    let label = spoken_name(label);
    let article = if label.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {label}")
}

/// A Frigate name as said: `front_door` → "front door".
fn spoken_name(name: &str) -> String {
    name.replace(['_', '-'], " ")
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

fn first_lower(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.clone().next()) {
        // Keep "TV" and other words in capitals.
        (Some(c), Some(d)) if !d.is_uppercase() => c.to_lowercase().chain(chars).collect(),
        _ => text.to_owned(),
    }
}
