//! The lessons are also an mdBook (lessons/book.toml, lessons/SUMMARY.md). Its table of
//! contents follows the course map, lessons/README.md, which stays the one list of steps; and
//! every relative link a reader can follow, in the book or on a forge, leads somewhere. None
//! of this needs mdbook: the book is never built here.

use std::fs;
use std::path::{Path, PathBuf};

use testkit::root;

/// The links of a markdown text, in order, outside code blocks and code spans: the
/// `target` of each `[text](target)` (and `![alt](target)`), with its text.
fn links(markdown: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Text between backticks is code, not a link.
        let prose: String = line
            .split('`')
            .enumerate()
            .map(|(i, part)| if i % 2 == 0 { part } else { "" })
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(close) = rest.find("](") {
            let text = rest[..close]
                .rsplit_once('[')
                .map_or("", |(_, text)| text)
                .to_owned();
            let tail = &rest[close + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            // `[text](target "title")`: the target is the first word.
            let target = tail[..end].split_whitespace().next().unwrap_or("");
            found.push((target.trim_matches(['<', '>']).to_owned(), text));
            rest = &tail[end..];
        }
    }
    found
}

/// A heading's anchor as GitHub and mdBook make it, for simple headings: lower case, spaces
/// to `-`, and only letters, digits, `-` and `_` kept.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown file's headings (outside code blocks).
fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// Every markdown file a reader opens: the lessons (and the book's summary) and the README.
fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("lessons"))
        .expect("lessons/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.push(root().join("README.md"));
    files
}

fn is_relative(target: &str) -> bool {
    !(target.is_empty() || target.contains("://") || target.starts_with("mailto:"))
}

/// The lesson files the course map links to, in its order, then what comes after its table
/// (the errata).
fn course_map_pages() -> Vec<String> {
    let map = fs::read_to_string(root().join("lessons/README.md")).expect("lessons/README.md");
    let mut pages = Vec::new();
    for (target, _) in links(&map) {
        if is_relative(&target) && target.ends_with(".md") && !pages.contains(&target) {
            pages.push(target);
        }
    }
    pages
}

#[test]
fn the_books_summary_follows_the_course_map() {
    let summary = fs::read_to_string(root().join("lessons/SUMMARY.md")).expect("SUMMARY.md");
    let entries = links(&summary);
    let pages: Vec<&str> = entries.iter().map(|(page, _)| page.as_str()).collect();
    let map = course_map_pages();
    assert!(
        map.len() >= 11,
        "the course map links ten steps and the errata: {map:?}"
    );
    assert!(map.last().is_some_and(|p| p == "errata.md"), "{map:?}");
    let mut want = vec!["README.md"];
    want.extend(map.iter().map(String::as_str));
    assert_eq!(
        pages, want,
        "lessons/SUMMARY.md: the course map first, then every page it links, in its order"
    );
    // Each entry is titled as its page is (its first line, `# Title`).
    for (page, title) in &entries {
        let text = fs::read_to_string(root().join("lessons").join(page)).expect("a page");
        let heading = text.lines().next().unwrap_or("").trim_start_matches("# ");
        assert_eq!(title, heading, "SUMMARY.md's title for {page}");
    }
    // No page of lessons/ is left out of the book.
    for file in markdown_files() {
        let name = file.file_name().expect("a name").to_string_lossy();
        if file.parent() == Some(&root().join("lessons")) && name != "SUMMARY.md" {
            assert!(
                pages.contains(&name.as_ref()),
                "lessons/{name} is not in SUMMARY.md"
            );
        }
    }
    let config = fs::read_to_string(root().join("lessons/book.toml")).expect("book.toml");
    assert!(
        config.lines().any(|l| l.replace(' ', "") == "src=\".\""),
        "book.toml takes its chapters from lessons/ itself"
    );
}

#[test]
fn every_relative_link_resolves_to_a_file_and_a_heading() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = fs::read_to_string(&file).expect("readable");
        let dir = file.parent().expect("a directory");
        let name = file.strip_prefix(root()).unwrap_or(&file).display();
        for (target, _) in links(&text) {
            if !is_relative(&target) {
                continue;
            }
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !linked.exists() {
                problems.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if fragment.is_empty() || linked.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let headings = anchors(&fs::read_to_string(&linked).unwrap_or_default());
            if !headings.iter().any(|a| a == fragment) {
                problems.push(format!(
                    "{name}: {target}: no heading #{fragment} in {}",
                    Path::new(path).display()
                ));
            }
        }
    }
    assert!(checked >= 50, "only {checked} relative links found");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn links_and_anchors_are_read_as_a_reader_sees_them() {
    let text = "# Run it, now!\nSee [step 2](02-bind.md#run-it-now) and `[not](a link)`.\n\
                ```text\n[no](link)\n```\n![a picture](x.png \"its title\")\n";
    assert_eq!(
        links(text),
        [
            ("02-bind.md#run-it-now".to_owned(), "step 2".to_owned()),
            ("x.png".to_owned(), "a picture".to_owned())
        ]
    );
    assert_eq!(anchors(text), ["run-it-now"]);
    assert_eq!(anchor(" The call, three ways"), "the-call-three-ways");
    assert_eq!(anchor("`SOCK_STRAM`"), "sock_stram");
}
