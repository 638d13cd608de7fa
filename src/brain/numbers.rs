//! Numbers as people say them and as speech recognition writes them: "101", "1 0 1",
//! "one oh one", "one hundred one", "a hundred and one", "one twenty three", "twenty".

/// The value of a spoken number, or `None` when the words are not (only) a number.
///
/// Two readings are tried: a cardinal ("one hundred and one", "two thousand five") when the
/// words hold `hundred` or `thousand`, else a digit-group reading where each group is one digit
/// ("one", "oh") or a two-digit number ("twenty three", "twelve") and the groups are written one
/// after the other: "one oh one" → 101, "one twenty three" → 123.
pub fn parse<S: AsRef<str>>(words: &[S]) -> Option<u32> {
    let words: Vec<&str> = words
        .iter()
        .map(AsRef::as_ref)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return None;
    }
    if words.iter().any(|w| matches!(*w, "hundred" | "thousand")) {
        cardinal(&words)
    } else {
        digit_groups(&words)
    }
}

/// The value of one number word: digits 0-9 (`oh` too), teens and tens.
fn word_value(word: &str) -> Option<u32> {
    Some(match word {
        "zero" | "oh" | "o" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" | "for" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// Whether a word can be part of a spoken number.
pub fn is_number_word(word: &str) -> bool {
    // "for" and "o" only count inside a longer number; alone they are words.
    word_value(word).is_some() && !matches!(word, "for" | "o")
        || matches!(word, "hundred" | "thousand")
        || is_digits(word)
}

fn is_digits(word: &str) -> bool {
    !word.is_empty() && word.len() <= 9 && word.bytes().all(|b| b.is_ascii_digit())
}

fn cardinal(words: &[&str]) -> Option<u32> {
    let mut total: u32 = 0;
    let mut current: u32 = 0;
    let mut any = false;
    for (i, word) in words.iter().enumerate() {
        match *word {
            "and" if any => {}
            "a" if i == 0 => current = 1,
            "hundred" => {
                current = current.max(1).checked_mul(100)?;
                any = true;
            }
            "thousand" => {
                total = total.checked_add(current.max(1).checked_mul(1000)?)?;
                current = 0;
                any = true;
            }
            w if is_digits(w) => {
                current = current.checked_add(w.parse().ok()?)?;
                any = true;
            }
            w => {
                current = current.checked_add(word_value(w)?)?;
                any = true;
            }
        }
    }
    any.then(|| total.checked_add(current)).flatten()
}

fn digit_groups(words: &[&str]) -> Option<u32> {
    let mut digits = String::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        if is_digits(word) {
            digits.push_str(word);
            i += 1;
            continue;
        }
        let value = word_value(word)?;
        if (20..100).contains(&value) {
            // "twenty three" is one group; "twenty" alone is 20.
            match words.get(i + 1).and_then(|w| word_value(w)) {
                Some(unit @ 1..=9) => {
                    digits.push_str(&(value + unit).to_string());
                    i += 2;
                }
                _ => {
                    digits.push_str(&value.to_string());
                    i += 1;
                }
            }
        } else {
            digits.push_str(&value.to_string());
            i += 1;
        }
    }
    if digits.len() > 9 {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn p(text: &str) -> Option<u32> {
        let words: Vec<&str> = text.split_whitespace().collect();
        parse(&words)
    }

    #[test]
    fn spoken_vmids() {
        assert_eq!(p("101"), Some(101));
        assert_eq!(p("1 0 1"), Some(101));
        assert_eq!(p("one oh one"), Some(101));
        assert_eq!(p("one zero one"), Some(101));
        assert_eq!(p("one hundred one"), Some(101));
        assert_eq!(p("one hundred and one"), Some(101));
        assert_eq!(p("a hundred and one"), Some(101));
        assert_eq!(p("one twenty three"), Some(123));
        assert_eq!(p("one oh four"), Some(104));
        assert_eq!(p("two hundred"), Some(200));
        assert_eq!(p("twenty"), Some(20));
        assert_eq!(p("twenty one"), Some(21));
        assert_eq!(p("nine hundred ninety nine"), Some(999));
        assert_eq!(p("one thousand and five"), Some(1005));
        assert_eq!(p("two thousand twenty six"), Some(2026));
    }

    #[test]
    fn words_that_are_not_numbers() {
        assert_eq!(p("media server"), None);
        assert_eq!(p(""), None);
        assert_eq!(p("one two three four five six seven eight nine ten"), None);
        assert_eq!(p("and"), None);
        assert_eq!(p("99999999999"), None);
    }
}
