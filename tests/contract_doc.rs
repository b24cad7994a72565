//! `docs/contract.md` keeps up with the code: every action of [`Action`] has its section
//! `### 2.N \`name\``, in the order of [`Action::NAMES`], no section describes an action
//! that does not exist, and none says that its action is missing from this version.

use foundry_lambda::event::Action;

fn contract() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/contract.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The `### 2.N` sections of the contract: (N, the action name in backticks, the text up to
/// the next heading of level 3 or above).
fn action_sections(text: &str) -> Vec<(u32, String, String)> {
    let mut sections: Vec<(u32, String, String)> = Vec::new();
    let mut current: Option<usize> = None;
    for line in text.lines() {
        if line.starts_with("### ") || line.starts_with("## ") || line.starts_with("# ") {
            current = None;
            let heading = line.trim_start_matches('#').trim();
            let Some(rest) = heading.strip_prefix("2.") else {
                continue;
            };
            let (number, title) = rest.split_once(' ').unwrap_or((rest, ""));
            let Ok(n) = number.parse::<u32>() else { continue };
            if n == 0 {
                continue; // 2.0, what clients depend on
            }
            let name = title
                .trim()
                .strip_prefix('`')
                .and_then(|t| t.split_once('`'))
                .map(|(name, _)| name.to_string())
                .unwrap_or_else(|| panic!("section 2.{n} names no action in backticks: {line}"));
            sections.push((n, name, String::new()));
            current = Some(sections.len() - 1);
        } else if let Some(i) = current {
            sections[i].2.push_str(line);
            sections[i].2.push('\n');
        }
    }
    sections
}

#[test]
fn every_action_has_its_section_in_order() {
    let text = contract();
    let sections = action_sections(&text);
    let named: Vec<&str> = sections.iter().map(|(_, name, _)| name.as_str()).collect();
    let missing: Vec<&str> = Action::NAMES.iter().copied().filter(|a| !named.contains(a)).collect();
    assert!(
        missing.is_empty(),
        "docs/contract.md has no `### 2.N `name`` section for: {missing:?}"
    );
    let unknown: Vec<&str> = named
        .iter()
        .copied()
        .filter(|n| Action::canonical(n) != Some(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/contract.md has sections for names that are no action: {unknown:?}"
    );
    for (i, action) in Action::NAMES.iter().enumerate() {
        let want = (i as u32 + 1, action.to_string());
        let got = sections.get(i).map(|(n, name, _)| (*n, name.clone()));
        assert_eq!(
            got,
            Some(want.clone()),
            "section 2.{} should be `{}` (sections follow Action::NAMES, numbered from 2.1)",
            want.0,
            want.1
        );
    }
    assert_eq!(sections.len(), Action::NAMES.len(), "one section per action, no more");
}

#[test]
fn no_section_says_its_action_is_missing() {
    let text = contract();
    for (n, name, body) in action_sections(&text) {
        let lower = body.to_lowercase();
        for phrase in ["not implemented", "not available yet"] {
            assert!(
                !lower.contains(phrase),
                "section 2.{n} `{name}` still says \"{phrase}\""
            );
        }
        assert!(
            body.contains("**Request"),
            "section 2.{n} `{name}` does not say what its request holds (no **Request**)"
        );
    }
    for (i, line) in text.lines().enumerate() {
        assert!(
            !line.to_lowercase().contains("not implemented"),
            "docs/contract.md:{}: {line}",
            i + 1
        );
    }
}

#[test]
fn the_action_table_names_every_action_and_its_aliases() {
    let text = contract();
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | 2.N | `name` | `alias`, … | …
        if cells.len() < 4 || !cells[1].starts_with("2.") {
            continue;
        }
        let name = cells[2].trim_matches('`').to_string();
        let aliases: Vec<String> = cells[3]
            .split(',')
            .map(|a| a.trim().trim_matches('`').to_string())
            .filter(|a| !a.is_empty())
            .collect();
        rows.push((cells[1].to_string(), name, aliases));
    }
    let names: Vec<&str> = rows.iter().map(|(_, name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        Action::NAMES,
        "the table of section 2.0 lists the actions in order"
    );
    for (number, name, aliases) in &rows {
        for alias in aliases {
            assert_eq!(
                Action::canonical(alias),
                Some(name.as_str()),
                "row {number}: `{alias}` is no alias of `{name}`"
            );
        }
    }
}
