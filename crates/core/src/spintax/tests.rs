//! Spintax: parsing, nesting, escapes, errors with their place, determinism and spread.

use std::collections::HashMap;

use super::*;

fn all_renders(s: &Spintax, seeds: u64) -> HashMap<String, u64> {
    let mut seen = HashMap::new();
    for i in 0..seeds {
        *seen.entry(s.render(seed(&["cmp_test", &i.to_string()]))).or_default() += 1;
    }
    seen
}

#[test]
fn a_group_gives_one_of_its_alternatives_and_fields_are_untouched() {
    let s = Spintax::parse("{Hi|Hello|Hey} {{name}}!").unwrap();
    assert!(s.has_choices());
    assert_eq!(s.variants(), 3);
    let seen = all_renders(&s, 300);
    let mut texts: Vec<_> = seen.keys().cloned().collect();
    texts.sort();
    assert_eq!(texts, ["Hello {{name}}!", "Hey {{name}}!", "Hi {{name}}!"]);
}

#[test]
fn groups_nest() {
    let s = Spintax::parse("{Hi|Hello {there|friend}}.").unwrap();
    assert_eq!(s.variants(), 3);
    let seen = all_renders(&s, 400);
    let mut texts: Vec<_> = seen.keys().cloned().collect();
    texts.sort();
    assert_eq!(texts, ["Hello friend.", "Hello there.", "Hi."]);
    // A group may open right after another's brace, and alternatives may be empty.
    let s = Spintax::parse("{{a|b}|c}{|!}").unwrap();
    assert_eq!(s.variants(), 6);
    let seen = all_renders(&s, 600);
    for t in ["a", "b", "c", "a!", "b!", "c!"] {
        assert!(seen.contains_key(t), "{t} never came out of {seen:?}");
    }
}

#[test]
fn escapes_are_literal() {
    let s = Spintax::parse(r"\{not a group\} a \| b {x\|y|z} back\\slash \n").unwrap();
    assert_eq!(s.variants(), 2);
    let seen = all_renders(&s, 100);
    let mut texts: Vec<_> = seen.keys().cloned().collect();
    texts.sort();
    assert_eq!(
        texts,
        [r"{not a group} a | b x|y back\slash \n", r"{not a group} a | b z back\slash \n"]
    );
}

#[test]
fn plain_text_braces_without_a_choice_and_bars_outside_groups_stay() {
    for text in ["no choices here", "a | b", "{note} and {{name}}", "{a {b} c}", ""] {
        let s = Spintax::parse(text).unwrap();
        assert!(!s.has_choices(), "{text}");
        assert_eq!(s.variants(), 1);
        assert_eq!(s.render(7), text);
    }
    // A placeholder across a brace-only group's edge still reads as one piece of text.
    let s = Spintax::parse("x {{{name}}}").unwrap();
    assert_eq!(s.texts().iter().map(|p| p.text).collect::<Vec<_>>(), ["x {{{name}}}"]);
}

#[test]
fn unbalanced_braces_are_refused_with_their_place() {
    let e = Spintax::parse("Olá {Hi|Hello").unwrap_err();
    assert_eq!(e.at, 5);
    assert!(e.message.contains("never closed"), "{e}");
    let e = Spintax::parse("{a|{b|c}").unwrap_err();
    assert_eq!(e.at, 1, "{e}");
    let e = Spintax::parse("a|b} c").unwrap_err();
    assert_eq!(e.at, 4);
    assert!(e.to_string().contains("closes no `{`") && e.to_string().contains("character 4"));
    let deep = format!("{}x{}", "{a|".repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
    assert!(Spintax::parse(&deep).unwrap_err().message.contains("deeper"));
    let many = "{a|b}".repeat(MAX_GROUPS + 1);
    assert!(Spintax::parse(&many).unwrap_err().message.contains("groups"));
}

#[test]
fn texts_name_where_each_piece_starts() {
    let s = Spintax::parse("Hi {{name}}, {a|b {{code}}}").unwrap();
    let pieces: Vec<_> = s.texts().iter().map(|p| (p.text, p.at)).collect();
    assert_eq!(pieces, [("Hi {{name}}, ", 1), ("a", 15), ("b {{code}}", 17)]);
}

#[test]
fn the_same_seed_gives_the_same_text() {
    let s = Spintax::parse("{a|b|c|d|e|f|g|h} {1|2|3|4|5|6|7|8} {x|y}").unwrap();
    for i in 0..50 {
        let k = seed(&["cmp_1", &i.to_string()]);
        assert_eq!(s.render(k), s.render(k));
        assert_eq!(s.render(k), Spintax::parse(&s_source()).unwrap().render(k));
    }
    // The seed hashes its parts apart: ("ab","c") is not ("a","bc").
    assert_ne!(seed(&["ab", "c"]), seed(&["a", "bc"]));
    // And it is fixed forever: a choice must render the same after an upgrade.
    assert_eq!(seed(&["cmp_1", "0"]), 2_593_989_943_596_363_857);
    assert_eq!(Spintax::parse("{a|b|c|d}").unwrap().render(0), "d");
}

fn s_source() -> String {
    "{a|b|c|d|e|f|g|h} {1|2|3|4|5|6|7|8} {x|y}".to_string()
}

#[test]
fn alternatives_are_picked_about_evenly() {
    let s = Spintax::parse("{a|b|c|d}").unwrap();
    let seen = all_renders(&s, 4_000);
    assert_eq!(seen.len(), 4);
    for (t, n) in &seen {
        // 1,000 expected each; ±15 % is far outside chance for a fair pick.
        assert!((850..=1150).contains(n), "{t} came {n} times of 4000: {seen:?}");
    }
}
