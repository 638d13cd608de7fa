//! Spoken times: "in the last hour", "this morning", "last night", "since 8 am", "while I was
//! away", resolved to a window of time in the configured time zone; and times said back: "12
//! minutes ago", "at 9:40 am", "yesterday at 10:15 pm".

use jiff::ToSpan;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

use super::numbers;

/// What a time phrase says, before it is placed on a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase {
    /// "in the last 2 hours": this many milliseconds back from now.
    Last {
        /// Milliseconds.
        ms: i64,
    },
    /// "today".
    Today,
    /// "this morning" (5:00 to noon).
    ThisMorning,
    /// "this afternoon" (noon to 17:00).
    ThisAfternoon,
    /// "this evening", "tonight" (17:00 on).
    ThisEvening,
    /// "yesterday".
    Yesterday,
    /// "last night": yesterday 18:00 to 6:00 today.
    LastNight,
    /// "this week": since Monday 0:00.
    ThisWeek,
    /// "since 8", "since 8 am", "since 8:30 pm", "since noon", "since midnight". Without am or
    /// pm, the latest such time before now.
    Since {
        /// 0–23, or 1–12 with `meridiem`.
        hour: u8,
        /// 0–59.
        minute: u8,
        /// `Some(false)` am, `Some(true)` pm, `None` whichever came last.
        pm: Option<bool>,
    },
    /// "since yesterday".
    SinceYesterday,
    /// "while I was away": since Home Assistant last said the home was left.
    Away,
    /// "now", "right now", "at the moment".
    Now,
}

/// A window of time, in milliseconds since the epoch, and how to say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Start.
    pub since_ms: i64,
    /// End (`None`: now).
    pub until_ms: Option<i64>,
    /// The phrase to say it back with: "in the last hour", "today", "since 8 am".
    pub words: String,
}

/// Reads `tokens` (lower-case words) as a whole time phrase.
pub fn parse<S: AsRef<str>>(tokens: &[S]) -> Option<Phrase> {
    let words = normalize(tokens);
    let mut w: Vec<&str> = words.iter().map(String::as_str).collect();
    // Words that add nothing: "in the last hour", "during the night".
    while let Some(first) = w.first() {
        if matches!(*first, "in" | "over" | "during" | "within" | "for" | "from") {
            w.remove(0);
        } else {
            break;
        }
    }
    if w.first() == Some(&"the") && w.len() > 1 && matches!(w[1], "last" | "past") {
        w.remove(0);
    }
    match w.as_slice() {
        ["today"] | ["so", "far", "today"] | ["earlier", "today"] => Some(Phrase::Today),
        ["this", "morning"] => Some(Phrase::ThisMorning),
        ["this", "afternoon"] => Some(Phrase::ThisAfternoon),
        ["this", "evening"] | ["tonight"] => Some(Phrase::ThisEvening),
        ["yesterday"] => Some(Phrase::Yesterday),
        ["last", "night"] | ["overnight"] | ["the", "night"] => Some(Phrase::LastNight),
        ["this", "week"] => Some(Phrase::ThisWeek),
        ["now"] | ["right", "now"] | ["at", "the", "moment"] | ["currently"] => Some(Phrase::Now),
        [
            "while",
            "i" | "we",
            "was" | "were",
            "away" | "out" | "gone" | "not" | "at",
            ..,
        ] => Some(Phrase::Away),
        ["since", "i" | "we", "left", ..] => Some(Phrase::Away),
        ["since", "yesterday"] => Some(Phrase::SinceYesterday),
        ["since", "this", "morning"] => Some(Phrase::ThisMorning),
        ["since", "last", "night"] => Some(Phrase::LastNight),
        ["since", "noon" | "midday"] => Some(Phrase::Since {
            hour: 12,
            minute: 0,
            pm: None,
        }),
        ["since", "midnight"] => Some(Phrase::Since {
            hour: 0,
            minute: 0,
            pm: None,
        }),
        ["since", rest @ ..] => clock(rest),
        ["last" | "past", rest @ ..] => last(rest),
        _ => None,
    }
}

/// "8", "8 am", "8 30 pm", "8 o'clock", "eight thirty".
fn clock(words: &[&str]) -> Option<Phrase> {
    let (words, pm) = match words {
        [rest @ .., "am"] | [rest @ .., "a", "m"] | [rest @ .., "in", "the", "morning"] => {
            (rest, Some(false))
        }
        [rest @ .., "pm"] | [rest @ .., "p", "m"] => (rest, Some(true)),
        [rest @ .., "o'clock" | "oclock"] => (rest, None),
        _ => (words, None),
    };
    let (hour, minute) = match words {
        [h] => (numbers::parse(&[h])?, 0),
        [h, m] => (numbers::parse(&[h])?, numbers::parse(&[m])?),
        // "eight thirty" reads as one number in some forms; "eight fifteen" splits fine.
        _ => return None,
    };
    let limit = if pm.is_some() { 12 } else { 23 };
    if hour > limit || minute > 59 || pm.is_some() && hour == 0 {
        return None;
    }
    Some(Phrase::Since {
        hour: u8::try_from(hour).ok()?,
        minute: u8::try_from(minute).ok()?,
        pm,
    })
}

/// "hour", "2 hours", "half hour", "30 minutes", "few minutes", "day", "week".
fn last(words: &[&str]) -> Option<Phrase> {
    let (amount, unit) = match words {
        [unit] => (1.0, *unit),
        ["half", "an" | "a", "hour"] | ["half", "hour"] => (0.5, "hour"),
        ["few" | "couple", unit] | ["few" | "couple", "of", unit] => {
            (if words[0] == "few" { 3.0 } else { 2.0 }, *unit)
        }
        [n @ .., unit] => (f64::from(numbers::parse(n)?), *unit),
        [] => return None,
    };
    let unit_ms: f64 = match unit.trim_end_matches('s') {
        "minute" | "min" => 60_000.0,
        "hour" | "hr" => 3_600_000.0,
        "day" => 86_400_000.0,
        "week" => 7.0 * 86_400_000.0,
        _ => return None,
    };
    if !(0.0..=10_000.0).contains(&amount) || amount == 0.0 {
        return None;
    }
    Some(Phrase::Last {
        ms: (amount * unit_ms) as i64,
    })
}

/// Splits "8am" into "8 am", and "a.m." has already become "a m".
fn normalize<S: AsRef<str>>(tokens: &[S]) -> Vec<String> {
    let mut out = Vec::with_capacity(tokens.len());
    for token in tokens {
        let t = token.as_ref();
        let split = ["am", "pm"].iter().find_map(|suffix| {
            t.strip_suffix(suffix)
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                .map(|n| [n.to_owned(), (*suffix).to_owned()])
        });
        match split {
            Some(parts) => out.extend(parts),
            None => out.push(t.to_owned()),
        }
    }
    out
}

/// The longest time phrase that ends `tokens`: where it starts, and what it says.
pub fn trailing<S: AsRef<str>>(tokens: &[S]) -> Option<(usize, Phrase)> {
    (1..tokens.len()).find_map(|i| parse(&tokens[i..]).map(|p| (i, p)))
}

/// The longest time phrase that begins `tokens` ("since 8 am, what happened"): where the rest
/// starts, and what it says.
pub fn leading<S: AsRef<str>>(tokens: &[S]) -> Option<(usize, Phrase)> {
    (1..tokens.len())
        .rev()
        .find_map(|i| parse(&tokens[..i]).map(|p| (i, p)))
}

/// Whether `tokens` end in the start of a time phrase still being said: "in the", "in the
/// last", "since", "since 8 30" is whole, "last 2" is not.
pub fn is_unfinished<S: AsRef<str>>(tokens: &[S]) -> bool {
    let words = normalize(tokens);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    matches!(
        w.as_slice(),
        [.., "in"]
            | [.., "in", "the"]
            | [.., "the", "last" | "past"]
            | [.., "in", "last" | "past"]
            | [.., "since"]
            | [.., "this"]
            | [.., "while"]
            | [.., "while", "i" | "we"]
            | [.., "while", "i" | "we", "was" | "were"]
    ) || matches!(w.as_slice(), [.., "last" | "past", n] if numbers::parse(&[n]).is_some())
}

/// `phrase` placed on the clock at `now` in `tz`. `Away` and `Now` have no window.
pub fn window(phrase: Phrase, now_ms: i64, tz: &TimeZone) -> Option<Window> {
    let now = Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let at = |days_back: i64, hour: i8, minute: i8| -> Option<i64> {
        let day = now.checked_sub(days_back.days()).ok()?;
        day.with()
            .hour(hour)
            .minute(minute)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    };
    let window = |since: i64, until: Option<i64>, words: &str| Window {
        since_ms: since,
        until_ms: until.filter(|u| *u < now_ms),
        words: words.to_owned(),
    };
    Some(match phrase {
        Phrase::Last { ms } => window(now_ms - ms, None, &last_words(ms)),
        Phrase::Today => window(at(0, 0, 0)?, None, "today"),
        Phrase::ThisMorning => window(at(0, 5, 0)?, Some(at(0, 12, 0)?), "this morning"),
        Phrase::ThisAfternoon => window(at(0, 12, 0)?, Some(at(0, 17, 0)?), "this afternoon"),
        Phrase::ThisEvening => window(at(0, 17, 0)?, None, "this evening"),
        Phrase::Yesterday => window(at(1, 0, 0)?, Some(at(0, 0, 0)?), "yesterday"),
        // Before 6 am too, "last night" is the night still going on: since 18:00 yesterday.
        Phrase::LastNight => window(at(1, 18, 0)?, Some(at(0, 6, 0)?), "last night"),
        Phrase::ThisWeek => {
            let days = i64::from(now.weekday().to_monday_zero_offset());
            window(at(days, 0, 0)?, None, "this week")
        }
        Phrase::SinceYesterday => window(at(1, 0, 0)?, None, "since yesterday"),
        Phrase::Since { hour, minute, pm } => {
            let h = i8::try_from(hour).ok()?;
            let m = i8::try_from(minute).ok()?;
            let candidates: Vec<i8> = match pm {
                Some(false) => vec![h % 12],
                Some(true) => vec![h % 12 + 12],
                None if h < 12 && h != 0 => vec![h, h + 12],
                None => vec![h],
            };
            // The latest of those times that is not in the future, today or yesterday.
            let since = candidates
                .iter()
                .flat_map(|&h| [at(0, h, m), at(1, h, m)])
                .flatten()
                .filter(|t| *t <= now_ms)
                .max()?;
            let shown = Timestamp::from_millisecond(since)
                .ok()?
                .to_zoned_datetime(tz.clone());
            window(since, None, &format!("since {}", clock_words(&shown)))
        }
        Phrase::Away | Phrase::Now => return None,
    })
}

fn last_words(ms: i64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        60 => "in the last hour".into(),
        1440 => "in the last day".into(),
        10080 => "in the last week".into(),
        m if m % 10080 == 0 => format!("in the last {} weeks", m / 10080),
        m if m % 1440 == 0 => format!("in the last {} days", m / 1440),
        m if m % 60 == 0 => format!("in the last {} hours", m / 60),
        1 => "in the last minute".into(),
        m => format!("in the last {m} minutes"),
    }
}

/// "9:40 am", "noon", "midnight", "8 pm".
pub fn clock_words(t: &ZonedDateTime) -> String {
    let (h, m) = (t.hour(), t.minute());
    match (h, m) {
        (0, 0) => "midnight".into(),
        (12, 0) => "noon".into(),
        _ => {
            let suffix = if h < 12 { "am" } else { "pm" };
            let h12 = match h % 12 {
                0 => 12,
                h => h,
            };
            if m == 0 {
                format!("{h12} {suffix}")
            } else {
                format!("{h12}:{m:02} {suffix}")
            }
        }
    }
}

/// When `then_ms` was, said from `now_ms`: "just now", "12 minutes ago", "at 9:40 am",
/// "yesterday at 10:15 pm", "on Tuesday at 8 am", "on March 3".
pub fn said(then_ms: i64, now_ms: i64, tz: &TimeZone) -> String {
    let ago = (now_ms - then_ms).max(0) / 1000;
    if ago < 60 {
        return "just now".into();
    }
    if ago < 3600 {
        let m = ago / 60;
        return format!("{m} minute{} ago", if m == 1 { "" } else { "s" });
    }
    let (Ok(then), Ok(now)) = (
        Timestamp::from_millisecond(then_ms),
        Timestamp::from_millisecond(now_ms),
    ) else {
        return "some time ago".into();
    };
    let then = then.to_zoned_datetime(tz.clone());
    let now = now.to_zoned_datetime(tz.clone());
    let clock = clock_words(&then);
    let days = now
        .date()
        .since(then.date())
        .map_or(0, |span| i64::from(span.get_days()));
    match days {
        0 => format!("at {clock}"),
        1 => format!("yesterday at {clock}"),
        2..=6 => format!("on {} at {clock}", weekday(then.weekday())),
        _ => format!("on {} {}", month(then.month()), then.day()),
    }
}

fn weekday(day: jiff::civil::Weekday) -> &'static str {
    use jiff::civil::Weekday::*;
    match day {
        Monday => "Monday",
        Tuesday => "Tuesday",
        Wednesday => "Wednesday",
        Thursday => "Thursday",
        Friday => "Friday",
        Saturday => "Saturday",
        Sunday => "Sunday",
    }
}

fn month(m: i8) -> &'static str {
    [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    .get(usize::try_from(m - 1).unwrap_or(0))
    .copied()
    .unwrap_or("")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tz() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    /// Friday 4 December 2026, 10:30 in Berlin.
    fn now() -> i64 {
        local(2026, 12, 4, 10, 30)
    }

    fn local(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned_datetime(tz())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn window_of(text: &str) -> Window {
        let tokens: Vec<String> = crate::brain::intents::tokens(text);
        let phrase = parse(&tokens).unwrap_or_else(|| panic!("not a time: {text}"));
        window(phrase, now(), &tz()).unwrap()
    }

    #[test]
    fn phrases_become_windows_in_the_time_zone() {
        let w = window_of("in the last hour");
        assert_eq!((w.since_ms, w.until_ms), (now() - 3_600_000, None));
        assert_eq!(w.words, "in the last hour");
        assert_eq!(window_of("the past 2 hours").since_ms, now() - 7_200_000);
        assert_eq!(
            window_of("last thirty minutes").words,
            "in the last 30 minutes"
        );
        assert_eq!(
            window_of("in the last half hour").since_ms,
            now() - 1_800_000
        );
        assert_eq!(window_of("today").since_ms, local(2026, 12, 4, 0, 0));
        let morning = window_of("this morning");
        assert_eq!(morning.since_ms, local(2026, 12, 4, 5, 0));
        assert_eq!(morning.until_ms, None, "noon is still to come");
        let yesterday = window_of("yesterday");
        assert_eq!(
            (yesterday.since_ms, yesterday.until_ms),
            (local(2026, 12, 3, 0, 0), Some(local(2026, 12, 4, 0, 0)))
        );
        let night = window_of("last night");
        assert_eq!(
            (night.since_ms, night.until_ms),
            (local(2026, 12, 3, 18, 0), Some(local(2026, 12, 4, 6, 0)))
        );
        assert_eq!(window_of("this week").since_ms, local(2026, 11, 30, 0, 0));
    }

    #[test]
    fn last_night_before_six_is_the_night_still_going_on() {
        let tokens = crate::brain::intents::tokens("last night");
        let phrase = parse(&tokens).unwrap();
        let at_two = window(phrase, local(2026, 12, 4, 2, 0), &tz()).unwrap();
        assert_eq!(at_two.since_ms, local(2026, 12, 3, 18, 0));
        assert_eq!(at_two.until_ms, None, "6 am is still to come");
    }

    #[test]
    fn since_a_clock_time_is_the_latest_one_before_now() {
        assert_eq!(window_of("since 8 am").since_ms, local(2026, 12, 4, 8, 0));
        assert_eq!(window_of("since 8am").since_ms, local(2026, 12, 4, 8, 0));
        assert_eq!(window_of("since 8 a.m.").since_ms, local(2026, 12, 4, 8, 0));
        assert_eq!(window_of("since eight").since_ms, local(2026, 12, 4, 8, 0));
        assert_eq!(window_of("since 8").words, "since 8 am");
        // 11 o'clock has not come yet today: yesterday's 11 pm is the latest.
        assert_eq!(window_of("since 11").since_ms, local(2026, 12, 3, 23, 0));
        assert_eq!(window_of("since 9 pm").since_ms, local(2026, 12, 3, 21, 0));
        assert_eq!(window_of("since 8:30").since_ms, local(2026, 12, 4, 8, 30));
        assert_eq!(window_of("since 8:30").words, "since 8:30 am");
        assert_eq!(
            window_of("since midnight").since_ms,
            local(2026, 12, 4, 0, 0)
        );
        assert_eq!(window_of("since noon").since_ms, local(2026, 12, 3, 12, 0));
    }

    #[test]
    fn phrases_are_found_at_either_end_and_unfinished_ones_are_seen() {
        let tokens = crate::brain::intents::tokens("was anyone at the front door in the last hour");
        let (at, phrase) = trailing(&tokens).unwrap();
        assert_eq!(tokens[..at].join(" "), "was anyone at the front door");
        assert_eq!(phrase, Phrase::Last { ms: 3_600_000 });
        let tokens = crate::brain::intents::tokens("since 8 am what happened");
        assert_eq!(leading(&tokens).map(|(i, _)| i), Some(3));
        let tokens = crate::brain::intents::tokens("what happened while I was away");
        assert_eq!(trailing(&tokens).map(|(_, p)| p), Some(Phrase::Away));
        assert!(trailing(&crate::brain::intents::tokens("is the front door open")).is_none());
        for unfinished in [
            "anyone at the door in the",
            "anyone at the door in the last",
            "since",
            "in the last 2",
        ] {
            assert!(
                is_unfinished(&crate::brain::intents::tokens(unfinished)),
                "{unfinished}"
            );
        }
        for whole in [
            "anyone at the door in the last hour",
            "since 8",
            "the front door",
        ] {
            assert!(
                !is_unfinished(&crate::brain::intents::tokens(whole)),
                "{whole}"
            );
        }
        assert!(parse(&["since", "25"]).is_none());
        assert!(parse(&["last", "fortnight"]).is_none());
    }

    #[test]
    fn times_said_back() {
        let tz = tz();
        assert_eq!(said(now() - 20_000, now(), &tz), "just now");
        assert_eq!(said(now() - 12 * 60_000, now(), &tz), "12 minutes ago");
        assert_eq!(said(local(2026, 12, 4, 8, 40), now(), &tz), "at 8:40 am");
        assert_eq!(
            said(local(2026, 12, 3, 22, 15), now(), &tz),
            "yesterday at 10:15 pm"
        );
        assert_eq!(
            said(local(2026, 12, 1, 8, 0), now(), &tz),
            "on Tuesday at 8 am"
        );
        assert_eq!(said(local(2026, 11, 3, 8, 0), now(), &tz), "on November 3");
    }
}
