//! Names made safe for MQTT topics, discovery object ids and HA entity ids.
//!
//! Proxmox names are mostly tame (node names are host names, guest names are DNS names), but
//! storages and guests can carry dots, capitals and, through the API, anything. Topics must not
//! hold `+`, `#` or NUL and a `/` would add a level; discovery object ids must match
//! `[a-zA-Z0-9_-]`; entity ids must be `[a-z0-9_]` without a leading, trailing or double `_`.
//!
//! Design: in topics and unique ids, a name that had to be changed beyond lower-casing gets a
//! short hash of the original appended, so two names that differ only in replaced characters
//! (`data.1` and `data_1`) never share an id. The hash is FNV-1a, fixed here, so ids stay the
//! same across versions: unique ids must never change, or HA makes every entity again.
//!
//! Suggested entity ids ([`entity_name`]) carry no hash: `media-server` is `media_server`. Two
//! devices whose entity ids would really collide are told apart by
//! [`super::entity_ids`], which sees every device at once.

/// Longest slug, hash included.
const MAX_LEN: usize = 48;

/// A topic level and discovery object id: only `[a-z0-9_-]`, never empty for a name with at
/// least one ASCII letter or digit (empty otherwise).
pub fn topic_slug(name: &str) -> String {
    slug(name, true)
}

/// A readable, hash-free entity object id part: `media-server` → `media_server`, `Küche` →
/// `kuche`. Only `[a-z0-9_]`, no leading, trailing or double `_`, at most [`MAX_LEN`] bytes;
/// `fallback` when nothing of `name` is usable. Different names may give the same text.
pub fn entity_name(name: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_LEN));
    let mut pending_sep = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = fold(c);
        if folded.is_empty() {
            pending_sep = true;
            continue;
        }
        if pending_sep && !out.is_empty() {
            out.push('_');
        }
        pending_sep = false;
        out.push_str(folded);
    }
    if out.len() > MAX_LEN {
        // Only ASCII was pushed, so any byte index is a char boundary.
        out.truncate(MAX_LEN);
        while out.ends_with('_') {
            out.pop();
        }
    }
    if out.is_empty() {
        fallback.to_owned()
    } else {
        out
    }
}

/// A lower-case character as ASCII letters or digits (Latin letters lose their accents, as
/// HA's own slugify does); empty for anything else.
fn fold(c: char) -> &'static str {
    const ASCII: [&str; 36] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    ];
    match c {
        'a'..='z' => ASCII[(c as usize) - ('a' as usize)],
        '0'..='9' => ASCII[26 + (c as usize) - ('0' as usize)],
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'ç' | 'č' | 'ć' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' => "o",
        'ù' | 'ú' | 'û' | 'ü' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'š' | 'ś' => "s",
        'ž' | 'ź' | 'ż' => "z",
        'ł' => "l",
        'ř' => "r",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        _ => "",
    }
}

/// An 8-digit hex hash of `text` (FNV-1a, stable across versions), to tell apart names that
/// slug alike.
pub fn short_hash(text: &str) -> String {
    format!("{:08x}", fnv1a(text.as_bytes()))
}

fn slug(name: &str, keep_dash: bool) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_LEN));
    let mut changed = false;
    let mut pending_sep = false;
    for c in name.chars() {
        let mapped = match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            '-' if keep_dash => Some('-'),
            '_' => None,
            _ => {
                changed = true;
                None
            }
        };
        match mapped {
            Some(m) => {
                if pending_sep && !out.is_empty() {
                    out.push('_');
                }
                pending_sep = false;
                out.push(m);
            }
            None => pending_sep = true,
        }
    }
    // Separators that were dropped at either end or merged are a change too.
    if !changed {
        let rebuilt: String = name
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c == '-' && !keep_dash { '_' } else { c })
            .collect();
        changed = rebuilt != out;
    }
    if out.is_empty() {
        return out;
    }
    if changed || out.len() > MAX_LEN {
        let hash = format!("{:08x}", fnv1a(name.as_bytes()));
        let keep = MAX_LEN - hash.len() - 1;
        if out.len() > keep {
            out.truncate(keep);
            while out.ends_with(['_', '-']) {
                out.pop();
            }
        }
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&hash);
    }
    out
}

/// 32-bit FNV-1a: tiny, and stable forever (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_ok(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    }

    fn entity_ok(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_LEN
            && !s.starts_with('_')
            && !s.ends_with('_')
            && !s.contains("__")
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn tame_names_stay_readable() {
        assert_eq!(topic_slug("pve1"), "pve1");
        assert_eq!(topic_slug("PVE-1"), "pve-1");
        assert_eq!(topic_slug("local_lvm"), "local_lvm");
        assert_eq!(entity_name("haos", "x"), "haos");
        assert_eq!(entity_name("home_assistant", "x"), "home_assistant");
    }

    #[test]
    fn hostile_names_become_safe_and_distinct() {
        let hostile = [
            "a/b",
            "a+b",
            "a#b",
            "a b",
            "a\0b",
            "../..",
            "wild/+/#",
            "Küche",
            "日本語のゲスト",
            "🚀 rocket",
            "'; DROP TABLE vms; --",
            "data.1",
            "data_1",
            "__init__",
            "-dash-",
            &"x".repeat(300),
            "CamelCase.Name",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in hostile {
            let t = topic_slug(name);
            let e = entity_name(name, "guest");
            assert!(t.is_empty() || topic_ok(&t), "{name:?} -> {t:?}");
            assert!(entity_ok(&e), "{name:?} -> {e:?}");
            if !t.is_empty() {
                assert!(seen.insert(t.clone()), "{name:?} collides as {t:?}");
            }
        }
        assert_ne!(topic_slug("data.1"), topic_slug("data_1"));
    }

    #[test]
    fn nothing_usable_gives_the_fallback() {
        assert_eq!(topic_slug("日本語"), "");
        assert_eq!(topic_slug(""), "");
        assert_eq!(entity_name("///", "guest"), "guest");
    }

    #[test]
    fn entity_names_are_readable_and_hash_free() {
        assert_eq!(entity_name("media-server", "guest"), "media_server");
        assert_eq!(entity_name("Media.Server", "guest"), "media_server");
        assert_eq!(entity_name("local-lvm", "storage"), "local_lvm");
        assert_eq!(entity_name("__init__", "x"), "init");
        assert_eq!(entity_name("Küche Süd", "x"), "kuche_sud");
        assert_eq!(entity_name("Straße", "x"), "strasse");
        assert_eq!(entity_name("日本語", "guest"), "guest");
        assert_eq!(entity_name("🚀 rocket", "guest"), "rocket");
        let long = entity_name(&"ab-".repeat(100), "x");
        assert!(long.len() <= MAX_LEN && !long.ends_with('_'), "{long}");
        for name in ["a/b", "'; DROP TABLE vms; --", "-dash-", "CamelCase.Name"] {
            assert!(entity_ok(&entity_name(name, "guest")), "{name}");
        }
        assert_eq!(short_hash("data.1"), "fd2b40a0");
    }

    #[test]
    fn slugs_are_stable() {
        // Ids in HA depend on these: a change here renames every user's entities.
        assert_eq!(topic_slug("data.1"), "data_1_fd2b40a0");
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
    }
}
