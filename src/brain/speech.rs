//! Numbers and lists in words made for a speaker: "20 of 62 gigabytes", "3 days",
//! "haos, pihole and 4 more".

/// Bytes as a short spoken size: "512 megabytes", "3.2 gigabytes", "1.5 terabytes".
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, f64); 4] = [
        ("terabytes", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("gigabytes", 1024.0 * 1024.0 * 1024.0),
        ("megabytes", 1024.0 * 1024.0),
        ("kilobytes", 1024.0),
    ];
    let n = n as f64;
    for (unit, size) in UNITS {
        if n >= size {
            return format!("{} {unit}", short_number(n / size));
        }
    }
    format!("{n} bytes")
}

/// `used` of `total` in the unit that suits `total`: "20 of 62 gigabytes".
pub fn used_of(used: u64, total: u64) -> String {
    let total_words = bytes(total);
    let (number, unit) = total_words
        .split_once(' ')
        .unwrap_or((total_words.as_str(), ""));
    let size = match unit {
        "terabytes" => 1024f64.powi(4),
        "gigabytes" => 1024f64.powi(3),
        "megabytes" => 1024f64.powi(2),
        "kilobytes" => 1024.0,
        _ => 1.0,
    };
    format!("{} of {number} {unit}", short_number(used as f64 / size))
        .trim_end()
        .to_owned()
}

/// 0..1 as "42 percent" (at least "1 percent" when above zero).
pub fn percent(fraction: f64) -> String {
    let p = (fraction * 100.0).round();
    if p == 0.0 && fraction > 0.0 {
        return "under 1 percent".into();
    }
    format!("{p:.0} percent")
}

/// Seconds as the largest one or two units: "3 days and 4 hours", "5 minutes".
pub fn duration(secs: u64) -> String {
    let days = secs / 86_400;
    let hours = secs % 86_400 / 3600;
    let minutes = secs % 3600 / 60;
    let unit = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (days, hours, minutes) {
        (0, 0, 0) => unit(secs, "second"),
        (0, 0, m) => unit(m, "minute"),
        (0, h, 0) => unit(h, "hour"),
        (0, h, m) => format!("{} and {}", unit(h, "hour"), unit(m, "minute")),
        (d, 0, _) => unit(d, "day"),
        (d, h, _) if d < 7 => format!("{} and {}", unit(d, "day"), unit(h, "hour")),
        (d, _, _) => unit(d, "day"),
    }
}

/// "a", "a and b", "a, b and c", "a, b, c and 4 more".
pub fn list(items: &[String], max: usize) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        _ if items.len() <= max => {
            let (last, rest) = items
                .split_last()
                .map_or((None, &[][..]), |(l, r)| (Some(l), r));
            format!(
                "{} and {}",
                rest.join(", "),
                last.map_or("", |s| s.as_str())
            )
        }
        _ => format!("{} and {} more", items[..max].join(", "), items.len() - max),
    }
}

/// "1 guest", "3 guests".
pub fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn short_number(x: f64) -> String {
    if x >= 10.0 {
        format!("{:.0}", x.round())
    } else {
        let s = format!("{x:.1}");
        s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_a_speaker() {
        assert_eq!(bytes(3_221_225_472), "3 gigabytes");
        assert_eq!(bytes(3_435_973_837), "3.2 gigabytes");
        assert_eq!(bytes(67_108_864_000), "63 gigabytes");
        assert_eq!(
            used_of(21_474_836_480, 67_108_864_000),
            "20 of 63 gigabytes"
        );
        assert_eq!(percent(0.0412), "4 percent");
        assert_eq!(percent(0.001), "under 1 percent");
        assert_eq!(duration(864_213), "10 days");
        assert_eq!(duration(90_000), "1 day and 1 hour");
        assert_eq!(duration(3_900), "1 hour and 5 minutes");
        assert_eq!(duration(42), "42 seconds");
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(list(&names[..1], 3), "a");
        assert_eq!(list(&names[..3], 3), "a, b and c");
        assert_eq!(list(&names, 2), "a, b and 2 more");
        assert_eq!(count(1, "guest"), "1 guest");
    }
}
